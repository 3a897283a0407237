"""Fold request records into per-interval abuse signals (called by the record consumer)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from abuse.models import AbuseSignal

_CAP = 512  # distinct paths / keys remembered per subject and interval


def _bucket(ts: float, interval: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts - ts % interval, dt.UTC)


def signals_ingest(records: Iterable[dict[str, Any]]) -> None:
    interval = settings.ABUSE_INTERVAL_SECONDS
    grouped: dict[tuple[str, dt.datetime], dict[str, Any]] = {}
    for record in records:
        key_id, status = record.get("api_key_id"), int(record["status"])
        if key_id:
            subject = f"k{key_id}"
        elif record.get("client_ip") and status == 401:
            subject = f"ip:{record['client_ip']}"
        else:
            continue
        signal = grouped.setdefault((subject, _bucket(record["ts"], interval)), {
            "requests": 0, "errors_4xx": 0, "errors_5xx": 0, "not_found": 0, "unauthorized": 0,
            "paths": set(), "keys": set()})
        signal["requests"] += 1
        if status == 404:
            signal["not_found"] += 1
        elif status == 401:
            signal["unauthorized"] += 1
            if record.get("failed_key"):
                signal["keys"].add(record["failed_key"])
        elif 400 <= status < 500 and status != 429:
            signal["errors_4xx"] += 1
        elif status >= 500:
            signal["errors_5xx"] += 1
        signal["paths"].add(hashlib.blake2b(record["path"].encode(), digest_size=6).hexdigest())
    for (subject, bucket), signal in grouped.items():
        row, _ = AbuseSignal.objects.select_for_update().get_or_create(subject=subject, bucket_start=bucket)
        row.requests += signal["requests"]
        row.errors_4xx += signal["errors_4xx"]
        row.errors_5xx += signal["errors_5xx"]
        row.not_found += signal["not_found"]
        row.unauthorized += signal["unauthorized"]
        row.path_hashes = sorted(set(row.path_hashes) | signal["paths"])[:_CAP]
        row.failed_keys = sorted(set(row.failed_keys) | signal["keys"])[:_CAP]
        row.save()
