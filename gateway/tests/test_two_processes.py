"""Two real gateway processes (uvicorn) sharing one Redis: exact limits across processes
and config changes reaching both within 2 seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.runtime.redis_store import RedisStore
from gateway.tests.dataplane import PEPPER, Config, key_entry, route_entry

ROOT = Path(__file__).resolve().parents[2]
KEY = "hx_live_twoproc_twoproc_000001"
OTHER = "hx_live_twoproc_other_00000002"


CACHE_POLICY = {
    "id": 1, "name": "two-process", "no_store": False, "ttl_seconds": 300, "stale_while_revalidate_seconds": 0,
    "stale_if_error_seconds": 0, "respect_upstream": False, "vary_headers": [], "normalize_query": True,
    "cacheable_statuses": [200], "max_body_bytes": 1024 * 1024, "negative_cache_404": False,
    "bloom_expected_items": 1000, "bloom_false_positive_rate": 0.01,
}


SWR_POLICY = {**CACHE_POLICY, "id": 2, "name": "always-stale", "ttl_seconds": 0,
              "stale_while_revalidate_seconds": 600}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway on {port} never became ready")


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[str]:
    url = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def config(upstream: object) -> Config:
    return Config(
        keys=[key_entry(KEY, rps=0.001, burst=10), key_entry(OTHER)],
        routes=[
            route_entry("demo", upstream.url),  # type: ignore[attr-defined]
            route_entry("cached", upstream.url, cache_policy=CACHE_POLICY),  # type: ignore[attr-defined]
            route_entry("swr", upstream.url, cache_policy=SWR_POLICY),  # type: ignore[attr-defined]
        ],
    )


def _env(shared_redis: str, var_dir: Path) -> dict[str, str]:
    env = {**os.environ, "DEBUG": "true", "REDIS_URL": shared_redis, "API_KEY_PEPPER": PEPPER.decode(),
           "HELIOX_VAR_DIR": str(var_dir), "LOG_LEVEL": "WARNING", "SNAPSHOT_RESYNC_SECONDS": "0.5",
           "STATIC_ROOT": str(var_dir / "static")}
    env.pop("DATABASE_URL", None)
    return env


@pytest.fixture
def gateways(shared_redis: str, config: Config, tmp_path: Path) -> Iterator[list[int]]:
    publisher = RedisStore(shared_redis)
    config.publish(publisher)
    ports, processes = [], []
    for index in range(2):
        port = _free_port()
        env = _env(shared_redis, tmp_path / f"gw{index}")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "heliox_site.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log", "--log-level", "warning", "--no-proxy-headers",
             "--no-date-header"],  # as the README runs it
            cwd=ROOT, env=env, start_new_session=True,
        ))
        ports.append(port)
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            _wait_ready(port, deadline)
        yield ports
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


async def test_a_limit_is_exact_across_two_processes(gateways: list[int]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(*[
            client.get(f"http://127.0.0.1:{gateways[i % 2]}/g/demo/items", headers={"X-API-Key": KEY})
            for i in range(40)
        ])
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1


async def test_every_answer_of_a_real_server_has_one_date(gateways: list[int]) -> None:
    base = f"http://127.0.0.1:{gateways[0]}"
    async with httpx.AsyncClient(timeout=10) as client:
        answers = {"proxied": await client.get(f"{base}/g/demo/items", headers={"X-API-Key": OTHER}),
                   "gateway error": await client.get(f"{base}/g/demo/items"),
                   "ready": await client.get(f"{base}/ready"),
                   "django": await client.get(f"{base}/health")}
    assert {name: len(answer.headers.get_list("date")) for name, answer in answers.items()} == dict.fromkeys(answers, 1)


async def test_a_revoked_key_stops_working_on_both_processes_within_two_seconds(
        gateways: list[int], shared_redis: str, config: Config) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for port in gateways:
            assert (await client.get(f"http://127.0.0.1:{port}/g/demo/items",
                                     headers={"X-API-Key": OTHER})).status_code == 200
        config.keys = [k for k in config.keys if k["name"] != OTHER]  # what a revoke publishes
        config.publish(RedisStore(shared_redis))
        revoked_at = time.monotonic()
        pending = set(gateways)
        while pending and time.monotonic() - revoked_at < 2.0:
            for port in list(pending):
                response = await client.get(f"http://127.0.0.1:{port}/g/demo/items", headers={"X-API-Key": OTHER})
                if response.status_code == 401:
                    pending.discard(port)
            await asyncio.sleep(0.05)
    assert not pending, f"still accepted on {pending} after 2 s"


async def test_concurrent_misses_across_two_processes_make_one_upstream_call(gateways: list[int],
                                                                             upstream: object) -> None:
    base = upstream.url  # type: ignore[attr-defined]
    limits = httpx.Limits(max_connections=400)
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:
        await client.post(f"{base}/stats/reset")
        responses = await asyncio.gather(*[
            client.get(f"http://127.0.0.1:{gateways[i % 2]}/g/cached/slow?delay=0.5", headers={"X-API-Key": OTHER})
            for i in range(300)
        ])
        stats = (await client.get(f"{base}/stats")).json()
    assert {r.status_code for r in responses} == {200}
    assert stats["by_path"].get("/slow") == 1
    assert {r.headers["x-cache"] for r in responses} <= {"MISS", "HIT"}


async def test_a_block_is_enforced_by_both_processes_expires_and_lifts(gateways: list[int], shared_redis: str,
                                                                       config: Config) -> None:
    other_id = next(k["id"] for k in config.keys if k["name"] == OTHER)
    control = RedisStore(shared_redis)

    async def statuses() -> list[httpx.Response]:
        return [await client.get(f"http://127.0.0.1:{port}/g/demo/items", headers={"X-API-Key": OTHER})
                for port in gateways]

    async with httpx.AsyncClient(timeout=5) as client:
        control.set_block(f"k{other_id}", 1.0, "anomaly")
        blocked = await statuses()
        assert [r.status_code for r in blocked] == [429, 429]
        assert {r.json()["error"] for r in blocked} == {"blocked"}
        assert {r.headers["retry-after"] for r in blocked} == {"1"}
        await asyncio.sleep(1.1)  # the block's own TTL
        assert [r.status_code for r in await statuses()] == [200, 200]

        control.set_block(f"k{other_id}", 300, "anomaly")
        assert [r.status_code for r in await statuses()] == [429, 429]
        control.clear_block(f"k{other_id}")
        assert [r.status_code for r in await statuses()] == [200, 200]


@pytest.fixture
def celery_worker(shared_redis: str, tmp_path: Path) -> Iterator[None]:
    """A real Celery worker on the same Redis (the broker defaults to REDIS_URL)."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "heliox_site", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=_env(shared_redis, tmp_path / "worker"), start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


async def test_stale_hits_on_two_processes_are_refreshed_once_by_a_celery_worker(
        gateways: list[int], celery_worker: None, upstream: object) -> None:
    base = upstream.url  # type: ignore[attr-defined]
    async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=200)) as client:
        url = "/g/swr/slow?delay=0.3"
        await client.get(f"http://127.0.0.1:{gateways[0]}{url}", headers={"X-API-Key": OTHER})
        await client.post(f"{base}/stats/reset")
        responses = await asyncio.gather(*[
            client.get(f"http://127.0.0.1:{gateways[i % 2]}{url}", headers={"X-API-Key": OTHER})
            for i in range(100)
        ])
        assert {r.headers["x-cache"] for r in responses} == {"STALE"}
        deadline = time.monotonic() + 20  # the worker's start-up is part of this wait
        refreshes = 0
        while time.monotonic() < deadline and refreshes == 0:
            await asyncio.sleep(0.2)
            refreshes = (await client.get(f"{base}/stats")).json()["by_path"].get("/slow", 0)
        await asyncio.sleep(1.0)
        refreshes = (await client.get(f"{base}/stats")).json()["by_path"].get("/slow", 0)
    assert refreshes == 1


async def test_metrics_count_every_request_of_both_processes(gateways: list[int], shared_redis: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(*[
            client.get(f"http://127.0.0.1:{gateways[i % 2]}/g/demo/items", headers={"X-API-Key": KEY})
            for i in range(30)
        ] + [client.get(f"http://127.0.0.1:{gateways[0]}/g/demo/items")])  # 401 missing_api_key
    statuses = [r.status_code for r in responses]
    store = RedisStore(shared_redis)
    deadline = time.monotonic() + 3
    while True:  # records, and so metrics, are flushed every 100 ms
        counters, processes = store.read_metrics()
        served = sum(v for name, v in counters.items() if name.startswith("req|"))
        if served == len(responses) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert served == len(responses)
    assert counters["req|GET|demo|200"] == statuses.count(200) == 10
    assert counters["req|GET|demo|429"] == statuses.count(429) == 20
    assert counters["req|GET|-|401"] == 1
    assert counters["ratelimited|demo"] == 20
    assert len(processes) == 2


# The consumer commits from its own thread. Every transactional test here restores the
# serialised database (the seeded plans) so that the next one finds it as migrations left it.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_every_served_request_is_logged_and_rolled_up_exactly_once_despite_a_consumer_crash(
        gateways: list[int], shared_redis: str) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    from analytics.ingest import GROUP, consume_redis_stream
    from analytics.models import RequestLog, RequestRollup
    from gateway.runtime.store import RECORD_STREAM

    requests = [("/g/demo/items", {"X-API-Key": KEY})] * 40 + [("/g/demo/items", {})] * 5 \
        + [("/g/nowhere/x", {"X-API-Key": OTHER})] * 5 + [("/g/cached/items/1", {"X-API-Key": OTHER})] * 10
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(*[
            client.get(f"http://127.0.0.1:{gateways[i % 2]}{path}", headers=headers)
            for i, (path, headers) in enumerate(requests)
        ])
    assert {r.status_code for r in responses} == {200, 401, 404, 429}
    served_ids = {r.headers["x-request-id"] for r in responses}
    store = RedisStore(shared_redis)
    await asyncio.sleep(0.5)  # both gateways flush every 100 ms

    def consume_with_a_crash() -> None:
        client = store.sync
        client.xgroup_create(RECORD_STREAM, GROUP, id="0", mkstream=True)
        # A consumer takes the first entries and dies before storing or acknowledging them.
        client.xreadgroup(GROUP, "crashed-consumer", {RECORD_STREAM: ">"}, count=1)
        consume_redis_stream(store)  # the live consumer takes the rest
        consume_redis_stream(store, reclaim_idle_ms=0)  # and then the crashed one's entries
        consume_redis_stream(store, reclaim_idle_ms=0)  # a replay changes nothing
        connections.close_all()

    await sync_to_async(consume_with_a_crash)()

    def totals() -> tuple[set[str], dict[str, int]]:
        logged = set(RequestLog.objects.values_list("request_id", flat=True))
        rolled = {granularity: sum(RequestRollup.objects.filter(granularity=granularity)
                                   .values_list("count", flat=True))
                  for granularity in ("minute", "hour", "day")}
        connections.close_all()
        return logged, rolled

    logged, rolled = await sync_to_async(totals)()
    assert logged == served_ids
    assert rolled == {"minute": len(requests), "hour": len(requests), "day": len(requests)}
