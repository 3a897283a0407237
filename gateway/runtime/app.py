"""The data plane: an ASGI app for `/g/<route>/<path>`, mounted ahead of Django.

A request, in the order of DESIGN.md §3: request id and client IP → route slug → API key →
route for the key's tenant → admission (one store round trip) → forward → respond →
record. No ORM, no Celery, no Django middleware on this path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.runtime import errors, ratelimit
from gateway.runtime.admission_answers import address_blocked, rate_limit_headers, refusal
from gateway.runtime.cache import ResponseCache
from gateway.runtime.cache_store import CacheBackend, Found, MemoryCacheBackend, RedisCacheBackend
from gateway.runtime.caching import CachePlan, CachingLayer
from gateway.runtime.circuit import CIRCUIT_GAUGE, CircuitBreakers, open_circuits
from gateway.runtime.clientip import ClientIpResolver
from gateway.runtime.config_watch import ConfigWatcher
from gateway.runtime.date_header import http_date, with_date
from gateway.runtime.errors import GatewayError
from gateway.runtime.exchange import ClientGone, Counters, Exchange, Receive, ResponseAborted, Scope, Send
from gateway.runtime.forward import Forwarder, response_headers
from gateway.runtime.keys import MAX_KEY_LENGTH, hash_secret
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.ratelimit import AdmissionDecision, AdmissionRequest
from gateway.runtime.records import Record, RecordBuffer
from gateway.runtime.redis_store import RedisStore
from gateway.runtime.snapshot import KEY_LOOKUP_PREFIX, KeyConfig, RouteConfig, Snapshot
from gateway.runtime.store import Store, StoreError
from gateway.runtime.upstream import upstream_path

log = logging.getLogger("heliox.gateway")


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BUFFER_LIMIT = 256 * 1024  # bodies up to this are sent in one message
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class GatewaySettings:
    pepper: bytes
    trusted_proxies: list[str]
    on_store_error: str  # local | open | closed
    snapshot_path: Path
    resync_seconds: float
    record_flush_interval: float
    spool_path: Path
    pool_size: int
    max_header_bytes: int = 16 * 1024
    dropped_cookies: frozenset[str] = frozenset({"sessionid", "csrftoken"})
    records_enabled: bool = True  # False only to measure what recording costs (bench/)
    circuit_failure_threshold: int = 5
    circuit_open_seconds: float = 30.0
    version: str = "0"


class Gateway:
    def __init__(self, settings: GatewaySettings, store: Store, *,
                 bootstrap: Callable[[], Awaitable[None]] | None = None,
                 cache_backend: CacheBackend | None = None,
                 dispatch_refresh: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.ip_resolver = ClientIpResolver(settings.trusted_proxies)
        self.records = RecordBuffer(store, flush_interval=settings.record_flush_interval,
                                    spool_path=settings.spool_path, gauges=self._gauges)
        self.watcher = ConfigWatcher(store, snapshot_path=settings.snapshot_path,
                                     resync_seconds=settings.resync_seconds, bootstrap=bootstrap)
        self.circuits = CircuitBreakers(settings.circuit_failure_threshold, settings.circuit_open_seconds)
        self.forwarder = Forwarder(settings.pool_size, settings.dropped_cookies, self.circuits)
        backend = cache_backend or MemoryCacheBackend()
        self.caching = CachingLayer(self, ResponseCache(backend), dispatch_refresh)
        self.combined_lookup = (isinstance(store, RedisStore) and isinstance(backend, RedisCacheBackend)
                                and store.url == backend.url)
        # The `local` fallback when the store is down: per-process limits, same algorithms.
        self.local_limits = MemoryStore()
        self.counters = Counters()
        self.in_flight = 0
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._store_retry_at = 0.0
        self._admission_requests: dict[tuple[int, int], AdmissionRequest] = {}
        self._admission_requests_of: Snapshot | None = None
        self._circuits_pruned_for: Snapshot | None = None

    def _gauges(self) -> dict[str, float]:
        """This process's gauges and degraded-mode counters, reported with every metrics flush."""
        snapshot = self.snapshot
        if snapshot is not None and snapshot is not self._circuits_pruned_for:
            self.circuits.keep_only([route for by_tenant in snapshot.routes.values() for route in by_tenant.values()])
            self._circuits_pruned_for = snapshot
        return {
            "active_requests": self.in_flight, "store_errors": self.counters.store_errors,
            "ratelimit_local": self.counters.ratelimit_local, "ratelimit_open": self.counters.ratelimit_open,
            "ratelimit_closed": self.counters.ratelimit_closed, "cache_errors": self.caching.cache.counters.errors,
            "records_spooled": self.records.spooled,
            **{f"{CIRCUIT_GAUGE}|{route_id}|{slug}|{target}": state
               for (route_id, slug, target), state in self.circuits.states_by_route().items()},
        }

    @property
    def snapshot(self) -> Snapshot | None:
        return self.watcher.snapshot

    # --- lifecycle ---------------------------------------------------------------------
    async def startup(self) -> None:
        """Idempotent: Daphne sends no lifespan events, so the first request starts us too."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            await self.watcher.start()
            self.records.start()
            self._started = True
            # Start-up garbage is long-lived; freezing it keeps the collector off the p99.
            gc.collect()
            gc.freeze()

    async def shutdown(self) -> None:
        await self.watcher.stop()
        await self.records.stop()
        await self.forwarder.close()
        self._started = False

    # --- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self._started:
            await self.startup()
        if scope["path"] == "/ready":
            await self._ready(send)
            return
        await self.handle(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _ready(self, send: Send) -> None:
        snapshot = self.snapshot
        store_ok = True
        try:
            await asyncio.wait_for(self.store.ping(), 1.0)
        except StoreError:  # includes TimeoutError
            store_ok = False
        body = {
            "ready": snapshot is not None,
            "snapshot_version": snapshot.version if snapshot else None,
            "snapshot_source": self.watcher.source,
            "store": "ok" if store_ok else "unavailable",
            # This process's degraded-mode counters (DESIGN.md §4); /metrics sums every process's.
            "degraded": {name: value for name, value in self._gauges().items()
                         if name != "active_requests" and not name.startswith(f"{CIRCUIT_GAUGE}|")},
            "open_circuits": open_circuits(self.circuits.states()),
            "cache": dataclasses.asdict(self.caching.cache.counters),
        }
        await _send_simple(send, 200 if snapshot is not None else 503, json.dumps(body).encode(),
                           [_JSON, (b"date", http_date())])  # handle()'s tracked_send dates the rest

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        peer = scope.get("client")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        forwarded_for = _header(headers, b"x-forwarded-for")
        exchange = Exchange(
            request_id=os.urandom(16).hex(), started=started, method=scope["method"],
            path=scope["path"], client_ip=self.ip_resolver.resolve(peer[0] if peer else None, forwarded_for),
        )
        response_started = False
        self.in_flight += 1

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = with_date(message["headers"])
            else:
                exchange.bytes_out += len(message.get("body", b""))
            try:
                await send(message)
            except OSError as exc:  # uvicorn's ClientDisconnected is an OSError
                raise ClientGone from exc

        try:
            await self._proxy(scope, receive, tracked_send, exchange)
        except GatewayError as error:
            exchange.status, exchange.error_code = error.status, error.code
            if response_started:
                raise ResponseAborted(error.code) from None
            await self._send_error(tracked_send, exchange, error)
        except ResponseAborted:
            raise
        except ClientGone:
            exchange.status, exchange.error_code = 499, "client_closed_request"
        except Exception:
            log.exception("unhandled error on %s %s (request %s)", exchange.method, exchange.path,
                          exchange.request_id)
            error = errors.internal_error()
            exchange.status, exchange.error_code = error.status, error.code
            if response_started:
                raise ResponseAborted(error.code) from None
            await self._send_error(tracked_send, exchange, error)
        finally:
            self.in_flight -= 1
            self._record(exchange)

    # --- the request flow ------------------------------------------------------------------
    async def _proxy(self, scope: Scope, receive: Receive, send: Send, exchange: Exchange) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            raise errors.unavailable("The gateway has no configuration loaded yet.")
        if snapshot.blocked_ips and exchange.client_ip in snapshot.blocked_ips:
            # Key guessing blocks the address itself: refused before any key is looked at.
            remaining = snapshot.blocked_ips[exchange.client_ip] - time.time()
            if remaining > 0:
                raise address_blocked(remaining)

        headers: list[tuple[bytes, bytes]] = scope["headers"]
        header_bytes = 0
        api_key = content_length = None
        for name, value in headers:
            header_bytes += len(name) + len(value) + 4
            if name == b"x-api-key":
                api_key = value
            elif name == b"content-length":
                content_length = value
            elif name == b"user-agent":
                exchange.user_agent = value[:512].decode("latin-1")
        if header_bytes > self.settings.max_header_bytes:
            raise errors.headers_too_large(self.settings.max_header_bytes)

        # raw_path keeps the client's percent-encoding; some servers leave the query on it.
        raw_path: bytes = (scope.get("raw_path") or scope["path"].encode()).partition(b"?")[0]
        if not raw_path.startswith(b"/g/"):
            raise GatewayError(501, "not_implemented", "The AI endpoints are not available on this gateway yet.")
        slug, _, rest = raw_path[3:].partition(b"/")
        route_slug = slug.decode("latin-1")

        key = self._authenticate(snapshot, api_key, exchange)
        route = snapshot.route_for(route_slug, key.tenant_id)
        if route is None:
            raise errors.route_not_found()
        exchange.route_id, exchange.route_slug = route.id, route.slug
        self._authorize(key, route, exchange)
        if exchange.method not in route.methods:
            raise errors.method_not_allowed(sorted(route.methods))

        path = upstream_path(rest)
        body = await self._read_body(receive, content_length, route.max_body_bytes, exchange)
        policy = route.cache_policy
        if policy is not None and not policy.no_store and exchange.method in ("GET", "HEAD"):
            plan = self.caching.plan(scope, exchange, route, policy, path)
            found = await self._admit_and_look_up(key, route, exchange, plan)
            await self.caching.serve(scope, send, exchange, route, policy, path, body, plan, found)
            return
        exchange.decision = await self._admit(key, route, exchange)
        if policy is None or policy.no_store:
            await self.forward(scope, send, exchange, route, path, body)
        else:
            # Marked before the write (the client may read again the moment it has its answer)
            # and after it (a read racing the write may have stored the old state meanwhile).
            await self.caching.invalidate_path(exchange, route, policy, path)
            await self.forward(scope, send, exchange, route, path, body)
            if exchange.status < 400:
                await self.caching.invalidate_path(exchange, route, policy, path)

    def _authenticate(self, snapshot: Snapshot, api_key: bytes | None, exchange: Exchange) -> KeyConfig:
        if not api_key or not api_key.strip():
            raise errors.missing_api_key()
        # Refuse oversized or non-ASCII keys before hashing: they can't be ours.
        if len(api_key) > MAX_KEY_LENGTH or not api_key.isascii():
            exchange.failed_key = "malformed"
            raise errors.invalid_api_key()
        digest = hash_secret(api_key.decode("ascii"), self.settings.pepper)
        # Found by a prefix of the digest, confirmed in constant time (healthchecks' scheme).
        key = snapshot.keys_by_hash.get(digest[:KEY_LOOKUP_PREFIX])
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            # A digest prefix, never the key: enough to count distinct guesses from one IP.
            exchange.failed_key = digest[:12]
            raise errors.invalid_api_key()
        now = time.time()
        if (key.expires_at is not None and key.expires_at <= now) or (
            key.grace_until is not None and key.grace_until <= now
        ):
            raise errors.invalid_api_key()
        tenant = snapshot.tenants.get(key.tenant_id)
        if tenant is None:
            raise errors.invalid_api_key()
        exchange.key_id, exchange.tenant_id = key.id, key.tenant_id
        if not tenant.active:
            raise errors.tenant_suspended()
        return key

    def _authorize(self, key: KeyConfig, route: RouteConfig, exchange: Exchange) -> None:
        if key.allowed_routes and route.slug not in key.allowed_routes:
            raise errors.forbidden("This key may not use this route.")
        if key.scopes:
            needed = "proxy:read" if exchange.method in _SAFE_METHODS else "proxy:write"
            if needed not in key.scopes:
                raise errors.forbidden(f"This key lacks the {needed} scope.")
        if key.ip_allowlist:
            try:
                address = ipaddress.ip_address(exchange.client_ip or "")
            except ValueError:
                raise errors.forbidden("This key may not be used from this address.") from None
            if not any(address in network for network in key.ip_allowlist):
                raise errors.forbidden("This key may not be used from this address.")

    async def _read_body(self, receive: Receive, content_length: bytes | None, limit: int,
                         exchange: Exchange) -> bytes:
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                raise errors.bad_request("Content-Length is not a number.") from None
            if declared > limit:
                raise errors.payload_too_large(limit)
            if declared == 0:
                return b""
        elif exchange.method in _SAFE_METHODS:
            return b""
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise errors.payload_too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        exchange.bytes_in = size
        return b"".join(chunks)

    def _admission_request(self, key: KeyConfig, route: RouteConfig) -> AdmissionRequest:
        # Made from the snapshot's key and route alone, so one per pair and snapshot.
        if self._admission_requests_of is not self.snapshot:
            self._admission_requests, self._admission_requests_of = {}, self.snapshot
        request = self._admission_requests.get((key.id, route.id))
        if request is None:
            limits = key.limits
            algorithm, rps, burst = route.rate_limit or (limits.algorithm, limits.rps, limits.burst)
            request = self._admission_requests[(key.id, route.id)] = AdmissionRequest(
                subject=f"k{key.id}", bucket=f"r{route.id}" if route.rate_limit else "", algorithm=algorithm,
                rps=rps, burst=burst, quota_daily=limits.quota_daily, quota_monthly=limits.quota_monthly,
            )
        return request

    async def _admit(self, key: KeyConfig, route: RouteConfig, exchange: Exchange) -> AdmissionDecision:
        decision = await self._admission(self._admission_request(key, route), exchange)
        if decision.allowed:
            return decision
        raise refusal(decision)

    async def _admit_and_look_up(self, key: KeyConfig, route: RouteConfig, exchange: Exchange,
                                 plan: CachePlan) -> Found | None:
        """Admission, with the cache look-up in the same round trip when the cache shares the
        store's Redis (DESIGN.md §7: one call for both). Otherwise the caching layer looks up."""
        if not self.combined_lookup or plan.key is None or time.monotonic() < self._store_retry_at:
            exchange.decision = await self._admit(key, route, exchange)
            return None
        cache_keys = [plan.key.entry, plan.key.mark, plan.key.note]
        if plan.bloom is not None:
            cache_keys += [plan.bloom.current, plan.bloom.previous, plan.bloom.negative]
        try:
            decision, raw = await self.store.admit_and_lookup(  # type: ignore[attr-defined]
                self._admission_request(key, route), cache_keys, plan.bloom.offsets if plan.bloom else ())
        except StoreError:
            exchange.decision = await self._admit(key, route, exchange)  # the usual fallback policy
            return None
        exchange.decision = decision
        if not decision.allowed:
            raise refusal(decision)
        assert raw is not None
        return Found(raw[0], float(raw[1] or 0), raw[2], raw[3])

    async def _admission(self, request: AdmissionRequest, exchange: Exchange) -> AdmissionDecision:
        now = time.monotonic()
        if now >= self._store_retry_at:
            try:
                return await self.store.admit(request)
            except StoreError:
                self.counters.store_errors += 1
                # Skip the store for a second: one failure costs one timeout, not one per request.
                self._store_retry_at = now + 1.0
                log.warning("store unavailable for admission; policy %s", self.settings.on_store_error)
        policy = self.settings.on_store_error
        exchange.degraded = f"ratelimit-{policy}"
        if policy == "open":
            self.counters.ratelimit_open += 1
            return AdmissionDecision(ratelimit.OK, request.burst, request.burst, 0.0, 0.0,
                                     ratelimit.window_of(request.rps, request.burst))
        if policy == "closed":
            self.counters.ratelimit_closed += 1
            raise errors.unavailable("Rate limiting is unavailable; refusing requests (fail closed).")
        self.counters.ratelimit_local += 1
        return self.local_limits.admit_now(request)

    async def forward(self, scope: Scope, send: Send, exchange: Exchange, route: RouteConfig, path: str,
                       body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Forward and stream the answer straight back (no cache on this route or request)."""

        async def stream_back(upstream: aiohttp.ClientResponse, started: float) -> None:
            length = upstream.content_length
            if length is not None and length <= _BUFFER_LIMIT:
                payload = await upstream.read()
                exchange.upstream_seconds = time.perf_counter() - started
                headers = response_headers(route, upstream.raw_headers)
                await self.send_whole(send, exchange, upstream.status, headers, payload, extra)
                return
            exchange.upstream_seconds = time.perf_counter() - started
            await self.send_streaming(send, exchange, route, upstream, extra)

        await self.forwarder.exchange(scope, exchange.method, exchange.request_id, exchange.client_ip, route, path,
                                      body, stream_back)

    async def send_whole(self, send: Send, exchange: Exchange, status: int, headers: list[tuple[bytes, bytes]],
                          payload: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        exchange.status = status
        headers = [(n, v) for n, v in headers if n != b"content-length"]
        headers.append((b"content-length", str(len(payload)).encode()))
        headers.extend(self._gateway_headers(exchange))
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if exchange.method == "HEAD" else payload})

    async def send_streaming(self, send: Send, exchange: Exchange, route: RouteConfig,
                              upstream: aiohttp.ClientResponse, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        exchange.status = upstream.status
        headers = response_headers(route, upstream.raw_headers)
        headers.extend(self._gateway_headers(exchange))
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        if exchange.method != "HEAD":
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _gateway_headers(self, exchange: Exchange) -> list[tuple[bytes, bytes]]:
        overhead_ms = (time.perf_counter() - exchange.started - exchange.upstream_seconds) * 1000
        headers = [
            (b"x-request-id", exchange.request_id.encode()),
            (b"x-cache", exchange.cache_status.encode()),
            (b"x-gateway-overhead-ms", f"{overhead_ms:.3f}".encode()),
        ]
        if exchange.decision is not None:
            headers.extend(rate_limit_headers(exchange.decision))
        if exchange.degraded:
            headers.append((b"x-gateway-degraded", exchange.degraded.encode()))
        return headers

    async def _send_error(self, send: Send, exchange: Exchange, error: GatewayError) -> None:
        headers = [_JSON, (b"x-request-id", exchange.request_id.encode())]
        headers.extend(error.headers)
        if exchange.degraded:
            headers.append((b"x-gateway-degraded", exchange.degraded.encode()))
        body = error.body(exchange.request_id)
        await _send_simple(send, error.status, body, headers)

    def _record(self, exchange: Exchange) -> None:
        self.counters.by_status[exchange.status] = self.counters.by_status.get(exchange.status, 0) + 1
        if not self.settings.records_enabled:
            return
        total_ms = (time.perf_counter() - exchange.started) * 1000
        # Positional, in Record's field order: keywords cost 1.3 µs more a request here.
        self.records.add(Record(
            exchange.request_id, time.time(), exchange.tenant_id, exchange.key_id, exchange.route_id,
            exchange.route_slug, exchange.method, exchange.path, exchange.status, exchange.cache_status,
            round(exchange.upstream_seconds * 1000, 3) if exchange.upstream_seconds else None, round(total_ms, 3),
            exchange.bytes_in, exchange.bytes_out, exchange.client_ip, exchange.user_agent, exchange.error_code,
            exchange.failed_key,
        ))


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name == wanted:
            return value
    return None


async def _send_simple(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
