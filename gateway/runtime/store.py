"""The shared store: admission state, the published config, the request-record stream.

Two implementations with one interface: `RedisStore` (production, shared by every gateway
process; redis_store.py) and `MemoryStore` (the embedded default, one process;
memory_store.py). This module has the interface, the key names both use, and `open_store`.
Data-plane methods are async; the control plane's (`next_config_version`, `put_config`, the
record consumer's) are sync, since they run in Django and Celery.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Protocol

import redis

from gateway.runtime import ratelimit
from gateway.runtime.metrics import PROCESS_REPORT_TTL
from gateway.runtime.ratelimit import AdmissionDecision, AdmissionRequest

if TYPE_CHECKING:
    from gateway.runtime.memory_store import MemoryStore
    from gateway.runtime.redis_store import RedisStore

CONFIG_COUNTER = "hx:config:counter"
CONFIG_VERSION = "hx:config:version"
CONFIG_BLOB = "hx:config:blob"
CONFIG_CHANNEL = "hx:config:changed"
RECORD_STREAM = "hx:records"
RECORD_BATCH_FIELD = b"a"  # a batch of records: records.encode_batch
# Entries of gateways before positional records, still read by the consumer:
LEGACY_RECORD_FIELD = b"r"  # one JSON object
LEGACY_LINES_FIELD = b"b"  # newline-separated JSON objects
METRICS_COUNTERS = "hx:metrics"  # gateway/runtime/metrics.py: counters of every process
METRICS_PROCESSES = "hx:metrics:processes"  # process id → its last report (JSON, with "at")

StoreError = (redis.RedisError, OSError, asyncio.TimeoutError)


class Store(Protocol):
    async def admit(self, request: AdmissionRequest) -> AdmissionDecision: ...
    async def append_records(self, batch: bytes) -> None: ...
    async def config_version(self) -> int: ...
    async def get_config(self) -> tuple[int, bytes] | None: ...
    async def ping(self) -> bool: ...
    async def wait_for_config_change(self, timeout: float) -> None: ...
    def next_config_version(self) -> int: ...
    def put_config(self, version: int, blob: bytes) -> bool: ...
    def set_block(self, subject: str, seconds: float, reason: str) -> None: ...
    def clear_block(self, subject: str) -> bool: ...
    def set_soft_limit(self, subject: str, factor: float, seconds: float) -> None: ...
    def quota_used(self, subjects: list[str], now: float) -> dict[str, tuple[int, int]]: ...
    async def add_metrics(self, deltas: dict[str, float], process: str, gauges: dict[str, float]) -> None: ...
    def read_metrics(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]: ...


def live_processes(reports: dict[str, dict[str, float]], now: float) -> dict[str, dict[str, float]]:
    return {process: report for process, report in reports.items() if report.get("at", 0) > now - PROCESS_REPORT_TTL}


def subject_tag(subject: str) -> str:
    # Every key of one subject in one hash slot, so the admission script is Cluster-safe.
    return f"hx:{{{subject}}}:"


def rate_limit_key(request: AdmissionRequest) -> str:
    # A route override has a bucket of its own beside the key's.
    return subject_tag(request.subject) + "rl" + (f":{request.bucket}" if request.bucket else "")


def quota_keys(subject: str, now: float) -> tuple[str, str]:
    """The admission script's daily and monthly counters of a subject (admission.lua)."""
    day, _, month, _ = ratelimit.quota_windows(now)
    prefix = subject_tag(subject) + "q:"
    return f"{prefix}d:{day}", f"{prefix}m:{month}"


def block_key(subject: str) -> str:
    return subject_tag(subject) + "block"


def soft_limit_key(subject: str) -> str:
    return subject_tag(subject) + "soft"


_embedded_store: MemoryStore | None = None
_redis_stores: dict[str, RedisStore] = {}
_stores_lock = threading.Lock()


def open_store(redis_url: str, *, socket_timeout: float = 0.25, stream_maxlen: int = 1_000_000) -> Store:
    """The process's store: one MemoryStore shared by control and data plane in embedded
    mode, one RedisStore per URL otherwise."""
    from gateway.runtime.memory_store import MemoryStore  # they import this module's names
    from gateway.runtime.redis_store import RedisStore

    global _embedded_store
    with _stores_lock:
        if not redis_url:
            if _embedded_store is None:
                _embedded_store = MemoryStore()
            return _embedded_store
        store = _redis_stores.get(redis_url)
        if store is None:
            store = _redis_stores[redis_url] = RedisStore(
                redis_url, socket_timeout=socket_timeout, stream_maxlen=stream_maxlen
            )
        return store
