"""The response cache on the proxy path (DESIGN.md §3 step 5).

Outcomes, truthful in X-Cache and Cache-Status (RFC 9211): HIT fresh; STALE within the
stale-while-revalidate window (answered at once, one background refresh under a lock) or
within stale-if-error when the upstream fails; MISS fetched; BYPASS not cacheable or the
cache unavailable. N concurrent misses on one key make one upstream call: in-process
futures, plus a Redis lock whose followers in other processes wait for the entry.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.runtime import cache_rules
from gateway.runtime.cache_store import BloomProbe, CacheBackend, Found, tag
from gateway.runtime.errors import GatewayError
from gateway.runtime.snapshot import CachePolicyConfig, RouteConfig

log = logging.getLogger(__name__)

_MAGIC = b"HXC1"
NOTE_TTL_MS = 2_000  # how long followers in other processes may reuse a leader's failure
POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Fetched:
    """A whole upstream response (headers already filtered, no Content-Length)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    stored_at: float
    freshness: cache_rules.Freshness
    vary: dict[str, str]

    def age(self, now: float) -> int:
        return int(now - self.stored_at) + self.freshness.initial_age

    def remaining(self, now: float) -> float:
        """Seconds of freshness left; negative once stale."""
        return self.freshness.ttl - (now - self.stored_at)

    def encode(self) -> bytes:
        meta = json.dumps({
            "s": self.status, "h": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in self.headers],
            "t": self.stored_at, "f": [self.freshness.ttl, self.freshness.stale_while_revalidate,
                                       self.freshness.stale_if_error, self.freshness.initial_age],
            "v": self.vary,
        }, separators=(",", ":")).encode()
        return _MAGIC + struct.pack(">I", len(meta)) + meta + self.body

    @classmethod
    def decode(cls, blob: bytes) -> Entry | None:
        if not blob.startswith(_MAGIC):
            return None
        (length,) = struct.unpack(">I", blob[4:8])
        meta_bytes = blob[8:8 + length]
        meta = _decoded_meta.get(meta_bytes)
        if meta is None:
            meta = _decode_meta(meta_bytes)
        return cls(status=meta[0], headers=meta[1], body=blob[8 + length:], stored_at=meta[2], freshness=meta[3],
                   vary=meta[4])

    def as_fetched(self) -> Fetched:
        return Fetched(self.status, self.headers, self.body)


# A hit decodes the same stored metadata (status, headers, stored-at: unique per stored
# version) again and again; JSON decoding it was a tenth of a hit's CPU. The decoded parts
# are shared between hits, which is safe because nothing mutates an entry's headers.
_decoded_meta: dict[bytes, tuple[int, list[tuple[bytes, bytes]], float, cache_rules.Freshness, dict[str, str]]] = {}
_DECODED_META_LIMIT = 4096


def _decode_meta(meta_bytes: bytes) -> tuple[int, list[tuple[bytes, bytes]], float, cache_rules.Freshness,
                                             dict[str, str]]:
    meta = json.loads(meta_bytes)
    decoded = (meta["s"], [(n.encode("latin-1"), v.encode("latin-1")) for n, v in meta["h"]], meta["t"],
               cache_rules.Freshness(*meta["f"]), meta["v"])
    if len(_decoded_meta) >= _DECODED_META_LIMIT:
        _decoded_meta.clear()  # crude but bounded; the hot entries come straight back
    _decoded_meta[meta_bytes] = decoded
    return decoded


@dataclass(frozen=True, slots=True)
class CacheKey:
    entry: str
    mark: str  # the path's invalidation mark (unsafe methods)
    note: str  # a leader's recent failure, for followers
    lock: str
    index: str
    path: str
    route_id: int
    digest: bytes  # the request's hash, from which the bloom offsets are derived


def normalised_query(query: bytes, sort: bool) -> bytes:
    """Sorted pairs when the policy says so; `a=` (blank) stays distinct from `a` (absent)."""
    if not sort or b"&" not in query:
        return query
    return b"&".join(sorted(pair for pair in query.split(b"&") if pair))


def header_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def cache_key(tenant_id: int, route: RouteConfig, policy: CachePolicyConfig, path: str, query: bytes,
              headers: list[tuple[bytes, bytes]]) -> CacheKey:
    digest = hashlib.sha256()
    digest.update(path.encode())
    digest.update(b"\0?" + normalised_query(query, policy.normalize_query))
    for name in policy.vary_headers:
        digest.update(b"\0" + name.encode() + b"=" + b",".join(header_values(headers, name.encode())))
    # End-user credentials are forwarded, so one user's entry is never another's.
    credential = header_values(headers, b"authorization")
    if credential:
        digest.update(b"\0auth=" + hashlib.sha256(b"".join(credential)).digest())
    prefix = tag(tenant_id, route.id)
    raw_digest = digest.digest()
    hashed = raw_digest.hex()[:40]
    path_hash = hashlib.sha256(path.encode()).hexdigest()[:24]
    return CacheKey(entry=f"{prefix}e:{hashed}", mark=f"{prefix}m:{path_hash}", note=f"{prefix}x:{hashed}",
                    lock=f"{prefix}l:{hashed}", index=f"{prefix}idx", path=path, route_id=route.id,
                    digest=raw_digest)


def request_vary_values(headers: list[tuple[bytes, bytes]], names: tuple[str, ...]) -> dict[str, str]:
    return {name: b",".join(header_values(headers, name.encode())).decode("latin-1") for name in names}


@dataclass
class CacheCounters:
    hits: int = 0
    stale: int = 0
    misses: int = 0
    bypass: int = 0
    refreshes: int = 0
    collapsed: int = 0
    errors: int = 0


@dataclass
class Lookup:
    entry: Entry | None
    note: Fetched | None
    negative: Entry | None = None


NEGATIVE_TTL_SECONDS = 60  # a remembered 404 is short-lived; the filter rotates at this period


@functools.lru_cache(maxsize=256)
def bloom_size(expected_items: int, false_positive_rate: float) -> tuple[int, int]:
    """(bits, hashes) for n items at rate p: m = -n ln p / ln²2, k = m/n ln 2."""
    bits = max(64, math.ceil(-expected_items * math.log(false_positive_rate) / math.log(2) ** 2))
    return bits, max(1, round(bits / expected_items * math.log(2)))


def bloom_probe(key: CacheKey, policy: CachePolicyConfig, now: float) -> BloomProbe:
    """Double hashing (Kirsch-Mitzenmacher) from the request digest: k offsets, one hash."""
    bits, hashes = bloom_size(policy.bloom_expected_items, policy.bloom_false_positive_rate)
    first = int.from_bytes(key.digest[:8], "big")
    second = int.from_bytes(key.digest[8:16], "big") | 1
    offsets = tuple((first + i * second) % bits for i in range(hashes))
    generation = int(now // NEGATIVE_TTL_SECONDS)
    prefix = key.entry.rsplit("e:", 1)[0]
    return BloomProbe(current=f"{prefix}b:{generation}", previous=f"{prefix}b:{generation - 1}",
                      offsets=offsets, negative=f"{prefix}n:{key.entry.rsplit('e:', 1)[1]}")

FetchUpstream = Callable[[], Awaitable[Fetched | None]]


@dataclass
class ResponseCache:
    backend: CacheBackend
    counters: CacheCounters = field(default_factory=CacheCounters)
    _inflight: dict[str, asyncio.Future[Fetched | GatewayError | None]] = field(default_factory=dict)
    _refreshing: set[asyncio.Task[None]] = field(default_factory=set)

    async def lookup(self, key: CacheKey, request_headers: list[tuple[bytes, bytes]],
                     bloom: BloomProbe | None = None) -> Lookup:
        return self.interpret(await self.backend.lookup(key.entry, key.mark, key.note, bloom), request_headers)

    def interpret(self, found: Found, request_headers: list[tuple[bytes, bytes]]) -> Lookup:
        """What a look-up's raw answer means for this request (invalidation, Vary)."""
        entry = Entry.decode(found.entry) if found.entry else None
        if entry is not None and (
            entry.stored_at <= found.invalidated_at
            or request_vary_values(request_headers, tuple(entry.vary)) != entry.vary
        ):
            entry = None
        negative = Entry.decode(found.negative) if found.negative else None
        if negative is not None and negative.stored_at <= found.invalidated_at:
            negative = None
        return Lookup(entry, _decode_note(found.note), negative)

    async def remember_404(self, bloom: BloomProbe, entry: Entry) -> None:
        await self.backend.remember_404(bloom, entry.encode(), NEGATIVE_TTL_SECONDS * 1000,
                                        2 * NEGATIVE_TTL_SECONDS * 1000)

    async def store(self, key: CacheKey, entry: Entry) -> None:
        keep = entry.freshness.ttl + max(entry.freshness.stale_while_revalidate, entry.freshness.stale_if_error)
        await self.backend.store(key.entry, entry.encode(), max(1000, int(keep * 1000)), key.index, key.path,
                                 key.route_id)

    async def invalidate(self, key: CacheKey, keep_seconds: int) -> None:
        await self.backend.mark_invalid(key.mark, max(1000, keep_seconds * 1000))

    # --- one upstream call per key ---------------------------------------------------
    async def fetch_once(self, key: CacheKey, route: RouteConfig, fetch: FetchUpstream,
                         remember: Callable[[Fetched], Awaitable[None]], token: str) -> tuple[Fetched | None, bool]:
        """(response, collapsed). `None` means the leader streamed it itself (too big or
        unbounded to share): the caller must fetch on its own."""
        running = self._inflight.get(key.entry)
        if running is not None:
            self.counters.collapsed += 1
            outcome = await asyncio.shield(running)
            if isinstance(outcome, GatewayError):
                raise outcome
            return outcome, True
        future: asyncio.Future[Fetched | GatewayError | None] = asyncio.get_running_loop().create_future()
        self._inflight[key.entry] = future
        try:
            outcome: Fetched | GatewayError | None = await self._lead(key, route, fetch, remember, token)
        except GatewayError as error:
            outcome = error
        except BaseException:
            future.set_result(None)  # followers fall back to their own fetch
            raise
        finally:
            self._inflight.pop(key.entry, None)
        future.set_result(outcome)
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome, False

    async def _lead(self, key: CacheKey, route: RouteConfig, fetch: FetchUpstream,
                    remember: Callable[[Fetched], Awaitable[None]], token: str) -> Fetched | GatewayError | None:
        lock_ms = int(route.timeout * 1000) + 1000
        if not await self.backend.acquire(key.lock, token, lock_ms):
            waited = await self._follow(key, route)
            if waited is not None:
                self.counters.collapsed += 1
                return waited
        try:
            try:
                fetched = await fetch()
            except GatewayError as error:
                await self._leave_note(key, Fetched(error.status, [], json.dumps(
                    {"error": error.code, "message": error.message}).encode()))
                raise
            if fetched is not None:
                if fetched.status >= 500:
                    await self._leave_note(key, fetched)
                else:
                    await remember(fetched)
            return fetched
        finally:
            try:
                await self.backend.release(key.lock, token)
            except Exception:  # the lock expires on its own
                log.warning("could not release cache lock %s", key.lock)

    async def _follow(self, key: CacheKey, route: RouteConfig) -> Fetched | None:
        """Another process holds the lock: wait (bounded) for its entry or its failure."""
        deadline = time.monotonic() + route.timeout + 0.5
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            found = await self.backend.lookup(key.entry, key.mark, key.note)
            if found.entry:
                entry = Entry.decode(found.entry)
                if entry is not None and entry.remaining(time.time()) > 0:
                    return entry.as_fetched()
            if found.note:
                return _decode_note(found.note)
            if await self.backend.acquire(key.lock, "probe", 1):
                # The leader is gone without a result: fetch ourselves.
                return None
        return None

    async def _leave_note(self, key: CacheKey, fetched: Fetched) -> None:
        blob = json.dumps({"s": fetched.status, "h": [[n.decode("latin-1"), v.decode("latin-1")]
                                                       for n, v in fetched.headers],
                           "b": fetched.body.decode("latin-1")}).encode()
        try:
            await self.backend.note(key.note, blob, NOTE_TTL_MS)
        except Exception:
            log.warning("could not leave a failure note for %s", key.note)

    async def refresh(self, key: CacheKey, route: RouteConfig, fetch: FetchUpstream,
                      remember: Callable[[Fetched], Awaitable[None]], token: str, *, locked: bool = False) -> bool:
        """One refresh across every process: whoever takes the lock fetches, others skip
        (`locked`: the caller took it already, for a queued job). Returns whether this call
        did the refresh."""
        lock_ms = int(route.timeout * 1000) + 1000
        if not locked and not await self.backend.acquire(key.lock, token, lock_ms):
            return False
        try:
            self.counters.refreshes += 1
            fetched = await fetch()
            if fetched is not None and fetched.status < 500:
                await remember(fetched)
        except Exception as exc:  # a failed refresh leaves the stale entry in place
            log.info("background refresh of %s failed: %r", key.path, exc)
        finally:
            try:
                await self.backend.release(key.lock, token)
            except Exception:
                log.warning("could not release cache lock %s", key.lock)
        return True

    def in_background(self, work: Awaitable[Any]) -> None:
        """Run `work` after the response, holding a reference so it is not collected."""
        task = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)


def _decode_note(note: bytes | None) -> Fetched | None:
    if not note:
        return None
    data = json.loads(note)
    return Fetched(data["s"], [(n.encode("latin-1"), v.encode("latin-1")) for n, v in data["h"]],
                   data["b"].encode("latin-1"))

