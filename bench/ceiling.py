"""The bare ceiling: the least an async gateway can do per request, under the same server.

`/proxy`: one Redis round trip (EVALSHA) and one aiohttp forward of the upstream's 1 KB body.
`/redis-only`: one Redis round trip and a fixed 1 KB answer.
Run: BENCH_REDIS_URL=... BENCH_UPSTREAM=http://127.0.0.1:PORT uvicorn bench.ceiling:app
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8001") + "/bytes?size=1024"
BODY = b"x" * 1024
_state: dict[str, Any] = {}


async def _setup() -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    _state["script"] = client.register_script("return redis.call('INCR', KEYS[1])")
    _state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), auto_decompress=False)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if "script" not in _state:
        await _setup()
    await _state["script"](keys=["bench:ceiling"])
    if scope["path"] == "/proxy":
        async with _state["session"].get(UPSTREAM) as response:
            body = await response.read()
    else:
        body = BODY
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
