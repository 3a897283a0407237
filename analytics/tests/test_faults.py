"""Faults on the record path, with a Redis server of the test's own that it stops and starts:
records spool while Redis is down and arrive once it is back, none lost, none doubled; and a
burst drains."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from asgiref.sync import sync_to_async
from django.db import connections

from analytics.ingest import consume_redis_stream, ingest_records
from analytics.models import RequestLog, RequestRollup
from analytics.tests.test_ingest import record
from gateway.runtime.records import encode_batch
from gateway.runtime.redis_store import RedisStore
from gateway.runtime.store import RECORD_BATCH_FIELD, RECORD_STREAM
from gateway.tests.dataplane import Config, client_for, key_entry, make_gateway, route_entry

KEY = "hx_live_faultsfaults0000000001"


class OwnRedis:
    """A redis-server on a free port, that a test may stop and start again."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


def consume(url: str) -> None:
    """One consumer pass from the executor thread; its database connection is closed after."""
    try:
        consume_redis_stream(RedisStore(url))
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_records_served_while_redis_is_down_arrive_once_it_is_back(
        own_redis: OwnRedis, tmp_path: Path, upstream: object) -> None:
    store = RedisStore(own_redis.url, socket_timeout=0.1)
    config = Config(keys=[key_entry(KEY)], routes=[route_entry("demo", upstream.url)])  # type: ignore[attr-defined]
    config.publish(store)
    gateway = make_gateway(store, tmp_path, on_store_error="local")
    await gateway.startup()
    ids: list[str] = []

    async def serve(count: int) -> list[httpx.Response]:
        async with client_for(gateway) as client:
            responses = [await client.get("/g/demo/items", headers={"X-API-Key": KEY}) for _ in range(count)]
        ids.extend(r.headers["x-request-id"] for r in responses)
        return responses

    try:
        assert {r.status_code for r in await serve(10)} == {200}
        await gateway.records.flush()
        await sync_to_async(consume)(own_redis.url)

        own_redis.stop()
        during = await serve(15)  # served from the snapshot, limited in process
        assert {r.status_code for r in during} == {200}
        assert {r.headers["x-gateway-degraded"] for r in during} == {"ratelimit-local"}
        await gateway.records.flush()
        assert (tmp_path / "records.spool").exists()

        own_redis.start()  # back, and empty: the spool is all that is left of those 15
        await gateway.records.flush()
        assert not (tmp_path / "records.spool").exists()
        await gateway.records.flush()  # a second flush ships nothing twice
        await sync_to_async(consume)(own_redis.url)
    finally:
        await gateway.shutdown()

    def stored() -> tuple[list[str], int]:
        try:
            return (list(RequestLog.objects.values_list("request_id", flat=True)),
                    sum(RequestRollup.objects.filter(granularity="day").values_list("count", flat=True)))
        finally:
            connections.close_all()

    logged, rolled = await sync_to_async(stored)()
    assert sorted(logged) == sorted(ids) and len(logged) == 25
    assert rolled == 25


@pytest.mark.django_db
def test_a_burst_of_50000_records_drains(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(RECORD_STREAM)
    now = time.time()
    for start in range(0, 50_000, 500):  # as gateways write them: one entry per flushed batch
        batch = [record(request_id=uuid.uuid4().hex, ts=now, api_key_id=1 + i % 5, route_id=1 + i % 3)
                 for i in range(start, start + 500)]
        client.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch(batch)})
    store = RedisStore(redis_url)
    drained = 0
    while (inserted := consume_redis_stream(store, batch=20)) > 0:
        drained += inserted
    assert drained == RequestLog.objects.count() == 50_000
    assert sum(RequestRollup.objects.filter(granularity="hour").values_list("count", flat=True)) == 50_000
    assert ingest_records([record(request_id=RequestLog.objects.first().request_id)]) == 0
