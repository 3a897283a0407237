"""The minimal record consumer: records reach RequestLog once, whatever is replayed."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
import redis

from analytics.ingest import GROUP, consume_redis_stream, drain_memory_store, ingest_records
from analytics.models import RequestLog
from billing.models import Plan
from gateway.runtime.store import RECORD_FIELD, RECORD_STREAM, MemoryStore, RedisStore
from tenants.models import ApiKey
from tenants.services import api_key_issue, tenant_create

pytestmark = pytest.mark.django_db


def record(**fields: object) -> dict:
    base = {"request_id": uuid.uuid4().hex, "ts": time.time(), "tenant_id": None, "api_key_id": None,
            "route_id": None, "method": "GET", "path": "/g/demo/items", "status": 200, "cache": "BYPASS",
            "upstream_ms": 1.5, "latency_ms": 2.0, "bytes_in": 0, "bytes_out": 1024, "client_ip": "203.0.113.9",
            "user_agent": "curl/8", "error": ""}
    base.update(fields)
    return base


def test_a_replayed_batch_is_stored_once() -> None:
    batch = [record(), record(status=401, error="invalid_api_key")]
    assert ingest_records(batch) == 2
    assert ingest_records(batch) == 0
    assert RequestLog.objects.count() == 2
    row = RequestLog.objects.get(request_id=batch[1]["request_id"])
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
    store.records.extend(json.dumps(record()).encode() for _ in range(5))
    assert drain_memory_store(store, batch=2) == 5
    assert not store.records
    assert RequestLog.objects.count() == 5


def test_the_redis_stream_is_consumed_acknowledged_and_safe_to_replay(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    store = RedisStore(redis_url)
    records = [record() for _ in range(7)]
    for item in records:
        client.xadd(RECORD_STREAM, {RECORD_FIELD: json.dumps(item)})
    assert consume_redis_stream(store, batch=3) == 7
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0
    # The same entries delivered again (a producer retry): nothing doubles.
    for item in records[:3]:
        client.xadd(RECORD_STREAM, {RECORD_FIELD: json.dumps(item)})
    assert consume_redis_stream(store) == 0
    assert RequestLog.objects.count() == 7


def test_entries_held_by_a_dead_consumer_are_reclaimed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    store = RedisStore(redis_url)
    client.xgroup_create(RECORD_STREAM, GROUP, id="0", mkstream=True)
    records = [record() for _ in range(4)]
    for item in records:
        client.xadd(RECORD_STREAM, {RECORD_FIELD: json.dumps(item)})
    # A consumer reads the batch, inserts half, and dies before acknowledging.
    client.xreadgroup(GROUP, "dead-consumer", {RECORD_STREAM: ">"}, count=10)
    ingest_records(records[:2])
    assert consume_redis_stream(store, reclaim_idle_ms=0) == 2
    assert client.xpending(RECORD_STREAM, GROUP)["pending"] == 0
    assert set(RequestLog.objects.values_list("request_id", flat=True)) == {r["request_id"] for r in records}


def test_batch_entries_from_the_gateway_are_unpacked(redis_url: str) -> None:
    from gateway.runtime.store import RECORD_BATCH_FIELD

    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    batch = [record(), record(), record(status=429, error="rate_limited")]
    client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: b"\n".join(json.dumps(r).encode() for r in batch)})
    assert consume_redis_stream(RedisStore(redis_url)) == 3
    assert RequestLog.objects.filter(status_code=429).count() == 1
