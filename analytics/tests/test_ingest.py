"""The minimal record consumer: records reach RequestLog once, whatever is replayed."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
import redis

from analytics.ingest import GROUP, consume_redis_stream, drain_memory_store, ingest_records
from analytics.models import RequestLog
from billing.models import Plan
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.records import Record, encode_batch
from gateway.runtime.redis_store import RedisStore
from gateway.runtime.store import LEGACY_LINES_FIELD, LEGACY_RECORD_FIELD, RECORD_BATCH_FIELD, RECORD_STREAM
from tenants.models import ApiKey
from tenants.services import api_key_issue, tenant_create

pytestmark = pytest.mark.django_db


def record(**fields: Any) -> Record:
    base: dict[str, Any] = {
        "request_id": uuid.uuid4().hex, "ts": time.time(), "tenant_id": None, "api_key_id": None, "route_id": None,
        "method": "GET", "path": "/g/demo/items", "status": 200, "cache": "BYPASS", "upstream_ms": 1.5,
        "latency_ms": 2.0, "bytes_in": 0, "bytes_out": 1024, "client_ip": "203.0.113.9", "user_agent": "curl/8",
        "error": "",
    }
    return Record(**(base | fields))


def test_a_replayed_batch_is_stored_once() -> None:
    batch = [record(), record(status=401, error="invalid_api_key")]
    assert ingest_records(batch) == 2
    assert ingest_records(batch) == 0
    assert RequestLog.objects.count() == 2
    row = RequestLog.objects.get(request_id=batch[1].request_id)
    assert (row.status_code, row.error_code, row.client_ip) == (401, "invalid_api_key", "203.0.113.9")


def test_last_used_at_moves_at_most_once_a_minute() -> None:
    tenant = tenant_create(name="Usage Co", plan=Plan.objects.get(slug="pro"))
    key = api_key_issue(tenant=tenant, name="k").api_key
    start = time.time()
    ingest_records([record(api_key_id=key.id, ts=start)])
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    ingest_records([record(api_key_id=key.id, ts=start + 30)])
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ingest_records([record(api_key_id=key.id, ts=start + 90)])
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first + dt.timedelta(seconds=90)


def test_the_in_process_queue_drains_into_the_log() -> None:
    store = MemoryStore()
    store.records.extend(encode_batch([record(), record()]) for _ in range(5))
    assert drain_memory_store(store, batch=2) == 10
    assert not store.records
    assert RequestLog.objects.count() == 10


def test_the_redis_stream_is_consumed_acknowledged_and_safe_to_replay(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    store = RedisStore(redis_url)
    records = [record() for _ in range(7)]
    for item in records:
        client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch([item])})
    assert consume_redis_stream(store, batch=3) == 7
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0
    # The same entries delivered again (a producer retry): nothing doubles.
    for item in records[:3]:
        client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch([item])})
    assert consume_redis_stream(store) == 0
    assert RequestLog.objects.count() == 7


def test_entries_held_by_a_dead_consumer_are_reclaimed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    store = RedisStore(redis_url)
    client.xgroup_create(RECORD_STREAM, GROUP, id="0", mkstream=True)
    records = [record() for _ in range(4)]
    for item in records:
        client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch([item])})
    # A consumer reads the batch, inserts half, and dies before acknowledging.
    client.xreadgroup(GROUP, "dead-consumer", {RECORD_STREAM: ">"}, count=10)
    ingest_records(records[:2])
    assert consume_redis_stream(store, reclaim_idle_ms=0) == 2
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0
    assert set(RequestLog.objects.values_list("request_id", flat=True)) == {r.request_id for r in records}


def test_a_pass_past_its_time_reads_nothing_new_and_the_next_pass_takes_it(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch([record(), record()])})
    store = RedisStore(redis_url)
    assert consume_redis_stream(store, max_seconds=-1) == 0
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0  # not read, so held by no one
    assert consume_redis_stream(store) == 2


def test_a_transaction_takes_whole_entries_up_to_its_record_bound(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    for size in (3, 3, 3):
        client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch([record() for _ in range(size)])})
    assert consume_redis_stream(RedisStore(redis_url), records_per_transaction=4) == 9
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0
    assert RequestLog.objects.count() == 9


def test_entries_from_gateways_before_positional_records_are_still_read(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    old_style = [record()._asdict(), record()._asdict(), record(status=429, error="rate_limited")._asdict()]
    del old_style[0]["failed_key"]  # an older gateway did not send every field
    client.xadd(RECORD_STREAM, {LEGACY_LINES_FIELD: b"\n".join(json.dumps(r).encode() for r in old_style[:2])})
    client.xadd(RECORD_STREAM, {LEGACY_RECORD_FIELD: json.dumps(old_style[2] | {"field_of_the_future": 1})})
    client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: b"not json"})  # dropped and logged, the rest goes on
    assert consume_redis_stream(RedisStore(redis_url)) == 3
    assert RequestLog.objects.filter(status_code=429, error_code="rate_limited").count() == 1
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0


def test_a_shorter_or_longer_positional_record_is_read() -> None:
    """Fields are only appended: an older gateway's short arrays and a newer one's long ones."""
    current = record(status=503, error="upstream_error")
    shorter = list(current)[:-1]  # without failed_key
    longer = [*record(), "a field of the future"]
    store = MemoryStore()
    store.records.append(json.dumps([shorter, longer]).encode())
    assert drain_memory_store(store) == 2
    assert RequestLog.objects.get(request_id=current.request_id).error_code == "upstream_error"


def test_a_malformed_record_is_left_out_and_the_rest_of_its_batch_stored() -> None:
    good = [record(), record()]
    malformed = [["too-short"], [uuid.uuid4().hex, "not a time", None, None, None, "", "GET", "/", 200],
                 "not a record", {"request_id": 7, "ts": 1.0}]
    store = MemoryStore()
    store.records.append(json.dumps([list(good[0]), *malformed, list(good[1])]).encode())
    assert drain_memory_store(store) == 2
    assert set(RequestLog.objects.values_list("request_id", flat=True)) == {r.request_id for r in good}
    assert not store.records  # acknowledged: nothing left to fail on again
