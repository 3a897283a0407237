"""The hot path's pipelined Redis client, against a real Redis and a silent socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis
from redis.exceptions import ResponseError

from gateway.runtime.redis_pipe import PipelinedRedis, Script, bulk
from gateway.runtime.store import StoreError

ECHO = Script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}")


async def call(client: PipelinedRedis, script: Script, keys: list[str], args: list[str]) -> object:
    return await client.evalsha(script, [bulk(k) for k in keys], [bulk(a) for a in args])


@pytest.fixture
async def pipe(redis_url: str) -> AsyncIterator[PipelinedRedis]:
    redis.Redis.from_url(redis_url).flushdb()
    client = PipelinedRedis(redis_url, timeout=1.0)
    yield client
    await client.close()


async def test_concurrent_calls_each_get_their_own_reply(pipe: PipelinedRedis) -> None:
    replies = await asyncio.gather(*[call(pipe, ECHO, [f"k{i}"], [f"v{i}"]) for i in range(500)])
    assert replies == [[f"k{i}".encode(), f"v{i}".encode(), 1] for i in range(500)]


async def test_it_uses_the_database_named_in_the_url(pipe: PipelinedRedis, redis_url: str) -> None:
    await call(pipe, ECHO, ["counted"], ["x"])
    assert redis.Redis.from_url(redis_url).get("counted") == b"1"


async def test_a_flushed_script_cache_is_reloaded_transparently(pipe: PipelinedRedis, redis_url: str) -> None:
    await call(pipe, ECHO, ["a"], ["1"])
    redis.Redis.from_url(redis_url).script_flush()
    assert await call(pipe, ECHO, ["a"], ["2"]) == [b"a", b"2", 2]


async def test_a_script_error_is_raised_and_the_connection_stays_usable(pipe: PipelinedRedis) -> None:
    with pytest.raises(ResponseError):
        await call(pipe, Script("return redis.call('NOSUCHCOMMAND')"), [], [])
    assert (await call(pipe, ECHO, ["after"], ["ok"]))[1] == b"ok"


async def test_a_dropped_connection_is_reopened_by_the_next_call(pipe: PipelinedRedis, redis_url: str) -> None:
    await call(pipe, ECHO, ["b"], ["1"])
    redis.Redis.from_url(redis_url).client_kill_filter(_type="normal", skipme=True)
    await asyncio.sleep(0.05)  # the close reaches the client
    assert await call(pipe, ECHO, ["b"], ["2"]) == [b"b", b"2", 2]


async def test_refused_connection_is_a_store_error() -> None:
    client = PipelinedRedis("redis://127.0.0.1:1/0", timeout=1.0)
    with pytest.raises(StoreError):
        await call(client, ECHO, ["k"], ["v"])


async def test_a_redis_that_never_answers_costs_one_timeout_for_every_waiting_call() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    started = time.monotonic()
    outcomes = await asyncio.gather(*[call(client, ECHO, ["k"], [str(i)]) for i in range(20)],
                                    return_exceptions=True)
    elapsed = time.monotonic() - started
    assert all(isinstance(outcome, StoreError) for outcome in outcomes)
    assert elapsed < 1.0  # not one timeout per call
    server.close()
    await server.wait_closed()
