"""Fixtures shared by every app's tests.

The suite runs twice in CI: on the embedded default (SQLite + the in-process store) and
with DATABASE_URL/REDIS_URL set (PostgreSQL + Redis). Tests that need real Redis whatever
the mode ask for `redis_url`; they are skipped with a reason only when no Redis answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator

import pytest

REDIS_TEST_URL = os.environ.get("HELIOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis for tests that need one whatever the mode; flushed before use."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI requires Redis at {REDIS_TEST_URL}: {exc}") from exc
        pytest.skip(f"no Redis at {REDIS_TEST_URL}")
    client.flushdb()
    return REDIS_TEST_URL


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: object) -> None:
    """PBKDF2 at production strength costs most of a second per hash here, and every login,
    signup and fuzzed request to /auth/ hashes. What is tested is the flow, not the hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True, scope="session")
def _clean_configured_redis() -> None:
    """In the Redis run, start from an empty database (the suite owns REDIS_URL's db)."""
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()


class UpstreamServer:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="example-upstream", daemon=True)

    def _run(self) -> None:
        from gateway.example_upstream import start_server

        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(start_server("127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("example upstream did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamServer]:
    """The bundled example upstream, on a free port, in a thread of its own."""
    server = UpstreamServer()
    server.start()
    yield server
    server.loop.call_soon_threadsafe(server.loop.stop)


ADMIN_API_KEY = "test-admin-key-0123456789"


@pytest.fixture
def admin_api(settings: object) -> object:
    """A DRF client sending a valid X-Admin-Key (one of two configured, as during a rotation)."""
    from rest_framework.test import APIClient

    settings.ADMIN_API_KEYS = ["an-older-admin-key-000", ADMIN_API_KEY]  # type: ignore[attr-defined]
    client = APIClient()
    client.credentials(HTTP_X_ADMIN_KEY=ADMIN_API_KEY)
    return client
