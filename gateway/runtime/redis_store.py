"""The production store: Redis, shared by every gateway process. Admission is one script call
on the pipelined connection (redis_pipe.py); everything else goes through redis-py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from importlib import resources

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.runtime import ratelimit
from gateway.runtime.ratelimit import AdmissionDecision, AdmissionRequest
from gateway.runtime.redis_pipe import PipelinedRedis, Script, bulk
from gateway.runtime.store import (
    CONFIG_BLOB,
    CONFIG_CHANNEL,
    CONFIG_COUNTER,
    CONFIG_VERSION,
    METRICS_COUNTERS,
    METRICS_PROCESSES,
    RECORD_BATCH_FIELD,
    RECORD_STREAM,
    StoreError,
    block_key,
    live_processes,
    quota_keys,
    rate_limit_key,
    soft_limit_key,
    subject_tag,
)

_ENCODED_ADMISSIONS_LIMIT = 10_000
POOL_CONNECTIONS = 64  # per process and loop: enough to keep Redis busy, few enough to share it


def bounded_pool(url: str, socket_timeout: float) -> aioredis.BlockingConnectionPool:
    """A pool that makes a burst wait briefly for a connection instead of failing: redis-py's
    default pool raises at its limit, which a 1,000-request burst turns into store errors."""
    return aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_CONNECTIONS, timeout=max(1.0, socket_timeout * 4),
        socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, retry=AsyncRetry(NoBackoff(), 0),
    )


_ADMISSION_LUA = resources.files("gateway.runtime").joinpath("admission.lua").read_text()
# Admission and the cache look-up in one round trip, when the cache shares the store's Redis
# (CACHE_REDIS_URL = REDIS_URL, the default). The admission script runs as a function; only
# if it admits does the look-up run (keys 5-7: entry, invalidation mark, failure note; 8-10:
# the 404 filter's two generations and the remembered 404; ARGV 6..: the filter's offsets).
# The cache keys are tagged by tenant and route, not by key id: standalone Redis only.
_ADMISSION_AND_LOOKUP_LUA = (
    "local function admit()\n" + _ADMISSION_LUA + "\nend\n"
    + """
local a = admit()
if a[1] ~= 0 then return a end
local found = redis.call('MGET', KEYS[5], KEYS[6], KEYS[7])
local negative = false
if not found[1] and #KEYS >= 10 then
  for filter = 8, 9 do
    local all = true
    for i = 6, #ARGV do
      if redis.call('GETBIT', KEYS[filter], ARGV[i]) == 0 then all = false; break end
    end
    if all then negative = redis.call('GET', KEYS[10]); break end
  end
end
return {a[1], a[2], a[3], a[4], a[5], a[6], found[1], found[2], found[3], negative}
""")
_ADMISSION = Script(_ADMISSION_LUA)
_ADMISSION_AND_LOOKUP = Script(_ADMISSION_AND_LOOKUP_LUA)

# Publish only if newer than what is there: two control-plane processes publishing at
# once cannot roll the snapshot back (the newer version was built after the older commit).
_PUT_CONFIG_LUA = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return 1
"""


class RedisStore:
    """Redis: short socket timeouts, no client retries (a dead Redis costs milliseconds)."""

    def __init__(self, url: str, *, socket_timeout: float = 0.25, stream_maxlen: int = 1_000_000) -> None:
        self.url = url
        self.socket_timeout = socket_timeout
        self.stream_maxlen = stream_maxlen
        self.sync = redis.Redis.from_url(
            url, socket_timeout=max(socket_timeout, 2.0), socket_connect_timeout=max(socket_timeout, 2.0),
            retry=Retry(NoBackoff(), 0),
        )
        self._clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        self._pipes: dict[asyncio.AbstractEventLoop, PipelinedRedis] = {}
        self._encoded_admissions: dict[AdmissionRequest, tuple[list[bytes], list[bytes]]] = {}
        self._pubsubs: dict[asyncio.AbstractEventLoop, object] = {}

    def client(self) -> aioredis.Redis:
        return self._client()

    async def admit_and_lookup(self, request: AdmissionRequest, cache_keys: list[str],
                               offsets: tuple[int, ...]) -> tuple[AdmissionDecision, list[bytes | None] | None]:
        """Admission, then (only if admitted) the raw cache look-up, in one EVALSHA."""
        keys, args = self._admission_arguments(request)
        result = await self._pipe().evalsha(_ADMISSION_AND_LOOKUP, [*keys, *map(bulk, cache_keys)],
                                            [*args, *map(bulk, offsets)])
        decision = _decision(result[:6])
        if decision.outcome != ratelimit.OK:
            return decision, None
        return decision, [value or None for value in result[6:10]]

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision:
        keys, args = self._admission_arguments(request)
        return _decision(await self._pipe().evalsha(_ADMISSION, keys, args))

    def _admission_arguments(self, request: AdmissionRequest) -> tuple[list[bytes], list[bytes]]:
        # A key's admission keys and arguments change only with its config: encode them once.
        encoded = self._encoded_admissions.get(request)
        if encoded is None:
            if len(self._encoded_admissions) >= _ENCODED_ADMISSIONS_LIMIT:
                self._encoded_admissions.clear()
            keys, args = _admission_arguments(request)
            encoded = self._encoded_admissions[request] = ([bulk(k) for k in keys], [bulk(a) for a in args])
        return encoded

    def _pipe(self) -> PipelinedRedis:
        # Both clients are bound to their event loop; tests and tools may run several loops.
        loop = asyncio.get_running_loop()
        pipe = self._pipes.get(loop)
        if pipe is None:
            pipe = self._pipes[loop] = PipelinedRedis(self.url, timeout=self.socket_timeout)
        return pipe

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = aioredis.Redis(connection_pool=bounded_pool(self.url, self.socket_timeout))
        return client

    async def append_records(self, batch: bytes) -> None:
        # One stream entry per flushed batch: one command instead of one per request. The
        # consumer acknowledges whole batches; inserts stay idempotent.
        await self.client().xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: batch},
                                 maxlen=self.stream_maxlen, approximate=True)

    async def add_metrics(self, deltas: dict[str, float], process: str, gauges: dict[str, float]) -> None:
        pipe = self.client().pipeline(transaction=True)
        for name, amount in deltas.items():
            if float(amount).is_integer():
                pipe.hincrby(METRICS_COUNTERS, name, int(amount))
            else:
                pipe.hincrbyfloat(METRICS_COUNTERS, name, amount)
        pipe.hset(METRICS_PROCESSES, process, json.dumps({**gauges, "at": time.time()}))
        await pipe.execute()

    def read_metrics(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        pipe = self.sync.pipeline(transaction=False)
        pipe.hgetall(METRICS_COUNTERS)
        pipe.hgetall(METRICS_PROCESSES)
        counters, reports = pipe.execute()
        decoded = {process.decode(): json.loads(report) for process, report in reports.items()}
        live = live_processes(decoded, time.time())
        if gone := set(decoded) - set(live):
            self.sync.hdel(METRICS_PROCESSES, *gone)
        return {name.decode(): float(value) for name, value in counters.items()}, live

    async def config_version(self) -> int:
        return int(await self.client().get(CONFIG_VERSION) or 0)

    async def get_config(self) -> tuple[int, bytes] | None:
        version, blob = await self.client().mget(CONFIG_VERSION, CONFIG_BLOB)
        if version is None or blob is None:
            return None
        return int(version), blob

    async def ping(self) -> bool:
        return bool(await self.client().ping())

    async def wait_for_config_change(self, timeout: float) -> None:
        """Returns on a publish or after `timeout`, whichever comes first."""
        loop = asyncio.get_running_loop()
        pubsub = self._pubsubs.get(loop)
        if pubsub is None:
            # Its own connection without the short timeout: it sits idle by design.
            listener = aioredis.Redis.from_url(self.url, socket_connect_timeout=self.socket_timeout,
                                               retry=AsyncRetry(NoBackoff(), 0))
            pubsub = listener.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CONFIG_CHANNEL)
            except BaseException:
                await listener.aclose()
                raise
            self._pubsubs[loop] = pubsub
        try:
            await pubsub.get_message(timeout=timeout)  # type: ignore[attr-defined]
        except StoreError:
            self._pubsubs.pop(loop, None)
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[attr-defined]
            raise

    def next_config_version(self) -> int:
        return int(self.sync.incr(CONFIG_COUNTER))

    def set_block(self, subject: str, seconds: float, reason: str) -> None:
        self.sync.set(block_key(subject), reason, px=max(1, int(seconds * 1000)))

    def clear_block(self, subject: str) -> bool:
        return bool(self.sync.delete(block_key(subject)))

    def set_soft_limit(self, subject: str, factor: float, seconds: float) -> None:
        self.sync.set(soft_limit_key(subject), repr(factor), px=max(1, int(seconds * 1000)))

    def quota_used(self, subjects: list[str], now: float) -> dict[str, tuple[int, int]]:
        if not subjects:
            return {}
        pipe = self.sync.pipeline(transaction=False)  # one key pair per hash slot: Cluster-safe
        for subject in subjects:
            pipe.mget(*quota_keys(subject, now))
        return {subject: (int(day or 0), int(month or 0)) for subject, (day, month) in zip(subjects, pipe.execute(),
                                                                                            strict=True)}

    def put_config(self, version: int, blob: bytes) -> bool:
        return bool(self.sync.eval(_PUT_CONFIG_LUA, 3, CONFIG_VERSION, CONFIG_BLOB, CONFIG_CHANNEL, version, blob))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
        pipe = self._pipes.pop(loop, None)
        if pipe is not None:
            await pipe.close()
        pubsub = self._pubsubs.pop(loop, None)
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[attr-defined]


def _admission_arguments(request: AdmissionRequest) -> tuple[list[str], list[str | int]]:
    tag = subject_tag(request.subject)
    keys = [tag + "block", tag + "soft", rate_limit_key(request), tag + "q:"]
    return keys, [request.algorithm, repr(request.rps), request.burst, request.quota_daily, request.quota_monthly]


def _decision(result: list[int]) -> AdmissionDecision:
    code, limit, remaining, reset_ms, retry_ms, window_ms = (int(v) for v in result)
    return AdmissionDecision(ratelimit.OUTCOMES[code], limit, remaining, reset_ms / 1000, retry_ms / 1000,
                             window_ms / 1000)
