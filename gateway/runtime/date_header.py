"""Exactly one `Date` header on every response (RFC 9110 §6.6.1).

A proxied or cached response keeps its upstream's `Date`, which downstream caches read with
`Age`; any other response gets the current time. The servers differ: Daphne adds no `Date`, so
Django's pages and the gateway's own errors went without one, and uvicorn always adds its own, so
a proxied response carried two. Hence the application adds it, and uvicorn runs with
`--no-date-header`.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

_cached: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The current time as an HTTP date, formatted once a second."""
    global _cached
    second = int(time.time())
    if _cached[0] != second:
        _cached = (second, formatdate(second, usegmt=True).encode())
    return _cached[1]


def with_date(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    for name, _ in headers:
        if name.lower() == b"date":  # ASGI applications may send any case: Django keeps "Date"
            return headers
    return [*headers, (b"date", http_date())]


class DateHeader:
    """ASGI middleware: adds `Date` to every HTTP response that lacks one."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_date(list(message.get("headers", ())))}
            await send(message)

        await self.app(scope, receive, send_dated)
