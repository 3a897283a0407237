from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.runtime.app import Gateway
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.redis_store import RedisStore
from gateway.runtime.store import Store
from gateway.tests.dataplane import make_gateway


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Every data-plane behaviour is held against both stores."""
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    import redis

    redis.Redis.from_url(url).flushdb()
    redis_store = RedisStore(url)
    yield redis_store
    await redis_store.close()


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[object]:
    started: list[Gateway] = []

    async def build(store: Store, **options: object) -> Gateway:
        gateway = make_gateway(store, tmp_path, **options)  # type: ignore[arg-type]
        await gateway.startup()
        started.append(gateway)
        return gateway

    yield build
    for gateway in started:
        await gateway.shutdown()
