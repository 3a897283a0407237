"""One exchange with the upstream: target, URL, header hygiene both ways, the deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from gateway.runtime import errors
from gateway.runtime.circuit import CircuitBreakers
from gateway.runtime.header_rules import HOP_BY_HOP
from gateway.runtime.snapshot import RouteConfig, Target
from gateway.runtime.upstream import TargetPicker, UpstreamSession, build_url, connection_listed

log = logging.getLogger(__name__)
T = TypeVar("T")
# Never sent upstream: the gateway's credential and what we set ourselves.
_DROPPED_REQUEST_HEADERS = frozenset({
    b"x-api-key", b"content-length", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id", b"via",
    b"forwarded",
})


class Forwarder:
    def __init__(self, pool_size: int, dropped_cookies: frozenset[str], circuits: CircuitBreakers) -> None:
        self.session = UpstreamSession(pool_size)
        self.targets = TargetPicker()
        self.circuits = circuits
        self.dropped_cookies = dropped_cookies
        self._client_timeouts: dict[tuple[float, float | None], aiohttp.ClientTimeout] = {}

    async def close(self) -> None:
        await self.session.close()

    async def exchange(self, scope: dict[str, Any], method: str, request_id: str, client_ip: str | None,
                       route: RouteConfig, path: str, body: bytes,
                       handle: Callable[[aiohttp.ClientResponse, float], Awaitable[T]]) -> T:
        """Send the request and let `handle(response, started)` consume the answer, all
        under the route's total deadline. Failures become 502/504 GatewayErrors."""
        target = self.pick_target(route)
        url = build_url(target, path, scope.get("query_string", b""))
        outgoing = self.request_headers(scope, request_id, client_ip, route)
        started = time.perf_counter()
        answered = False
        try:
            async with asyncio.timeout(route.timeout):
                async with self.session.get().request(
                    method, url, headers=outgoing, data=body or None, allow_redirects=False,
                    timeout=self._timeouts(route),
                ) as upstream:
                    answered = True
                    self.circuits.succeeded(route, target.url)
                    return await handle(upstream, started)
        except TimeoutError:
            if not answered:  # a slow body (or a slow client) is not a dead upstream
                self.circuits.failed(route, target.url)
            raise errors.upstream_timeout() from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
            log.info("upstream %s failed: %r", url.host, exc)
            if not answered:
                self.circuits.failed(route, target.url)
            raise errors.upstream_error() from None

    def pick_target(self, route: RouteConfig) -> Target:
        """The balancer's pick, or when its circuit is open the first target whose is not."""
        picked = self.targets.pick(route)
        if self.circuits.allow(route.id, picked.url):
            return picked
        for target in route.targets:
            if target.url != picked.url and self.circuits.allow(route.id, target.url):
                return target
        raise errors.circuit_open()

    def _timeouts(self, route: RouteConfig) -> aiohttp.ClientTimeout:
        # A read timeout no shorter than the total deadline can never fire first; leaving it
        # out spares aiohttp a timer reset on every chunk it reads.
        read = route.read_timeout if route.read_timeout < route.timeout else None
        timeouts = self._client_timeouts.get((route.connect_timeout, read))
        if timeouts is None:
            timeouts = self._client_timeouts[(route.connect_timeout, read)] = aiohttp.ClientTimeout(
                sock_connect=route.connect_timeout, sock_read=read)
        return timeouts

    def request_headers(self, scope: dict[str, Any], request_id: str, client_ip: str | None,
                        route: RouteConfig) -> list[tuple[str, str]]:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        listed = connection_listed(headers)
        removed = route.request_headers_remove
        outgoing: list[tuple[str, str]] = []
        forwarded_for = host = None
        for name, value in headers:
            if name in HOP_BY_HOP or name in listed or name.startswith(b"proxy-"):
                continue
            if name == b"x-forwarded-for":
                forwarded_for = value
            elif name == b"host":
                host = value
            elif name in _DROPPED_REQUEST_HEADERS:
                continue
            else:
                text_name = name.decode("latin-1")
                if text_name in removed:
                    continue
                if name == b"cookie":
                    value = self._strip_gateway_cookies(value)
                    if not value:
                        continue
                outgoing.append((text_name, value.decode("latin-1")))
        peer = scope.get("client")
        peer_ip = peer[0] if peer else None
        # Extend the chain only when the peer is a trusted proxy (it resolved to someone else).
        chain = forwarded_for.decode("latin-1") + ", " if forwarded_for and client_ip != peer_ip else ""
        if peer_ip:
            outgoing.append(("x-forwarded-for", chain + peer_ip))
        outgoing.append(("x-forwarded-proto", scope.get("scheme", "http")))
        if host:
            outgoing.append(("x-forwarded-host", host.decode("latin-1")))
        outgoing.append(("via", f"{scope.get('http_version', '1.1')} heliox"))
        outgoing.append(("x-request-id", request_id))
        outgoing.extend(route.request_headers_add)
        return outgoing

    def _strip_gateway_cookies(self, value: bytes) -> bytes:
        kept = [
            part for part in value.split(b";")
            if part.strip() and part.strip().split(b"=", 1)[0].decode("latin-1") not in self.dropped_cookies
        ]
        return b";".join(kept).strip()


def response_headers(route: RouteConfig, raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The upstream's headers less hop-by-hop ones (and any it named in Connection),
    plus the route's additions."""
    listed = connection_listed((name.lower(), value) for name, value in raw)
    headers = [
        (lower, value) for name, value in raw
        if (lower := name.lower()) not in HOP_BY_HOP and lower not in listed
    ]
    headers.extend(route.response_headers_add)
    return headers
