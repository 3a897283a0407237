"""Analytics entry points for tasks and commands."""

from __future__ import annotations

from django.conf import settings

from analytics.ingest import consume_redis_stream, drain_memory_store
from gateway.config_publish import config_store
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.redis_store import RedisStore


def request_records_ingest() -> int:
    """Move whatever records are waiting into RequestLog; returns rows inserted."""
    store = config_store()
    if isinstance(store, MemoryStore):
        return drain_memory_store(store)
    assert isinstance(store, RedisStore), settings.REDIS_URL
    return consume_redis_stream(store)
