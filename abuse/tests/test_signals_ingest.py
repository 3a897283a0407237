"""Abuse signals as the record consumer folds them: counts add up across batches, and the
distinct paths and failed keys of an interval are the union of every batch's, capped."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from abuse.models import AbuseSignal
from analytics.ingest import ingest_records
from gateway.runtime.records import Record

pytestmark = pytest.mark.django_db
KEY_ID = 7001


def _records(paths: list[str], *, status: int = 200, key_id: int | None = KEY_ID, client_ip: str = "198.51.100.9",
             failed_key: str = "", at: float) -> list[Record]:
    return [Record(request_id=uuid.uuid4().hex, ts=at, api_key_id=key_id, method="GET", path=path, status=status,
                   latency_ms=1.0, client_ip=client_ip, failed_key=failed_key) for path in paths]


def _hash(path: str) -> str:
    return hashlib.blake2b(path.encode(), digest_size=6).hexdigest()


def _interval_start() -> float:
    return time.time() // 10 * 10 - 60  # well inside one 10 s interval


def test_batches_into_one_interval_add_their_counts_and_union_their_paths() -> None:
    at = _interval_start() + 1
    ingest_records(_records(["/a", "/b", "/a"], at=at))
    ingest_records(_records(["/a", "/b"], status=404, at=at + 1))  # no path new to the interval
    ingest_records(_records(["/c"], status=503, at=at + 2))

    signal = AbuseSignal.objects.get(subject=f"k{KEY_ID}")
    assert (signal.requests, signal.not_found, signal.errors_5xx) == (6, 2, 1)
    assert signal.path_hashes == sorted({_hash("/a"), _hash("/b"), _hash("/c")})


def test_failed_keys_from_one_address_are_kept_across_batches_with_no_new_path() -> None:
    at = _interval_start() + 1
    ingest_records(_records(["/login"], status=401, key_id=None, failed_key="guess-1", at=at))
    ingest_records(_records(["/login"], status=401, key_id=None, failed_key="guess-2", at=at + 1))
    ingest_records(_records(["/login"], status=401, key_id=None, failed_key="guess-1", at=at + 2))

    signal = AbuseSignal.objects.get(subject="ip:198.51.100.9")
    assert (signal.requests, signal.unauthorized) == (3, 3)
    assert signal.failed_keys == ["guess-1", "guess-2"]
    assert signal.path_hashes == [_hash("/login")]


def test_distinct_paths_are_capped_at_the_smallest_512_hashes_whatever_the_batches() -> None:
    at = _interval_start() + 1
    paths = [f"/item/{n}" for n in range(700)]
    ingest_records(_records(paths[:400], at=at))
    ingest_records(_records(paths[400:], at=at + 1))
    ingest_records(_records(paths[:10], at=at + 2))

    signal = AbuseSignal.objects.get(subject=f"k{KEY_ID}")
    assert signal.requests == 710
    assert signal.path_hashes == sorted(_hash(path) for path in paths)[:512]
