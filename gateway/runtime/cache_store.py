"""Where cached responses live: Redis (its own URL, so its eviction policy can never touch
rate-limit counters) or an in-process dict. Entries, per-route indexes for purge, per-path
invalidation marks, single-flight locks and short-lived "last error" notes for followers.

Every key of one (tenant, route) pair shares the hash tag `{t<tenant>:r<route>}`, so a
look-up (entry + invalidation mark + error note) is one MGET even on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.runtime.redis_store import bounded_pool

ROUTES_SET = "hxc:routes:"  # + route id → the index keys (one per tenant) of that route

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Store the entry, remember it in the route's index (for purge), keep the index alive as
# long as its longest entry, and note the index under the route id.
_STORE_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], KEYS[1], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
"""

# Entry, invalidation mark and failure note in one call; when the entry is missing, the
# path's bits in the route's 404 filter (this generation, then the last) decide whether
# its remembered 404 is fetched too. Still one round trip.
_LOOKUP_LUA = """
local found = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local negative = false
if not found[1] then
  for filter = 4, 5 do
    local all = true
    for i = 1, #ARGV do
      if redis.call('GETBIT', KEYS[filter], ARGV[i]) == 0 then all = false; break end
    end
    if all then negative = redis.call('GET', KEYS[6]); break end
  end
end
return {found[1], found[2], found[3], negative}
"""
_REMEMBER_404_LUA = """
for i = 4, #ARGV do redis.call('SETBIT', KEYS[1], ARGV[i], 1) end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""


def tag(tenant_id: int, route_id: int) -> str:
    return f"hxc:{{t{tenant_id}:r{route_id}}}:"


@dataclass(frozen=True, slots=True)
class BloomProbe:
    """Where a request's path would sit in its route's 404 filter (this generation and the
    last), the bit offsets (hashed once), and the key of its remembered 404 answer."""

    current: str
    previous: str
    offsets: tuple[int, ...]
    negative: str


@dataclass(frozen=True, slots=True)
class Found:
    entry: bytes | None
    invalidated_at: float
    note: bytes | None
    negative: bytes | None = None


class CacheBackend(Protocol):
    async def lookup(self, entry: str, mark: str, note: str, bloom: BloomProbe | None = None) -> Found: ...
    async def remember_404(self, bloom: BloomProbe, value: bytes, ttl_ms: int, filter_ttl_ms: int) -> None: ...
    async def store(self, entry: str, value: bytes, ttl_ms: int, index: str, path: str, route_id: int) -> None: ...
    async def mark_invalid(self, mark: str, ttl_ms: int) -> None: ...
    async def note(self, note: str, value: bytes, ttl_ms: int) -> None: ...
    async def acquire(self, lock: str, token: str, ttl_ms: int) -> bool: ...
    async def release(self, lock: str, token: str) -> None: ...
    def purge(self, *, route_ids: list[int] | None, tenant_id: int | None, prefix: str | None) -> int: ...


class MemoryCacheBackend:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._indexes: dict[str, dict[str, str]] = {}
        self._routes: dict[int, set[str]] = {}
        self._lock = threading.Lock()

    def _get(self, key: str, now: float) -> bytes | None:
        value = self._data.get(key)
        if value is None:
            return None
        if value[1] <= now:
            del self._data[key]
            return None
        return value[0]

    async def lookup(self, entry: str, mark: str, note: str, bloom: BloomProbe | None = None) -> Found:
        now = time.time()
        with self._lock:
            invalidated = self._get(mark, now)
            value = self._get(entry, now)
            negative = None
            if value is None and bloom is not None and any(
                bits is not None and all(int.from_bytes(bits, "big") >> offset & 1 for offset in bloom.offsets)
                for bits in (self._get(bloom.current, now), self._get(bloom.previous, now))
            ):
                negative = self._get(bloom.negative, now)
            return Found(value, float(invalidated or 0), self._get(note, now), negative)

    async def remember_404(self, bloom: BloomProbe, value: bytes, ttl_ms: int, filter_ttl_ms: int) -> None:
        now = time.time()
        with self._lock:
            # The in-process filter is an int used as a bit set (same offsets as Redis's).
            current = self._get(bloom.current, now)
            bits = int.from_bytes(current, "big") if current else 0
            for offset in bloom.offsets:
                bits |= 1 << offset
            expires = self._data[bloom.current][1] if current else now + filter_ttl_ms / 1000
            self._data[bloom.current] = (bits.to_bytes((bits.bit_length() + 7) // 8, "big"), expires)
            self._data[bloom.negative] = (value, now + ttl_ms / 1000)

    async def store(self, entry: str, value: bytes, ttl_ms: int, index: str, path: str, route_id: int) -> None:
        with self._lock:
            self._data[entry] = (value, time.time() + ttl_ms / 1000)
            self._indexes.setdefault(index, {})[entry] = path
            self._routes.setdefault(route_id, set()).add(index)

    async def mark_invalid(self, mark: str, ttl_ms: int) -> None:
        with self._lock:
            self._data[mark] = (repr(time.time()).encode(), time.time() + ttl_ms / 1000)

    async def note(self, note: str, value: bytes, ttl_ms: int) -> None:
        with self._lock:
            self._data[note] = (value, time.time() + ttl_ms / 1000)

    async def acquire(self, lock: str, token: str, ttl_ms: int) -> bool:
        now = time.time()
        with self._lock:
            if self._get(lock, now) is not None:
                return False
            self._data[lock] = (token.encode(), now + ttl_ms / 1000)
            return True

    async def release(self, lock: str, token: str) -> None:
        with self._lock:
            if self._get(lock, time.time()) == token.encode():
                del self._data[lock]

    def purge(self, *, route_ids: list[int] | None, tenant_id: int | None, prefix: str | None) -> int:
        now = time.time()
        purged = 0
        with self._lock:
            routes = self._routes if route_ids is None else {r: self._routes.get(r, set()) for r in route_ids}
            for indexes in routes.values():
                for index in list(indexes):
                    if tenant_id is not None and not index.startswith(f"hxc:{{t{tenant_id}:"):
                        continue
                    entries = self._indexes.get(index, {})
                    for entry, path in list(entries.items()):
                        if prefix and not path.startswith(prefix):
                            continue
                        if self._get(entry, now) is not None:
                            purged += 1
                            del self._data[entry]
                        del entries[entry]
        return purged


class RedisCacheBackend:
    def __init__(self, url: str, *, socket_timeout: float) -> None:
        self.url = url
        self.socket_timeout = socket_timeout
        self.sync = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0,
                                         retry=Retry(NoBackoff(), 0))
        self._clients: dict[asyncio.AbstractEventLoop, tuple[aioredis.Redis, object, object, object, object]] = {}

    def _client(self) -> tuple[aioredis.Redis, object, object, object, object]:
        loop = asyncio.get_running_loop()
        bundle = self._clients.get(loop)
        if bundle is None:
            client = aioredis.Redis(connection_pool=bounded_pool(self.url, self.socket_timeout))
            bundle = (client, client.register_script(_STORE_LUA), client.register_script(_RELEASE_LUA),
                      client.register_script(_LOOKUP_LUA), client.register_script(_REMEMBER_404_LUA))
            self._clients[loop] = bundle
        return bundle

    async def lookup(self, entry: str, mark: str, note: str, bloom: BloomProbe | None = None) -> Found:
        client, _, _, lookup_script, _ = self._client()
        if bloom is None:
            value, invalidated, last = await client.mget(entry, mark, note)
            return Found(value, float(invalidated or 0), last)
        value, invalidated, last, negative = await lookup_script(  # type: ignore[operator]
            keys=[entry, mark, note, bloom.current, bloom.previous, bloom.negative], args=list(bloom.offsets))
        return Found(value or None, float(invalidated or 0), last or None, negative or None)

    async def remember_404(self, bloom: BloomProbe, value: bytes, ttl_ms: int, filter_ttl_ms: int) -> None:
        remember_script = self._client()[4]
        await remember_script(keys=[bloom.current, bloom.negative],  # type: ignore[operator]
                              args=[value, ttl_ms, filter_ttl_ms, *bloom.offsets])

    async def store(self, entry: str, value: bytes, ttl_ms: int, index: str, path: str, route_id: int) -> None:
        client, store_script, *_ = self._client()
        await store_script(keys=[entry, index], args=[value, ttl_ms, path])  # type: ignore[operator]
        # Another slot (Cluster): a second command, on the miss path only.
        await client.sadd(f"{ROUTES_SET}{route_id}", index)

    async def mark_invalid(self, mark: str, ttl_ms: int) -> None:
        await self._client()[0].set(mark, repr(time.time()), px=ttl_ms)

    async def note(self, note: str, value: bytes, ttl_ms: int) -> None:
        await self._client()[0].set(note, value, px=ttl_ms)

    async def acquire(self, lock: str, token: str, ttl_ms: int) -> bool:
        return bool(await self._client()[0].set(lock, token, nx=True, px=ttl_ms))

    async def release(self, lock: str, token: str) -> None:
        await self._client()[2](keys=[lock], args=[token])  # type: ignore[operator]

    def purge(self, *, route_ids: list[int] | None, tenant_id: int | None, prefix: str | None) -> int:
        """Delete indexed entries; returns how many existed. Walks the route indexes (HSCAN),
        never the keyspace."""
        client = self.sync
        if route_ids is None:
            route_sets = [key for key in client.scan_iter(match=f"{ROUTES_SET}*", count=1000)]
        else:
            route_sets = [f"{ROUTES_SET}{route_id}" for route_id in route_ids]
        purged = 0
        for route_set in route_sets:
            for index in client.smembers(route_set):
                index = index.decode()
                if tenant_id is not None and not index.startswith(f"hxc:{{t{tenant_id}:"):
                    continue
                doomed = [entry for entry, path in client.hscan_iter(index, count=1000)
                          if not prefix or path.decode("latin-1").startswith(prefix)]
                for start in range(0, len(doomed), 500):
                    chunk = doomed[start:start + 500]
                    purged += client.delete(*chunk)
                    client.hdel(index, *chunk)
        return purged

    async def close(self) -> None:
        bundle = self._clients.pop(asyncio.get_running_loop(), None)
        if bundle is not None:
            await bundle[0].aclose()


_memory_backend: MemoryCacheBackend | None = None
_redis_backends: dict[str, RedisCacheBackend] = {}
_lock = threading.Lock()


def open_cache_backend(url: str, *, socket_timeout: float = 0.25) -> CacheBackend:
    """One backend per process and URL; the in-process one when there is no Redis."""
    global _memory_backend
    with _lock:
        if not url:
            if _memory_backend is None:
                _memory_backend = MemoryCacheBackend()
            return _memory_backend
        backend = _redis_backends.get(url)
        if backend is None:
            backend = _redis_backends[url] = RedisCacheBackend(url, socket_timeout=socket_timeout)
        return backend
