"""Rollups: exactly the rows new to the log, in the bucket of their own timestamp."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time

import pytest
import redis
from django.core.management import call_command
from django.db import connection, connections
from django.db.models import Sum

from analytics.ingest import GROUP, consume_redis_stream, ingest_records
from analytics.models import RequestLog, RequestRollup
from analytics.retention import analytics_prune
from analytics.rollups import LATENCY_BUCKETS_MS, histogram_percentile, latency_bucket
from analytics.tests.test_ingest import record
from gateway.config_publish import config_store
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.records import Record, encode_batch
from gateway.runtime.redis_store import RedisStore
from gateway.runtime.store import RECORD_BATCH_FIELD, RECORD_STREAM
from tenants.tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def totals(granularity: str) -> dict[str, int]:
    return RequestRollup.objects.filter(granularity=granularity).aggregate(
        count=Sum("count"), errors=Sum("error_count"), bytes_out=Sum("bytes_out"))


def test_every_granularity_counts_each_new_row_once() -> None:
    batch = [record(status=200), record(status=404, error=""), record(status=502, error="upstream_error"),
             record(status=200, cache="HIT")]
    ingest_records(batch)
    ingest_records(batch)  # replayed: adds nothing
    for granularity in ("minute", "hour", "day"):
        assert totals(granularity) == {"count": 4, "errors": 2, "bytes_out": 4 * 1024}


def test_rollups_split_by_status_class_cache_outcome_and_key() -> None:
    ingest_records([record(api_key_id=7, status=200, cache="HIT"), record(api_key_id=7, status=201, cache="HIT"),
                    record(api_key_id=7, status=429, error="rate_limited"), record(api_key_id=8, status=200)])
    rows = {(r.api_key_id, r.status_class, r.cache_status): r.count
            for r in RequestRollup.objects.filter(granularity="hour")}
    assert rows == {(7, 2, "HIT"): 2, (7, 4, "BYPASS"): 1, (8, 2, "BYPASS"): 1}


def test_a_late_record_lands_in_its_own_hour() -> None:
    now = time.time()
    two_hours_ago = now - 7200
    ingest_records([record(ts=now)])
    ingest_records([record(ts=two_hours_ago)])
    hours = {r.bucket_start: r.count for r in RequestRollup.objects.filter(granularity="hour")}
    expected_hour = dt.datetime.fromtimestamp(two_hours_ago, dt.UTC).replace(minute=0, second=0, microsecond=0)
    assert hours[expected_hour] == 1
    assert sum(hours.values()) == 2


def test_the_histogram_places_latencies_and_yields_percentiles() -> None:
    latencies = [0.5] * 50 + [3.0] * 45 + [700.0] * 5
    ingest_records([record(latency_ms=ms) for ms in latencies])
    (rollup,) = RequestRollup.objects.filter(granularity="day")
    histogram = rollup.latency_histogram
    assert histogram[latency_bucket(0.5)] == 50 and histogram[latency_bucket(3.0)] == 45
    assert histogram_percentile(histogram, 0.5) == 1.0
    assert histogram_percentile(histogram, 0.95) == 5.0
    assert histogram_percentile(histogram, 0.99) == 1000.0
    assert rollup.latency_sum_ms == pytest.approx(sum(latencies))
    assert latency_bucket(LATENCY_BUCKETS_MS[-1] + 1) == len(LATENCY_BUCKETS_MS)


def test_a_latency_on_a_bucket_bound_falls_in_that_bounds_bucket_and_batches_add_up() -> None:
    latencies = [0.0, *LATENCY_BUCKETS_MS, *(bound + 0.001 for bound in LATENCY_BUCKETS_MS), 10**6]
    expected = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for ms in latencies:
        expected[latency_bucket(ms)] += 1
    moment = time.time()  # one timestamp: one rollup row per granularity
    ingest_records([record(ts=moment, latency_ms=ms) for ms in latencies])
    ingest_records([record(ts=moment, latency_ms=ms) for ms in latencies])  # a second batch, same rollups
    for granularity in ("minute", "hour", "day"):
        (rollup,) = RequestRollup.objects.filter(granularity=granularity)
        assert rollup.latency_histogram == [2 * n for n in expected]
        assert rollup.count == 2 * len(latencies)


def test_one_batch_across_minutes_and_hours_adds_up_in_each_coarser_bucket() -> None:
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    at = {"10:58": day + dt.timedelta(hours=10, minutes=58, seconds=30),
          "10:59": day + dt.timedelta(hours=10, minutes=59, seconds=10),
          "11:00": day + dt.timedelta(hours=11, seconds=20)}
    ingest_records([record(ts=at["10:58"].timestamp(), latency_ms=0.5),
                    record(ts=at["10:58"].timestamp() + 1, latency_ms=30.0, status=503, error="upstream_error"),
                    record(ts=at["10:59"].timestamp(), latency_ms=30.0),
                    record(ts=at["11:00"].timestamp(), latency_ms=7000.0)])

    def rows(granularity: str) -> dict[dt.datetime, tuple[int, int, float, list[int]]]:
        merged: dict[dt.datetime, tuple[int, int, float, list[int]]] = {}
        for r in RequestRollup.objects.filter(granularity=granularity):
            count, errors, latency, histogram = merged.get(r.bucket_start, (0, 0, 0.0, [0] * len(r.latency_histogram)))
            merged[r.bucket_start] = (count + r.count, errors + r.error_count, latency + r.latency_sum_ms,
                                      [a + b for a, b in zip(histogram, r.latency_histogram, strict=True)])
        return merged

    def histogram(*latencies: float) -> list[int]:
        counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        for ms in latencies:
            counts[latency_bucket(ms)] += 1
        return counts

    minute = {start.replace(second=0): value for start, value in rows("minute").items()}
    assert minute == {at["10:58"].replace(second=0): (2, 1, 30.5, histogram(0.5, 30.0)),
                      at["10:59"].replace(second=0): (1, 0, 30.0, histogram(30.0)),
                      at["11:00"].replace(second=0): (1, 0, 7000.0, histogram(7000.0))}
    assert rows("hour") == {day + dt.timedelta(hours=10): (3, 1, 60.5, histogram(0.5, 30.0, 30.0)),
                            day + dt.timedelta(hours=11): (1, 0, 7000.0, histogram(7000.0))}
    assert rows("day") == {day: (4, 1, 7060.5, histogram(0.5, 30.0, 30.0, 7000.0))}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_consumers_ingesting_overlapping_batches_at_once_count_each_record_once() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them)")
    shared = [record(api_key_id=1) for _ in range(300)]
    batches = [shared + [record(api_key_id=1) for _ in range(100)] for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def consume(batch: list[Record]) -> None:
        try:
            barrier.wait()
            ingest_records(batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    run_concurrently(consume, batches)
    assert not errors
    assert RequestLog.objects.count() == 500
    for granularity in ("minute", "hour", "day"):
        assert totals(granularity)["count"] == 500


def run_concurrently(target: object, batches: list[list[Record]]) -> None:
    threads = [threading.Thread(target=target, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_consumers_meeting_the_same_keys_and_routes_in_opposite_orders_do_not_deadlock() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them)")
    errors: list[BaseException] = []

    def consume(batch: list[Record]) -> None:
        try:
            ingest_records(batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    ids = [ApiKeyFactory().pk for _ in range(12)]  # real keys: last_used_at updates lock their rows
    rounds = 5
    for _ in range(rounds):
        # Each batch meets keys, routes and their sketch rows in the other's reverse order.
        forward = [record(api_key_id=n, route_id=n) for n in ids for _ in range(20)]
        backward = [record(api_key_id=n, route_id=n) for n in ids[::-1] for _ in range(20)]
        run_concurrently(consume, [forward, backward])
    assert not errors
    assert RequestLog.objects.count() == rounds * 2 * 20 * len(ids)
    assert totals("day")["count"] == rounds * 2 * 20 * len(ids)


def test_a_consumer_killed_after_insert_and_before_ack_changes_no_total_when_rerun(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    client.xgroup_create(RECORD_STREAM, GROUP, id="0", mkstream=True)
    records = [record(api_key_id=3) for _ in range(50)]
    client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch(records)})
    # The dying consumer read the entry and committed its insert, but never acknowledged.
    client.xreadgroup(GROUP, "killed-consumer", {RECORD_STREAM: ">"}, count=10)
    ingest_records(records)
    assert consume_redis_stream(RedisStore(redis_url), reclaim_idle_ms=0) == 0
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0
    assert RequestLog.objects.count() == 50
    assert totals("hour")["count"] == 50


def test_prune_deletes_only_what_is_past_retention_in_batches(settings: object) -> None:
    settings.REQUEST_LOG_RETENTION_DAYS = 30  # type: ignore[attr-defined]
    settings.ROLLUP_MINUTE_RETENTION_DAYS = 7  # type: ignore[attr-defined]
    settings.ROLLUP_RETENTION_DAYS = 365  # type: ignore[attr-defined]
    now = time.time()
    day = 86400
    ingest_records([record(ts=now - 40 * day) for _ in range(7)] + [record(ts=now - 10 * day),
                                                                     record(ts=now - 400 * day), record(ts=now)])
    result = analytics_prune(batch=3)
    assert result.request_logs == 8  # 7 at 40 days + 1 at 400 days
    assert RequestLog.objects.count() == 2
    # Minute rollups older than 7 days went (40, 10 and 400 days); hour/day only the 400-day ones.
    assert result.minute_rollups == 3
    assert result.rollups == 2
    assert totals("hour")["count"] == 9  # rollups outlive the raw rows they were made from
    assert totals("minute")["count"] == 1


def test_the_prune_command_reports_what_it_deleted() -> None:
    ingest_records([record(ts=time.time() - 400 * 86400)])
    out = io.StringIO()
    call_command("prune_analytics", stdout=out)
    # Hour and day rollups are kept 730 days by default: at 400 days they stay.
    assert "Deleted 1 request logs, 1 minute rollups and 0 hour/day rollups." in out.getvalue()


def test_the_ingest_command_runs_one_pass_over_the_configured_store() -> None:
    store = config_store()
    waiting = [record(), record()]
    if isinstance(store, MemoryStore):
        store.records.append(encode_batch(waiting))
    else:
        store.sync.delete(RECORD_STREAM)
        store.sync.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch(waiting)})
    out = io.StringIO()
    call_command("ingest_records", stdout=out)
    assert out.getvalue() == "Ingested 2 new request records.\n"
    assert totals("day")["count"] == 2
