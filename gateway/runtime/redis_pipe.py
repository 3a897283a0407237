"""The hot path's Redis connection: every admission call of a process on one pipelined socket.

redis-py's asyncio client costs about 70 µs of gateway CPU per command here (a pooled
connection checked out and back, a retry wrapper, argument packing in Python) and one socket
write and read per request. This client keeps one connection per event loop, writes the
commands of every request that is ready in the same loop iteration in one `write`, and
matches replies in order (Redis answers a connection's commands in the order it got them).
It speaks only what the data plane needs: EVALSHA with a fall-back to EVAL on NOSCRIPT.

A reply that does not come within `timeout` fails that call with `TimeoutError`, and the
connection is dropped (every call still waiting on it fails at once), so a dead Redis costs
one timeout and the next call reconnects. One timer per connection watches the oldest call.
Errors are redis-py's exception types, so callers keep catching `StoreError`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


def bulk(part: bytes | str | int | float) -> bytes:
    """One RESP bulk string. Callers may encode arguments once and reuse them."""
    if isinstance(part, bytes):
        data = part
    elif isinstance(part, str):
        data = part.encode()
    else:
        data = repr(part).encode() if isinstance(part, float) else b"%d" % part
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _encode(*parts: bytes | str | int | float) -> bytes:
    """One RESP array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(bulk(part) for part in parts)


_EVALSHA = bulk(b"EVALSHA")
_EVAL = bulk(b"EVAL")


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedRedis, timeout: float) -> None:
        self.owner = owner
        self.timeout = timeout
        self.reader = hiredis.Reader(protocolError=RedisConnectionError, replyError=ResponseError)
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.deadlines: collections.deque[float] = collections.deque()  # one per waiting call
        self.transport: Any = None
        self.closed = False
        self._outgoing: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None

    def send(self, command: bytes, future: asyncio.Future[Any]) -> None:
        """Queue a command; everything queued in one loop iteration goes out in one write."""
        loop = asyncio.get_running_loop()
        self.waiting.append(future)
        self.deadlines.append(loop.time() + self.timeout)
        if self._watchdog is None:
            self._watchdog = loop.call_at(self.deadlines[0], self._check_deadline)
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(command)

    def _check_deadline(self) -> None:
        # One timer per connection, not one per call: replies come in order, so only the
        # oldest waiting call can be late. A late one means Redis is not answering.
        self._watchdog = None
        if not self.deadlines or self.closed:
            return
        loop = asyncio.get_running_loop()
        if self.deadlines[0] <= loop.time():
            self.fail(TimeoutError("Redis did not answer in time"))
        else:
            self._watchdog = loop.call_at(self.deadlines[0], self._check_deadline)

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if not self.closed and self.transport is not None:
            self.transport.write(b"".join(outgoing))

    def connection_made(self, transport: Any) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except RedisConnectionError as exc:
                self.fail(exc)
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            future = waiting.popleft()
            self.deadlines.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc!r}" if exc else "connection to Redis closed"))

    def fail(self, exc: Exception) -> None:
        """Fail every waiting call and drop the connection (the next call reconnects)."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.deadlines.clear()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()
        self.owner._forget(self)


class PipelinedRedis:
    """One pipelined connection, bound to the event loop that first uses it."""

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme for the pipelined client: {parts.scheme!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def evalsha(self, script: Script, keys: list[bytes], args: list[bytes]) -> Any:
        """Run a script; `keys` and `args` are already RESP bulk strings (see `bulk`)."""
        tail = bulk(len(keys)) + b"".join(keys) + b"".join(args)
        count = b"*%d\r\n" % (3 + len(keys) + len(args))
        reply = await self._call(count + _EVALSHA + script.sha_bulk + tail)
        if isinstance(reply, ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                # Redis restarted or its scripts were flushed: EVAL sends the text and loads it.
                reply = await self._call(count + _EVAL + script.text_bulk + tail)
            if isinstance(reply, ResponseError):
                raise reply
        return reply

    async def close(self) -> None:
        protocol = self._protocol
        if protocol is not None:
            protocol.fail(RedisConnectionError("client closed"))

    # --- the connection ---------------------------------------------------------------------
    async def _call(self, command: bytes) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.send(command, future)
        return await future

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, attempt: asyncio.Future[_Protocol]) -> None:
        self._connecting = None
        if not attempt.cancelled() and attempt.exception() is None:
            self._protocol = attempt.result()

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self.tls else None
        async with asyncio.timeout(self.timeout):
            _, protocol = await loop.create_connection(lambda: _Protocol(self, self.timeout), self.host, self.port,
                                                       ssl=context)
            setup = []
            if self.password is not None:
                auth = [self.username, self.password] if self.username else [self.password]
                setup.append([b"AUTH", *auth])
            if self.db:
                setup.append([b"SELECT", self.db])
            for command in setup:
                future: asyncio.Future[Any] = loop.create_future()
                protocol.send(_encode(*command), future)
                reply = await future
                if isinstance(reply, ResponseError):
                    protocol.fail(RedisConnectionError(str(reply)))
                    raise reply
        return protocol

    def _forget(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None


class Script:
    """A Lua script's text and SHA1, as EVALSHA wants them."""

    def __init__(self, text: str) -> None:
        self.text = text.encode()
        self.sha = hashlib.sha1(self.text, usedforsecurity=False).hexdigest().encode()
        self.text_bulk = bulk(self.text)
        self.sha_bulk = bulk(self.sha)
