"""The response cache against RFC 9111's rules, on both stores, with an upstream the test drives."""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from gateway.runtime.app import Gateway
from gateway.runtime.cache_store import RedisCacheBackend
from gateway.runtime.store import Store
from gateway.tests.dataplane import Config, client_for, key_entry, route_entry, tenant_entry

ACME = "hx_live_cacheacmecacheacme0001"
BETA = "hx_live_cachebetacachebeta0002"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0


@dataclass
class ScriptedUpstream:
    """An upstream whose next answers the test sets, counting the calls it gets."""

    url: str = ""
    reply: Reply = field(default_factory=Reply)
    calls: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        reply = self.reply
        if reply.delay:
            await asyncio.sleep(reply.delay)
        body = reply.body if reply.body is not None else (
            f'{{"call": {self.calls}, "path": "{request.path_qs}", '
            f'"request_id": "{request.headers.get("x-request-id", "")}"}}').encode()
        return web.Response(status=reply.status, body=body, headers=reply.headers)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield upstream
    await runner.cleanup()


def policy(**overrides: object) -> dict:
    base = {"id": 1, "name": "test", "no_store": False, "ttl_seconds": 300, "stale_while_revalidate_seconds": 0,
            "stale_if_error_seconds": 0, "respect_upstream": False, "vary_headers": [], "normalize_query": True,
            "cacheable_statuses": [200, 203, 204, 301, 404, 410], "max_body_bytes": 1024 * 1024,
            "negative_cache_404": True, "bloom_expected_items": 1000, "bloom_false_positive_rate": 0.01}
    base.update(overrides)
    return base


@pytest.fixture
def cache_policy() -> dict:
    return policy()


@pytest.fixture
def config(scripted: ScriptedUpstream, cache_policy: dict) -> Config:
    return Config(
        tenants=[tenant_entry(1), tenant_entry(2)],
        keys=[key_entry(ACME, tenant_id=1), key_entry(BETA, tenant_id=2)],
        routes=[route_entry("c", scripted.url, cache_policy=cache_policy, timeout_ms=3000)],
    )


@pytest.fixture
async def gateway(store: Store, config: Config, gateway_factory: object) -> Gateway:
    config.publish(store)
    return await gateway_factory(store)  # type: ignore[operator]


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gateway) as client:
        yield client


async def get(client: httpx.AsyncClient, path: str = "/g/c/thing", key: str = ACME, **headers: str) -> httpx.Response:
    return await client.get(path, headers={"X-API-Key": key, **headers})


async def test_a_miss_is_stored_and_then_hit(client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
    first, second = await get(client), await get(client)
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["cache-status"] == "heliox; fwd=uri-miss; fwd-status=200"
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["cache-status"].startswith("heliox; hit; ttl=")
    assert int(second.headers["age"]) >= 0
    assert second.content == first.content
    assert scripted.calls == 1


async def test_post_is_never_served_from_cache_and_invalidates_the_path(client: httpx.AsyncClient,
                                                                         scripted: ScriptedUpstream) -> None:
    await get(client, "/g/c/thing?a=1")
    assert (await get(client, "/g/c/thing?a=1")).headers["x-cache"] == "HIT"
    posted = await client.post("/g/c/thing", headers={"X-API-Key": ACME}, content=b"{}")
    assert "x-cache" in posted.headers and posted.headers["x-cache"] == "BYPASS"
    assert (await get(client, "/g/c/thing?a=1")).headers["x-cache"] == "MISS"
    assert scripted.calls == 3


@pytest.mark.parametrize("headers", [
    {"Cache-Control": "no-store"}, {"Cache-Control": "private, max-age=60"}, {"Set-Cookie": "s=1"},
    {"Vary": "*"}, {"Cache-Control": "no-cache"},
])
async def test_responses_that_forbid_storing_are_not_stored(client: httpx.AsyncClient, scripted: ScriptedUpstream,
                                                           headers: dict) -> None:
    scripted.reply = Reply(headers=headers)
    await get(client)
    assert (await get(client)).headers["x-cache"] == "MISS"
    assert scripted.calls == 2


@pytest.mark.parametrize("status", [206, 429, 500, 503])
async def test_partial_throttled_and_error_statuses_are_never_stored(client: httpx.AsyncClient,
                                                                     scripted: ScriptedUpstream, status: int) -> None:
    scripted.reply = Reply(status=status)
    await get(client)
    await get(client)
    assert scripted.calls == 2


async def test_request_no_store_bypasses_and_no_cache_revalidates(client: httpx.AsyncClient,
                                                                  scripted: ScriptedUpstream) -> None:
    await get(client)
    bypass = await get(client, **{"Cache-Control": "no-store"})
    assert bypass.headers["x-cache"] == "BYPASS"
    revalidated = await get(client, **{"Cache-Control": "no-cache"})
    assert revalidated.headers["x-cache"] == "MISS"
    assert "fwd=request" in revalidated.headers["cache-status"]
    max_age_zero = await get(client, **{"Cache-Control": "max-age=0"})
    assert max_age_zero.headers["x-cache"] == "MISS"
    assert scripted.calls == 4


async def test_authorized_requests_are_stored_only_when_the_response_allows(client: httpx.AsyncClient,
                                                                            scripted: ScriptedUpstream) -> None:
    await get(client, Authorization="Bearer alice")
    assert (await get(client, Authorization="Bearer alice")).headers["x-cache"] == "MISS"
    scripted.reply = Reply(headers={"Cache-Control": "public, max-age=60"})
    await get(client, "/g/c/public", Authorization="Bearer alice")
    assert (await get(client, "/g/c/public", Authorization="Bearer alice")).headers["x-cache"] == "HIT"
    # Per credential: Bob never receives Alice's entry.
    assert (await get(client, "/g/c/public", Authorization="Bearer bob")).headers["x-cache"] == "MISS"


async def test_two_tenants_never_share_an_entry(client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
    alice = await get(client, key=ACME)
    beta = await get(client, key=BETA)
    assert beta.headers["x-cache"] == "MISS"
    assert beta.json()["request_id"] == beta.headers["x-request-id"] != alice.json()["request_id"]


async def test_query_order_is_normalised_but_blank_and_absent_values_differ(client: httpx.AsyncClient,
                                                                             scripted: ScriptedUpstream) -> None:
    await get(client, "/g/c/q?b=2&a=1")
    assert (await get(client, "/g/c/q?a=1&b=2")).headers["x-cache"] == "HIT"
    assert (await get(client, "/g/c/q?a=1&b=2&c=")).headers["x-cache"] == "MISS"
    assert (await get(client, "/g/c/q?a=1&b=2&c")).headers["x-cache"] == "MISS"


async def test_head_is_answered_from_a_get_entry(client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
    got = await get(client)
    head = await client.head("/g/c/thing", headers={"X-API-Key": ACME})
    assert head.headers["x-cache"] == "HIT"
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))


async def test_binary_bodies_round_trip_byte_exact(client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
    payload = gzip.compress(os.urandom(50_000))
    scripted.reply = Reply(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "image/png"})
    first = await client.get("/g/c/bin", headers={"X-API-Key": ACME, "Accept-Encoding": "identity"})
    second = await client.get("/g/c/bin", headers={"X-API-Key": ACME, "Accept-Encoding": "identity"})
    assert second.headers["x-cache"] == "HIT"
    assert first.headers["content-encoding"] == second.headers["content-encoding"] == "gzip"
    # httpx decodes gzip: equal decoded bodies mean the compressed bytes survived intact.
    assert first.content == second.content == gzip.decompress(payload)


async def test_garbage_cache_control_is_survived(client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
    scripted.reply = Reply(headers={"Cache-Control": ',,=;;max-age="x", s-maxage=-5, =, "'})
    assert (await get(client)).status_code == 200
    assert (await get(client)).headers["x-cache"] == "HIT"  # the policy's TTL applies
    assert (await get(client, **{"Cache-Control": "max-age=abc, ,="})).status_code == 200


async def test_a_huge_vary_list_is_not_stored(client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
    scripted.reply = Reply(headers={"Vary": ", ".join(f"X-H{i}" for i in range(40))})
    await get(client)
    assert (await get(client)).headers["x-cache"] == "MISS"


async def test_the_upstreams_vary_selects_the_variant(client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
    scripted.reply = Reply(headers={"Vary": "Accept-Language"})
    await get(client, **{"Accept-Language": "en"})
    assert (await get(client, **{"Accept-Language": "en"})).headers["x-cache"] == "HIT"
    assert (await get(client, **{"Accept-Language": "fr"})).headers["x-cache"] == "MISS"


class TestPolicyVary:
    @pytest.fixture
    def cache_policy(self) -> dict:
        return policy(vary_headers=["Accept"])

    async def test_policy_vary_headers_are_part_of_the_key(self, client: httpx.AsyncClient) -> None:
        await get(client, Accept="application/json")
        assert (await get(client, Accept="text/csv")).headers["x-cache"] == "MISS"
        assert (await get(client, Accept="application/json")).headers["x-cache"] == "HIT"


class TestBodyLimit:
    @pytest.fixture
    def cache_policy(self) -> dict:
        return policy(max_body_bytes=1000)

    async def test_a_body_over_the_max_size_is_served_but_not_stored(self, client: httpx.AsyncClient,
                                                                     scripted: ScriptedUpstream) -> None:
        scripted.reply = Reply(body=b"z" * 5000)
        first = await get(client)
        second = await get(client)
        assert len(first.content) == len(second.content) == 5000
        assert second.headers["x-cache"] == "MISS"
        assert scripted.calls == 2


class TestRespectUpstream:
    @pytest.fixture
    def cache_policy(self) -> dict:
        return policy(respect_upstream=True, ttl_seconds=300)

    async def test_s_maxage_beats_max_age_and_zero_means_stale(self, client: httpx.AsyncClient,
                                                               scripted: ScriptedUpstream) -> None:
        scripted.reply = Reply(headers={"Cache-Control": "max-age=600, s-maxage=0"})
        await get(client)
        assert (await get(client)).headers["x-cache"] == "MISS"
        scripted.reply = Reply(headers={"Cache-Control": "max-age=600"})
        await get(client, "/g/c/other")
        hit = await get(client, "/g/c/other")
        assert hit.headers["x-cache"] == "HIT"
        assert 590 < int(hit.headers["cache-status"].split("ttl=")[1]) <= 600

    async def test_an_expires_in_the_past_is_not_fresh(self, client: httpx.AsyncClient,
                                                       scripted: ScriptedUpstream) -> None:
        scripted.reply = Reply(headers={"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"})
        await get(client)
        assert (await get(client)).headers["x-cache"] == "MISS"


class TestStaleWhileRevalidate:
    @pytest.fixture
    def cache_policy(self) -> dict:
        # TTL 0: every stored entry is immediately stale, so no test has to sleep.
        return policy(ttl_seconds=0, stale_while_revalidate_seconds=60)

    async def test_stale_is_answered_at_once_with_exactly_one_refresh(self, client: httpx.AsyncClient,
                                                                       scripted: ScriptedUpstream,
                                                                       gateway: Gateway) -> None:
        await get(client)
        scripted.reply = Reply(delay=0.3)
        responses = await asyncio.gather(*[get(client) for _ in range(50)])
        assert {r.headers["x-cache"] for r in responses} == {"STALE"}
        assert all("stale-while-revalidate" in r.headers["cache-status"] for r in responses)
        assert all(float(r.headers["x-gateway-overhead-ms"]) < 300 for r in responses)
        await asyncio.sleep(0.6)
        assert scripted.calls == 2  # the first fill and one refresh
        assert gateway.caching.cache.counters.refreshes == 1


class TestStaleIfError:
    @pytest.fixture
    def cache_policy(self) -> dict:
        return policy(ttl_seconds=0, stale_if_error_seconds=60)

    async def test_an_upstream_500_is_covered_by_the_stale_copy(self, client: httpx.AsyncClient,
                                                                scripted: ScriptedUpstream) -> None:
        original = await get(client)
        scripted.reply = Reply(status=500, body=b'{"error": "boom"}')
        stale = await get(client)
        assert stale.status_code == 200
        assert stale.content == original.content
        assert stale.headers["x-cache"] == "STALE"
        assert 'detail="stale-if-error"' in stale.headers["cache-status"]
        assert "fwd-status=500" in stale.headers["cache-status"]

    async def test_an_unreachable_upstream_is_covered_too(self, client: httpx.AsyncClient, store: Store,
                                                          config: Config, scripted: ScriptedUpstream) -> None:
        await get(client)
        config.routes[0]["targets"] = [{"url": "http://127.0.0.1:9", "weight": 1}]
        config.publish(store)
        await asyncio.sleep(0.5)  # the gateway's watcher picks the change up (resync 0.2 s)
        stale = await get(client)
        assert stale.status_code == 200
        assert stale.headers["x-cache"] == "STALE"
        assert "fwd-status=502" in stale.headers["cache-status"]


class TestWithoutStaleIfError:
    @pytest.fixture
    def cache_policy(self) -> dict:
        return policy(ttl_seconds=0, stale_while_revalidate_seconds=0, stale_if_error_seconds=0)

    async def test_an_upstream_500_passes_through(self, client: httpx.AsyncClient,
                                                  scripted: ScriptedUpstream) -> None:
        scripted.reply = Reply(headers={"Cache-Control": "max-age=0"})
        await get(client)
        scripted.reply = Reply(status=500, body=b'{"error": "boom"}')
        response = await get(client)
        assert response.status_code == 500
        assert response.json() == {"error": "boom"}


async def test_concurrent_misses_make_one_upstream_call(client: httpx.AsyncClient,
                                                        scripted: ScriptedUpstream) -> None:
    scripted.reply = Reply(delay=0.3)
    responses = await asyncio.gather(*[get(client, "/g/c/cold") for _ in range(200)])
    assert {r.status_code for r in responses} == {200}
    assert {r.content for r in responses} == {responses[0].content}
    assert scripted.calls == 1
    assert sum("collapsed" in r.headers["cache-status"] for r in responses) == 199


async def test_a_failing_leader_is_not_retried_by_every_follower(client: httpx.AsyncClient,
                                                                 scripted: ScriptedUpstream) -> None:
    scripted.reply = Reply(status=503, delay=0.3)
    responses = await asyncio.gather(*[get(client, "/g/c/failing") for _ in range(30)])
    assert {r.status_code for r in responses} == {503}
    assert scripted.calls == 1


async def test_the_cache_down_means_bypass_and_still_served(store: Store, config: Config, tmp_path: Path,
                                                           scripted: ScriptedUpstream) -> None:
    from gateway.tests.dataplane import make_gateway

    config.publish(store)
    gateway = make_gateway(store, tmp_path, cache_backend=RedisCacheBackend("redis://127.0.0.1:1/0",
                                                                            socket_timeout=0.2))
    async with client_for(gateway) as client:
        responses = [await get(client) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert {r.headers["x-cache"] for r in responses} == {"BYPASS"}
    assert "cache" in responses[0].headers["x-gateway-degraded"]
    await gateway.shutdown()


async def test_purge_removes_entries_and_reports_the_count(client: httpx.AsyncClient, gateway: Gateway,
                                                           config: Config) -> None:
    for path in ("/g/c/items/1", "/g/c/items/2", "/g/c/users/1"):
        await get(client, path)
    await get(client, "/g/c/items/1", key=BETA)
    backend = gateway.caching.cache.backend
    route_id = config.routes[0]["id"]
    assert await asyncio.to_thread(backend.purge, route_ids=[route_id], tenant_id=2, prefix=None) == 1
    assert await asyncio.to_thread(backend.purge, route_ids=[route_id], tenant_id=None, prefix="/items") == 2
    assert (await get(client, "/g/c/items/1")).headers["x-cache"] == "MISS"
    assert (await get(client, "/g/c/users/1")).headers["x-cache"] == "HIT"
    assert await asyncio.to_thread(backend.purge, route_ids=None, tenant_id=None, prefix=None) == 2
    assert await asyncio.to_thread(backend.purge, route_ids=[999_999], tenant_id=None, prefix=None) == 0




class TestNegativeCache:
    @pytest.fixture
    def cache_policy(self) -> dict:
        return policy(cacheable_statuses=[200], negative_cache_404=True, bloom_expected_items=1000)

    async def test_a_404_is_answered_from_the_filter_without_calling_upstream(
            self, client: httpx.AsyncClient, scripted: ScriptedUpstream) -> None:
        scripted.reply = Reply(status=404, body=b'{"detail": "no such widget"}')
        first = await get(client, "/g/c/widgets/99")
        second = await get(client, "/g/c/widgets/99")
        assert first.status_code == second.status_code == 404
        assert second.json() == {"detail": "no such widget"}
        assert second.headers["x-cache"] == "HIT"
        assert 'detail="negative"' in second.headers["cache-status"]
        assert scripted.calls == 1

    async def test_other_paths_and_other_tenants_are_not_affected(self, client: httpx.AsyncClient,
                                                                  scripted: ScriptedUpstream) -> None:
        scripted.reply = Reply(status=404)
        await get(client, "/g/c/widgets/99", key=ACME)
        scripted.reply = Reply(status=200)
        assert (await get(client, "/g/c/widgets/98", key=ACME)).status_code == 200
        assert (await get(client, "/g/c/widgets/99", key=BETA)).status_code == 200
        assert scripted.calls == 3

    async def test_a_successful_write_forgets_the_404(self, client: httpx.AsyncClient,
                                                      scripted: ScriptedUpstream) -> None:
        scripted.reply = Reply(status=404)
        await get(client, "/g/c/widgets/7")
        scripted.reply = Reply(status=201)
        await client.post("/g/c/widgets/7", headers={"X-API-Key": ACME}, content=b"{}")
        scripted.reply = Reply(status=200)
        assert (await get(client, "/g/c/widgets/7")).status_code == 200


def test_bloom_filters_are_sized_for_their_expected_items_and_rate() -> None:
    from gateway.runtime.cache import bloom_size

    assert bloom_size(100_000, 0.01) == (958_506, 7)
    assert bloom_size(1_000, 0.001) == (14_378, 10)


async def test_the_filters_false_positive_rate_is_near_its_target() -> None:
    import time

    from gateway.runtime.cache import CacheKey, Entry, bloom_probe
    from gateway.runtime.cache_rules import Freshness
    from gateway.runtime.cache_store import MemoryCacheBackend
    from gateway.runtime.snapshot import CachePolicyConfig

    policy_config = CachePolicyConfig(1, "p", False, 60, 0, 0, False, (), True, frozenset({200}), 10**6, True,
                                      1000, 0.01)
    backend, now = MemoryCacheBackend(), time.time()

    def key(i: int) -> CacheKey:
        digest = __import__("hashlib").sha256(f"/path/{i}".encode()).digest()
        return CacheKey(f"hxc:{{t1:r1}}:e:{digest.hex()[:40]}", "m", "x", "l", "idx", f"/path/{i}", 1, digest)

    entry = Entry(404, [], b"", now, Freshness(60, 0, 0, 0), {}).encode()
    for i in range(1000):
        await backend.remember_404(bloom_probe(key(i), policy_config, now), entry, 60_000, 120_000)
    probe = bloom_probe(key(0), policy_config, now)
    filter_bits = int.from_bytes(backend._data[probe.current][0], "big")
    false_positives = sum(
        all(filter_bits >> offset & 1 for offset in bloom_probe(key(i), policy_config, now).offsets)
        for i in range(1000, 21000)
    )
    assert false_positives / 20000 < 0.02


async def test_a_hit_costs_one_redis_call_when_the_cache_shares_the_store(store: Store, gateway: Gateway,
                                                                          client: httpx.AsyncClient) -> None:
    import threading

    import redis

    from gateway.runtime.redis_store import RedisStore

    if not isinstance(store, RedisStore):
        assert not gateway.combined_lookup
        return
    assert gateway.combined_lookup
    await get(client, "/g/c/once")
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with redis.Redis.from_url(store.url).monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                seen.append(f"{command['client_address']} {command['command']}")
                if stop.is_set() and "PING" in command["command"]:
                    return

    ready = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(5)
    hit = await get(client, "/g/c/once")
    stop.set()
    redis.Redis.from_url(store.url).ping()
    watcher.join(5)
    assert hit.headers["x-cache"] == "HIT"
    from_clients = [line for line in seen if not line.startswith("lua")]
    assert sum("EVALSHA" in line for line in from_clients) == 1
    # The cache's keys went in with the admission script, never in a command of their own.
    assert not [line for line in from_clients if "hxc:" in line and "EVALSHA" not in line]
    assert [line for line in seen if line.startswith("lua") and "hxc:" in line]


class TestDispatchedRefresh:
    """With a broker, the stale hit enqueues the refresh instead of doing it (the dispatcher
    stands in for Celery's client); if enqueueing fails, the gateway refreshes itself."""

    @pytest.fixture
    def cache_policy(self) -> dict:
        return policy(ttl_seconds=0, stale_while_revalidate_seconds=60)

    async def test_a_stale_hit_hands_the_refresh_to_the_worker(self, store: Store, config: Config,
                                                                 gateway_factory: object, tmp_path: Path,
                                                                 scripted: ScriptedUpstream) -> None:
        config.publish(store)
        jobs: list[dict] = []

        async def enqueue(job: dict) -> None:
            jobs.append(job)

        gateway = await gateway_factory(store, dispatch_refresh=enqueue)  # type: ignore[operator]
        async with client_for(gateway) as client:
            await get(client, "/g/c/report?b=2&a=1")
            stale = await get(client, "/g/c/report?b=2&a=1", Accept="text/csv")
            await asyncio.sleep(0.1)
            assert stale.headers["x-cache"] == "STALE"
            assert scripted.calls == 1  # the gateway did not refresh it itself
            more = await asyncio.gather(*[get(client, "/g/c/report?b=2&a=1") for _ in range(20)])
            await asyncio.sleep(0.1)
            assert {r.headers["x-cache"] for r in more} == {"STALE"}
            assert len(jobs) == 1  # one queued refresh for the burst, not one per stale hit
            assert (jobs[0]["path"], jobs[0]["query"], jobs[0]["tenant_id"]) == ("/report", "b=2&a=1", 1)
            assert ["accept", "text/csv"] in jobs[0]["headers"]
            # What the worker runs for that job: one refresh under the shared lock.
            assert await gateway.caching.refresh_now(jobs[0]) is True
            assert scripted.calls == 2
            refreshed = await get(client, "/g/c/report?b=2&a=1")
            assert refreshed.json()["call"] == 2

    async def test_an_enqueue_failure_refreshes_in_process(self, store: Store, config: Config,
                                                            gateway_factory: object,
                                                            scripted: ScriptedUpstream) -> None:
        config.publish(store)

        async def broker_down(job: dict) -> None:
            raise ConnectionError("broker unreachable")

        gateway = await gateway_factory(store, dispatch_refresh=broker_down)  # type: ignore[operator]
        async with client_for(gateway) as client:
            await get(client)
            assert (await get(client)).headers["x-cache"] == "STALE"
            await asyncio.sleep(0.2)
        assert scripted.calls == 2
