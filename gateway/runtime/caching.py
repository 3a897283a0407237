"""Step 5 of a proxied request: answer GET/HEAD from the cache where RFC 9111 allows.

Reads top-down in the order a request meets it: request directives → key → look-up →
fresh (HIT) / stale within SWR (STALE + one refresh) → one coalesced fetch (MISS) →
stale-if-error when that fetch fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from gateway.runtime import cache_rules
from gateway.runtime.cache import (
    NEGATIVE_TTL_SECONDS,
    CacheKey,
    Entry,
    Fetched,
    ResponseCache,
    bloom_probe,
    cache_key,
    header_values,
)
from gateway.runtime.cache_store import BloomProbe, Found
from gateway.runtime.errors import GatewayError
from gateway.runtime.exchange import Exchange, Send
from gateway.runtime.forward import response_headers
from gateway.runtime.snapshot import CachePolicyConfig, RouteConfig
from gateway.runtime.store import StoreError

if TYPE_CHECKING:
    from gateway.runtime.app import Gateway

log = logging.getLogger(__name__)
# Entries never outlive this, so an invalidation mark kept as long covers every older entry.
MAX_ENTRY_SECONDS = 7 * 86400
# Held from enqueueing until the worker is done; if the queue is slower than this, a later
# stale hit may queue a second refresh (harmless, rare).
QUEUED_REFRESH_LOCK_MS = 60_000
_NOT_STORED_HEADERS = frozenset({b"content-length", b"age"})


@dataclass(frozen=True, slots=True)
class CachePlan:
    directives: cache_rules.RequestDirectives
    key: CacheKey | None  # None: the request forbids the cache (no-store)
    bloom: BloomProbe | None


def _cache_status(*params: str) -> tuple[bytes, bytes]:
    return (b"cache-status", ("heliox; " + "; ".join(params)).encode())


class CachingLayer:
    def __init__(self, gateway: Gateway, cache: ResponseCache,
                 dispatch_refresh: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.gateway = gateway
        self.cache = cache
        self.dispatch_refresh = dispatch_refresh

    def plan(self, scope: dict[str, Any], exchange: Exchange, route: RouteConfig,
             policy: CachePolicyConfig, path: str) -> CachePlan:
        """What this request may do with the cache, decided before admission so the look-up
        can ride in the admission script's round trip."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        directives = cache_rules.request_directives(header_values(headers, b"cache-control"),
                                                    next(iter(header_values(headers, b"pragma")), None))
        if directives.no_store or exchange.tenant_id is None:
            return CachePlan(directives, None, None)
        key = cache_key(exchange.tenant_id, route, policy, path, scope.get("query_string", b""), headers)
        bloom = bloom_probe(key, policy, time.time()) if policy.negative_cache_404 else None
        return CachePlan(directives, key, bloom)

    async def serve(self, scope: dict[str, Any], send: Send, exchange: Exchange, route: RouteConfig,
                    policy: CachePolicyConfig, path: str, body: bytes, plan: CachePlan,
                    prefetched: Found | None = None) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        directives, key, bloom = plan.directives, plan.key, plan.bloom
        if key is None:
            self.cache.counters.bypass += 1
            exchange.cache_status = "BYPASS"
            await self.gateway.forward(scope, send, exchange, route, path, body, [_cache_status("fwd=request")])
            return
        try:
            if prefetched is not None:
                found = self.cache.interpret(prefetched, headers)
            else:
                found = await self.cache.lookup(key, headers, bloom)
        except StoreError:
            self.cache.counters.errors += 1
            self.cache.counters.bypass += 1
            exchange.cache_status = "BYPASS"
            exchange.degraded = ",".join(filter(None, [exchange.degraded, "cache"]))
            await self.gateway.forward(scope, send, exchange, route, path, body,
                                       [_cache_status("fwd=bypass", 'detail="cache-unavailable"')])
            return

        now = time.time()
        entry = found.entry
        if entry is None and found.negative is not None and not directives.must_revalidate:
            # A path this route answered 404 to moments ago: its own 404, no upstream call.
            self.cache.counters.hits += 1
            exchange.cache_status = "HIT"
            await self._send_entry(send, exchange, found.negative, now, _cache_status(
                "hit", f"ttl={int(found.negative.remaining(now))}", 'detail="negative"'))
            return
        forward_reason = "uri-miss"
        if entry is not None:
            remaining = entry.remaining(now)
            if directives.must_revalidate:
                forward_reason = "request"
            elif remaining > 0:
                self.cache.counters.hits += 1
                exchange.cache_status = "HIT"
                await self._send_entry(send, exchange, entry, now, _cache_status("hit", f"ttl={int(remaining)}"))
                return
            elif -remaining <= entry.freshness.stale_while_revalidate:
                self.cache.counters.stale += 1
                exchange.cache_status = "STALE"
                self._schedule_refresh(scope, exchange, route, policy, path, key, bloom)
                await self._send_entry(send, exchange, entry, now, _cache_status(
                    "hit", f"ttl={int(remaining)}", 'detail="stale-while-revalidate"'))
                return
            else:
                forward_reason = "stale"

        if exchange.method == "HEAD":  # never store a body-less answer; GETs fill the cache
            exchange.cache_status = "MISS"
            self.cache.counters.misses += 1
            await self.gateway.forward(scope, send, exchange, route, path, body,
                                        [_cache_status(f"fwd={forward_reason}")])
            return

        fetch = self._fetcher(scope, exchange, route, policy, path, body, send)
        try:
            fetched, collapsed = await self.cache.fetch_once(
                key, route, fetch, self._remember(key, policy, headers, bloom), token=exchange.request_id)
        except GatewayError as error:
            if entry is not None and self._within_stale_if_error(entry, now):
                await self._send_stale_on_error(send, exchange, entry, now, error.status)
                return
            raise
        if fetched is None:
            if collapsed:  # the leader had to stream its answer: fetch our own
                exchange.cache_status = "MISS"
                await self.gateway.forward(scope, send, exchange, route, path, body,
                                            [_cache_status(f"fwd={forward_reason}", "collapsed")])
            return  # the leader streamed it to its client already
        if fetched.status >= 500 and entry is not None and self._within_stale_if_error(entry, now):
            await self._send_stale_on_error(send, exchange, entry, now, fetched.status)
            return
        self.cache.counters.misses += 1
        exchange.cache_status = "MISS"
        params = [f"fwd={forward_reason}", f"fwd-status={fetched.status}"]
        if collapsed:
            params.append("collapsed")
        await self.gateway.send_whole(send, exchange, fetched.status, fetched.headers, fetched.body,
                                       [_cache_status(*params)])

    def _schedule_refresh(self, scope: dict[str, Any], exchange: Exchange, route: RouteConfig,
                          policy: CachePolicyConfig, path: str, key: CacheKey, bloom: BloomProbe | None) -> None:
        """Hand the refresh to a Celery worker when there is a broker (enqueued off the event
        loop, after the response); in this process when there is none or enqueueing fails."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        token = f"refresh-{exchange.request_id}"

        async def in_process(locked: bool = False) -> None:
            await self.cache.refresh(key, route, self._fetcher(scope, exchange, route, policy, path, b"", None),
                                     self._remember(key, policy, headers, bloom), token, locked=locked)

        if self.dispatch_refresh is None:
            self.cache.in_background(in_process())
            return
        job = {
            "tenant_id": exchange.tenant_id, "route_id": route.id, "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"), "client_ip": exchange.client_ip,
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers],
            "request_id": exchange.request_id, "token": token,
        }
        dispatch = self.dispatch_refresh

        async def enqueue() -> None:
            # The lock is taken before enqueueing, so a burst of stale hits queues one job, not
            # one per hit (a worker runs queued jobs one after another: each would find the
            # lock free). The worker adopts the lock through the job's token.
            if not await self.cache.backend.acquire(key.lock, token, QUEUED_REFRESH_LOCK_MS):
                return
            try:
                await dispatch(job)
            except Exception as exc:
                log.warning("could not enqueue the refresh of %s (%r); refreshing here", path, exc)
                await in_process(locked=True)

        self.cache.in_background(enqueue())

    async def refresh_now(self, job: dict[str, Any]) -> bool:
        """The worker's side of a dispatched refresh: the same fetch, lock and storing rules.
        Returns whether this worker refreshed (False: the route is gone or another holds the lock)."""
        snapshot = self.gateway.snapshot
        route = snapshot.route_by_id(job["route_id"]) if snapshot else None
        if route is None or route.cache_policy is None:
            return False
        scope = {"headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in job["headers"]],
                 "query_string": job["query"].encode("latin-1"), "scheme": "http", "http_version": "1.1",
                 "client": (job["client_ip"], 0) if job["client_ip"] else None}
        exchange = Exchange(request_id=job["request_id"], started=time.perf_counter(), method="GET",
                            path=job["path"], client_ip=job["client_ip"], tenant_id=job["tenant_id"])
        plan = self.plan(scope, exchange, route, route.cache_policy, job["path"])
        if plan.key is None:
            return False
        return await self.cache.refresh(
            plan.key, route, self._fetcher(scope, exchange, route, route.cache_policy, job["path"], b"", None),
            self._remember(plan.key, route.cache_policy, scope["headers"], plan.bloom),
            job["token"], locked=True)

    async def invalidate_path(self, exchange: Exchange, route: RouteConfig, policy: CachePolicyConfig,
                              path: str) -> None:
        """A successful unsafe method: every cached variant of this path is now suspect."""
        if exchange.tenant_id is None:
            return
        key = cache_key(exchange.tenant_id, route, policy, path, b"", [])
        try:
            await self.cache.invalidate(key, MAX_ENTRY_SECONDS)
        except StoreError:
            log.warning("could not invalidate cached %s after %s", path, exchange.method)

    # --- pieces ----------------------------------------------------------------------------
    def _fetcher(self, scope: dict[str, Any], exchange: Exchange, route: RouteConfig, policy: CachePolicyConfig,
                 path: str, body: bytes, send: Send | None) -> Any:
        """The upstream call for this key. A response we can hold whole comes back as
        Fetched; a larger or unbounded one is streamed straight to the client (when there
        is one) and never stored — a partial body is never cached."""

        async def read(upstream: aiohttp.ClientResponse, started: float) -> Fetched | None:
            length = upstream.content_length
            headers = [(n, v) for n, v in response_headers(route, upstream.raw_headers)
                       if n not in _NOT_STORED_HEADERS]
            if length is not None and length <= policy.max_body_bytes:
                payload = await upstream.read()
                exchange.upstream_seconds = time.perf_counter() - started
                return Fetched(upstream.status, headers, payload)
            exchange.upstream_seconds = time.perf_counter() - started
            if send is None:
                return None
            exchange.cache_status = "MISS"
            await self.gateway.send_streaming(send, exchange, route, upstream,
                                               [_cache_status("fwd=uri-miss", 'detail="not-stored"')])
            return None

        async def fetch() -> Fetched | None:
            return await self.gateway.forwarder.exchange(
                scope, "GET", exchange.request_id, exchange.client_ip, route, path, body, read)

        return fetch

    def _remember(self, key: CacheKey, policy: CachePolicyConfig, request_headers: list[tuple[bytes, bytes]],
                  bloom: BloomProbe | None) -> Any:
        has_authorization = bool(header_values(request_headers, b"authorization"))

        async def remember(fetched: Fetched) -> None:
            response_cc = cache_rules.parse_cache_control(header_values(fetched.headers, b"cache-control"))
            vary = cache_rules.vary_names(header_values(fetched.headers, b"vary"))
            has_cookie = bool(header_values(fetched.headers, b"set-cookie"))
            if not cache_rules.storable(fetched.status, policy, response_cc, has_cookie, vary, has_authorization):
                return
            now = time.time()
            if fetched.status == 404 and bloom is not None:
                negative = Entry(404, fetched.headers, fetched.body, now,
                                 cache_rules.Freshness(NEGATIVE_TTL_SECONDS, 0, 0, 0), {})
                try:
                    await self.cache.remember_404(bloom, negative)
                except StoreError:
                    log.warning("could not remember the 404 of %s", key.path)
                return
            freshness = cache_rules.freshness(
                policy, response_cc, _first(fetched.headers, b"expires"), _first(fetched.headers, b"date"),
                _first(fetched.headers, b"age"), now)
            if freshness.ttl == 0 and not freshness.stale_while_revalidate and not freshness.stale_if_error:
                return
            freshness = cache_rules.Freshness(min(freshness.ttl, MAX_ENTRY_SECONDS),
                                              freshness.stale_while_revalidate, freshness.stale_if_error,
                                              freshness.initial_age)
            entry = Entry(fetched.status, fetched.headers, fetched.body, now, freshness,
                          {name: ",".join(v.decode("latin-1") for v in header_values(request_headers, name.encode()))
                           for name in vary or ()})
            try:
                await self.cache.store(key, entry)
            except StoreError:
                self.cache.counters.errors += 1
                log.warning("cache store failed for %s", key.path)

        return remember

    def _within_stale_if_error(self, entry: Entry, now: float) -> bool:
        return -entry.remaining(now) <= entry.freshness.stale_if_error

    async def _send_entry(self, send: Send, exchange: Exchange, entry: Entry, now: float,
                          status_header: tuple[bytes, bytes]) -> None:
        await self.gateway.send_whole(send, exchange, entry.status, entry.headers, entry.body,
                                       [(b"age", str(entry.age(now)).encode()), status_header])

    async def _send_stale_on_error(self, send: Send, exchange: Exchange, entry: Entry, now: float,
                                   upstream_status: int) -> None:
        self.cache.counters.stale += 1
        exchange.cache_status = "STALE"
        await self._send_entry(send, exchange, entry, now, _cache_status(
            "fwd=stale", f"fwd-status={upstream_status}", f"ttl={int(entry.remaining(now))}",
            'detail="stale-if-error"'))


def _first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next(iter(header_values(headers, name)), None)
