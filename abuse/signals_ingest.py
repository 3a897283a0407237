"""Fold request records into per-interval abuse signals (called by the record consumer)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection

from abuse.models import AbuseSignal
from gateway.runtime.records import Record

_CAP = 512  # distinct paths / keys remembered per subject and interval
_COUNTS = "requests = %s, errors_4xx = %s, errors_5xx = %s, not_found = %s, unauthorized = %s"
_UPDATE_COUNTS_SQL = f"UPDATE {connection.ops.quote_name(AbuseSignal._meta.db_table)} SET {_COUNTS} WHERE id = %s"
_UPDATE_ALL_SQL = (f"UPDATE {connection.ops.quote_name(AbuseSignal._meta.db_table)} SET {_COUNTS}, "
                   "path_hashes = %s, failed_keys = %s WHERE id = %s")
_json_field = AbuseSignal._meta.get_field("path_hashes")


def _new_signal() -> dict[str, Any]:
    return {"requests": 0, "errors_4xx": 0, "errors_5xx": 0, "not_found": 0, "unauthorized": 0,
            "paths": set(), "keys": set()}


def signals_ingest(records: Iterable[Record]) -> None:
    interval = settings.ABUSE_INTERVAL_SECONDS
    grouped: dict[tuple[str, dt.datetime], dict[str, Any]] = {}
    # Memos per batch: a batch holds few intervals and repeats its paths.
    buckets: dict[int, dt.datetime] = {}
    path_hashes: dict[str, str] = {}
    for record in records:
        key_id, status = record.api_key_id, record.status
        if key_id:
            subject = f"k{key_id}"
        elif record.client_ip and status == 401:
            subject = f"ip:{record.client_ip}"
        else:
            continue
        start = int(record.ts // interval * interval)
        bucket = buckets.get(start)
        if bucket is None:
            bucket = buckets[start] = dt.datetime.fromtimestamp(start, dt.UTC)
        signal = grouped.get((subject, bucket))
        if signal is None:
            signal = grouped[(subject, bucket)] = _new_signal()
        signal["requests"] += 1
        if status == 404:
            signal["not_found"] += 1
        elif status == 401:
            signal["unauthorized"] += 1
            if record.failed_key:
                signal["keys"].add(record.failed_key)
        elif 400 <= status < 500 and status != 429:
            signal["errors_4xx"] += 1
        elif status >= 500:
            signal["errors_5xx"] += 1
        path = record.path
        path_hash = path_hashes.get(path)
        if path_hash is None:
            path_hash = path_hashes[path] = hashlib.blake2b(path.encode(), digest_size=6).hexdigest()
        signal["paths"].add(path_hash)
    if not grouped:
        return
    # Rows this batch lacks are created first (a concurrent consumer may create the same
    # one: ignored), then all are locked in one query, in key order, and updated together.
    AbuseSignal.objects.bulk_create([AbuseSignal(subject=subject, bucket_start=bucket)
                                     for subject, bucket in sorted(grouped)], ignore_conflicts=True)
    rows = AbuseSignal.objects.select_for_update().filter(
        subject__in={subject for subject, _ in grouped}, bucket_start__in={bucket for _, bucket in grouped},
    ).order_by("subject", "bucket_start")
    counts_changed, all_changed = [], []
    for row in rows:
        signal = grouped.get((row.subject, row.bucket_start))
        if signal is None:
            continue
        counts = (row.requests + signal["requests"], row.errors_4xx + signal["errors_4xx"],
                  row.errors_5xx + signal["errors_5xx"], row.not_found + signal["not_found"],
                  row.unauthorized + signal["unauthorized"])
        paths, keys = _merged(row.path_hashes, signal["paths"]), _merged(row.failed_keys, signal["keys"])
        if paths is None and keys is None:
            counts_changed.append((*counts, row.pk))
            continue
        paths, keys = row.path_hashes if paths is None else paths, row.failed_keys if keys is None else keys
        all_changed.append((*counts, _json_field.get_db_prep_save(paths, connection),
                            _json_field.get_db_prep_save(keys, connection), row.pk))
    # Plain UPDATEs in one executemany each: the ORM's bulk_update (a CASE per row and column)
    # was most of the consumer's time. A row whose path and key lists did not change keeps
    # them untouched: rewriting hundreds of hashes a batch was a third of what signals cost.
    with connection.cursor() as cursor:
        if counts_changed:
            cursor.executemany(_UPDATE_COUNTS_SQL, counts_changed)
        if all_changed:
            cursor.executemany(_UPDATE_ALL_SQL, all_changed)


def _merged(stored: list[str], seen: set[str]) -> list[str] | None:
    """The _CAP smallest of both, or None when that is what is stored already."""
    if seen.issubset(stored):
        return None
    merged = sorted(seen.union(stored))[:_CAP]
    return None if merged == stored else merged
