"""Faults: the store down (each RATELIMIT_ON_STORE_ERROR policy), a restart with no store
or database (the snapshot file), records spooled while the store is down."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.records import decode_batch
from gateway.runtime.redis_store import RedisStore
from gateway.tests.dataplane import Config, client_for, key_entry, make_gateway, route_entry

KEY = "hx_live_degradeddegraded000001"
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


def config_for(upstream_url: str) -> Config:
    return Config(keys=[key_entry(KEY, burst=3, rps=0.001)], routes=[route_entry("demo", upstream_url)])


async def gateway_with_dead_store(tmp_path: Path, upstream_url: str, policy: str) -> object:
    # Load the config once from a live in-process store, then point the gateway at a dead Redis.
    live = MemoryStore()
    config_for(upstream_url).publish(live)
    gateway = make_gateway(live, tmp_path, on_store_error=policy)
    await gateway.startup()
    gateway.store = RedisStore(DEAD_REDIS)
    gateway.records.store = gateway.store
    return gateway


async def test_store_down_with_local_policy_limits_in_process(tmp_path: Path, upstream: object) -> None:
    gateway = await gateway_with_dead_store(tmp_path, upstream.url, "local")  # type: ignore[attr-defined]
    async with client_for(gateway) as client:  # type: ignore[arg-type]
        responses = [await client.get("/g/demo/items", headers={"X-API-Key": KEY}) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert all(r.headers["x-gateway-degraded"] == "ratelimit-local" for r in responses)
    assert responses[-1].json()["error"] == "rate_limited"
    async with client_for(gateway) as client:  # type: ignore[arg-type]
        ready = (await client.get("/ready")).json()
    assert ready["store"] == "unavailable"
    assert ready["degraded"]["ratelimit_local"] == 5
    await gateway.shutdown()  # type: ignore[attr-defined]


async def test_store_down_with_open_policy_admits_everything(tmp_path: Path, upstream: object) -> None:
    gateway = await gateway_with_dead_store(tmp_path, upstream.url, "open")  # type: ignore[attr-defined]
    async with client_for(gateway) as client:  # type: ignore[arg-type]
        responses = [await client.get("/g/demo/items", headers={"X-API-Key": KEY}) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert responses[0].headers["x-gateway-degraded"] == "ratelimit-open"
    await gateway.shutdown()  # type: ignore[attr-defined]


async def test_store_down_with_closed_policy_refuses_with_503(tmp_path: Path, upstream: object) -> None:
    gateway = await gateway_with_dead_store(tmp_path, upstream.url, "closed")  # type: ignore[attr-defined]
    async with client_for(gateway) as client:  # type: ignore[arg-type]
        response = await client.get("/g/demo/items", headers={"X-API-Key": KEY})
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert response.headers["x-gateway-degraded"] == "ratelimit-closed"
    await gateway.shutdown()  # type: ignore[attr-defined]


async def test_records_spool_while_the_store_is_down_and_ship_once_it_returns(tmp_path: Path,
                                                                              upstream: object) -> None:
    gateway = await gateway_with_dead_store(tmp_path, upstream.url, "open")  # type: ignore[attr-defined]
    async with client_for(gateway) as client:  # type: ignore[arg-type]
        ids = [(await client.get("/g/demo/items", headers={"X-API-Key": KEY})).headers["x-request-id"]
               for _ in range(4)]
    await gateway.records.flush()  # type: ignore[attr-defined]
    spool = tmp_path / "records.spool"
    assert [r.request_id for line in spool.read_bytes().splitlines() for r in decode_batch(line)] == ids
    back = MemoryStore()
    gateway.records.store = back  # type: ignore[attr-defined]  # the store answers again
    await gateway.records.flush()  # type: ignore[attr-defined]
    assert [r.request_id for batch in back.records for r in decode_batch(batch)] == ids
    assert not spool.exists()
    # The metrics of the outage were kept and arrive with the first flush that lands, once.
    counters, processes = back.read_metrics()
    assert counters["req|GET|demo|200"] == 4
    assert next(iter(processes.values()))["ratelimit_open"] == 4
    await gateway.records.flush()  # type: ignore[attr-defined]
    assert back.read_metrics()[0]["req|GET|demo|200"] == 4
    await gateway.shutdown()  # type: ignore[attr-defined]


async def test_a_restart_serves_from_the_snapshot_file_when_store_and_database_are_down(
        tmp_path: Path, upstream: object) -> None:
    first = make_gateway(MemoryStore(), tmp_path)
    config_for(upstream.url).publish(first.store)  # type: ignore[attr-defined]
    await first.startup()
    await first.shutdown()
    assert (tmp_path / "snapshot.json").exists()

    async def database_down() -> None:
        raise ConnectionError("database is down")

    restarted = make_gateway(RedisStore(DEAD_REDIS), tmp_path, on_store_error="open", bootstrap=database_down)
    async with client_for(restarted) as client:
        ready = await client.get("/ready")
        served = await client.get("/g/demo/items", headers={"X-API-Key": KEY})
    assert ready.status_code == 200
    assert ready.json()["snapshot_source"] == "file"
    assert served.status_code == 200
    await restarted.shutdown()


async def test_ready_is_503_until_a_snapshot_is_loaded(tmp_path: Path) -> None:
    gateway = make_gateway(MemoryStore(), tmp_path)
    async with client_for(gateway) as client:
        ready = await client.get("/ready")
        proxied = await client.get("/g/demo/items", headers={"X-API-Key": KEY})
    assert ready.status_code == 503
    assert proxied.status_code == 503
    assert proxied.json()["error"] == "unavailable"
    await gateway.shutdown()


@pytest.mark.parametrize("forwarded, expected", [
    ("198.51.100.1", "198.51.100.1"),
    ("198.51.100.1, 10.0.0.5", "198.51.100.1"),  # rightmost untrusted hop
    ("6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a spoofed leftmost hop is ignored
    ("garbage", "10.0.0.9"),
])
async def test_x_forwarded_for_is_honoured_only_from_trusted_proxies(
        tmp_path: Path, upstream: object, forwarded: str, expected: str) -> None:
    store = MemoryStore()
    Config(keys=[key_entry(KEY)], routes=[route_entry("demo", upstream.url)]).publish(store)  # type: ignore[attr-defined]
    gateway = make_gateway(store, tmp_path, trusted_proxies=["10.0.0.0/8"])
    async with client_for(gateway, client_ip="10.0.0.9") as trusted, \
            client_for(gateway, client_ip="203.0.113.50") as untrusted:
        seen = (await trusted.get("/g/demo/headers", headers={"X-API-Key": KEY, "X-Forwarded-For": forwarded}))
        direct = await untrusted.get("/g/demo/headers", headers={"X-API-Key": KEY, "X-Forwarded-For": forwarded})
    await gateway.records.flush()
    client_ips = [r.client_ip for batch in store.records for r in decode_batch(batch)]
    assert client_ips == [expected, "203.0.113.50"]
    assert seen.status_code == direct.status_code == 200
    await gateway.shutdown()




async def test_with_records_off_requests_are_served_and_nothing_is_recorded(tmp_path: Path,
                                                                            upstream: object) -> None:
    store = MemoryStore()
    config_for(upstream.url).publish(store)  # type: ignore[attr-defined]
    gateway = make_gateway(store, tmp_path, records_enabled=False)
    async with client_for(gateway) as client:
        assert (await client.get("/g/demo/items", headers={"X-API-Key": KEY})).status_code == 200
    await gateway.records.flush()
    assert not store.records
    assert store.read_metrics()[0] == {}
    await gateway.shutdown()
