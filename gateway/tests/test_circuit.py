"""Circuit breakers: a failing target is skipped, then answered for at once, then probed."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from gateway.runtime.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreakers
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.snapshot import RouteConfig, _route
from gateway.tests.dataplane import Config, client_for, key_entry, make_gateway, route_entry
from gateway.tests.test_proxy import assert_error

KEY = "hx_live_circuitcircuit0000001"
DEAD = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def route(slug: str = "r", *targets: str, tenant_id: int | None = None) -> RouteConfig:
    entry = route_entry(slug, targets[0] if targets else "http://t", tenant_id=tenant_id)
    if len(targets) > 1:
        entry["targets"] = [{"url": url, "weight": 1} for url in targets]
    return _route(entry)


def test_a_circuit_opens_after_the_threshold_then_lets_one_probe_through_after_its_time() -> None:
    clock = Clock()
    circuits = CircuitBreakers(failure_threshold=3, open_seconds=30, clock=clock)
    r = route()
    for _ in range(2):
        circuits.failed(r, "t")
    assert circuits.allow(r.id, "t")  # two in a row: still closed
    circuits.failed(r, "t")
    assert circuits.states() == {("r", "t"): OPEN}
    assert not circuits.allow(r.id, "t")
    clock.now += 29.9
    assert not circuits.allow(r.id, "t")
    clock.now += 0.2
    assert circuits.allow(r.id, "t")  # the probe
    assert circuits.states() == {("r", "t"): HALF_OPEN}
    assert not circuits.allow(r.id, "t")  # only one at a time
    circuits.failed(r, "t")  # the probe failed: open for another 30 s
    assert circuits.states() == {("r", "t"): OPEN}
    clock.now += 31
    assert circuits.allow(r.id, "t")
    circuits.succeeded(r, "t")
    assert circuits.states() == {("r", "t"): CLOSED}
    assert circuits.allow(r.id, "t") and circuits.allow(r.id, "t")


def test_a_success_resets_the_run_of_failures_and_a_lost_probe_is_replaced() -> None:
    clock = Clock()
    circuits = CircuitBreakers(failure_threshold=3, open_seconds=10, clock=clock)
    r = route()
    for _ in range(2):
        circuits.failed(r, "t")
    circuits.succeeded(r, "t")
    for _ in range(2):
        circuits.failed(r, "t")
    assert circuits.allow(r.id, "t")  # not 4 in a row
    circuits.failed(r, "t")
    clock.now += 11
    assert circuits.allow(r.id, "t")  # a probe whose client went away: it never reports
    clock.now += 11
    assert circuits.allow(r.id, "t")  # so another goes out


def test_two_tenants_routes_with_one_slug_and_target_have_circuits_of_their_own() -> None:
    circuits = CircuitBreakers(failure_threshold=1, open_seconds=30)
    first, second = route("api", "http://t", tenant_id=1), route("api", "http://t", tenant_id=2)
    circuits.failed(first, "http://t")
    assert not circuits.allow(first.id, "http://t")
    assert circuits.allow(second.id, "http://t")
    assert circuits.states() == {("api", "http://t"): OPEN}  # one series per slug and target: the worse


def test_circuits_of_routes_and_targets_no_longer_configured_are_forgotten() -> None:
    circuits = CircuitBreakers(failure_threshold=1, open_seconds=30)
    kept, dropped = route("kept", "http://a", "http://b"), route("gone", "http://a")
    for failed_route, target in [(kept, "http://a"), (kept, "http://b"), (dropped, "http://a")]:
        circuits.failed(failed_route, target)
    circuits.keep_only([dataclasses.replace(kept, targets=kept.targets[:1])])  # http://b taken off, "gone" deleted
    assert circuits.states() == {("kept", "http://a"): OPEN}


async def test_a_dead_upstream_gets_502s_then_503_circuit_open_without_a_call(tmp_path: Path) -> None:
    store = MemoryStore()
    Config(keys=[key_entry(KEY)], routes=[route_entry("down", DEAD)]).publish(store)
    gateway = make_gateway(store, tmp_path)
    async with client_for(gateway) as client:
        for _ in range(5):
            assert_error(await client.get("/g/down/x", headers={"X-API-Key": KEY}), 502, "upstream_error")
        started = time.monotonic()
        assert_error(await client.get("/g/down/x", headers={"X-API-Key": KEY}), 503, "circuit_open")
        assert time.monotonic() - started < 0.5
        ready = (await client.get("/ready")).json()
    assert ready["open_circuits"] == [f"down {DEAD}"]
    await gateway.shutdown()


async def test_a_route_skips_its_dead_target_and_probes_it_again_later(tmp_path: Path, upstream: object) -> None:
    store = MemoryStore()
    live = upstream.url  # type: ignore[attr-defined]
    Config(keys=[key_entry(KEY)], routes=[route_entry(
        "pair", DEAD, targets=[{"url": DEAD, "weight": 1}, {"url": live, "weight": 1}])]).publish(store)
    gateway = make_gateway(store, tmp_path, circuit_open_seconds=0.3)
    async with client_for(gateway) as client:
        statuses = [(await client.get("/g/pair/items", headers={"X-API-Key": KEY})).status_code for _ in range(20)]
        # Round robin sends every other request to the dead target until its circuit opens.
        assert statuses[:10].count(502) == 5 and statuses[10:] == [200] * 10
        await asyncio.sleep(0.35)
        probed = [(await client.get("/g/pair/items", headers={"X-API-Key": KEY})).status_code for _ in range(4)]
    assert probed.count(502) == 1  # one probe to the dead target, which opens its circuit again
    assert gateway.circuits.states() == {("pair", DEAD): OPEN}
    await gateway.shutdown()


async def test_an_upstream_that_answers_slowly_never_opens_its_circuit(tmp_path: Path, upstream: object) -> None:
    store = MemoryStore()
    Config(keys=[key_entry(KEY)], routes=[route_entry(
        "slow", upstream.url, timeout_ms=200, read_timeout_ms=5000)]).publish(store)  # type: ignore[attr-defined]
    gateway = make_gateway(store, tmp_path)
    async with client_for(gateway) as client:
        # Headers at once, then a byte every 0.1 s: past the deadline, yet the upstream is up.
        responses = await asyncio.gather(*[
            client.get("/g/slow/drip?bytes=50&interval=0.1", headers={"X-API-Key": KEY}) for _ in range(6)])
        assert {r.status_code for r in responses} == {504}
        assert gateway.circuits.states() == {}
        assert (await client.get("/g/slow/items", headers={"X-API-Key": KEY})).status_code == 200
    await gateway.shutdown()
