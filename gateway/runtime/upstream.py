"""Forwarding: the upstream URL, header hygiene both ways, and the pooled aiohttp session."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

import aiohttp
from yarl import URL

from gateway.runtime import errors
from gateway.runtime.snapshot import RouteConfig, Target

# RFC 9110 §7.6.1 hop-by-hop fields, plus the pre-standard ones proxies still see.
_ALLOWED_PATH_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@%"
)


def upstream_path(rest: bytes) -> str:
    """The path below the route, made safe: no segment may climb out of the route's base
    path (`..`, `%2e%2e`), smuggle a separator (`%2f`, `\\`), or start a new authority
    (`//host`). Percent-encoding the client sent is kept; raw non-ASCII is encoded."""
    if not rest:
        return ""
    segments = rest.split(b"/")
    for index, segment in enumerate(segments):
        if not segment:
            if index == len(segments) - 1:
                continue  # a trailing slash is meaningful and harmless
            raise errors.bad_request("Empty path segments are not allowed.")
        decoded = unquote_to_bytes(segment)
        if decoded in (b".", b"..") or b"/" in decoded or b"\\" in decoded or b"\x00" in decoded:
            raise errors.bad_request("The path may not contain dot segments or encoded separators.")
        if b"%" in segment and not _valid_percent_escapes(segment):
            raise errors.bad_request("The path has an invalid percent-escape.")
        segments[index] = _encode_unsafe(segment, _ALLOWED_PATH_BYTES)
    return "/" + b"/".join(segments).decode("ascii")


def _encode_unsafe(raw: bytes, allowed: frozenset[int]) -> bytes:
    if all(byte in allowed for byte in raw):
        return raw
    return b"".join(bytes([byte]) if byte in allowed else b"%%%02X" % byte for byte in raw)

_ALLOWED_QUERY_BYTES = _ALLOWED_PATH_BYTES | frozenset(b"/?")


def _valid_percent_escapes(segment: bytes) -> bool:
    hexdigits = b"0123456789abcdefABCDEF"
    index = segment.find(b"%")
    while index != -1:
        escape = segment[index + 1:index + 3]
        if len(escape) != 2 or escape[0] not in hexdigits or escape[1] not in hexdigits:
            return False
        index = segment.find(b"%", index + 3)
    return True


def connection_listed(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    names = set()
    for name, value in headers:
        if name == b"connection":
            names.update(token.strip().lower() for token in value.split(b","))
    return frozenset(names)


class TargetPicker:
    """Round robin (weighted by repetition) or random over a route's targets."""

    def __init__(self) -> None:
        self._cycles: dict[tuple[int, tuple[Target, ...]], itertools.cycle[Target]] = {}

    def pick(self, route: RouteConfig) -> Target:
        if len(route.targets) == 1:
            return route.targets[0]
        if route.load_balancing == "random":
            return random.choices(route.targets, weights=[t.weight for t in route.targets])[0]
        key = (route.id, route.targets)
        cycle = self._cycles.get(key)
        if cycle is None:
            cycle = self._cycles[key] = itertools.cycle(
                [t for t in route.targets for _ in range(t.weight if route.load_balancing == "weighted" else 1)]
            )
        return next(cycle)


class UpstreamSession:
    """One long-lived aiohttp session per process and event loop (DESIGN.md §7)."""

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=0, ttl_dns_cache=300,
                                             keepalive_timeout=30, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def build_url(target: Target, path: str, query: bytes) -> URL:
    raw = target.url + path
    if query:
        raw += "?" + _encode_unsafe(query, _ALLOWED_QUERY_BYTES).decode("ascii")
    return URL(raw, encoded=True)
