"""Builders for data-plane tests: snapshots as the control plane publishes them, and a
gateway wired to a chosen store. No ORM here: data-plane tests carry no django_db mark,
so any database access on the hot path fails them."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.runtime.app import Gateway, GatewaySettings
from gateway.runtime.cache_store import CacheBackend, MemoryCacheBackend, RedisCacheBackend
from gateway.runtime.keys import hash_secret
from gateway.runtime.redis_store import RedisStore
from gateway.runtime.store import Store

PEPPER = b"test-pepper"
_ids = itertools.count(1000)


def key_entry(secret: str, *, tenant_id: int = 1, rps: float = 1000.0, burst: int = 1000,
              algorithm: str = "token_bucket", quota_daily: int = 0, quota_monthly: int = 0,
              **overrides: Any) -> dict[str, Any]:
    entry = {
        "hash": hash_secret(secret, PEPPER), "id": next(_ids), "tenant_id": tenant_id, "name": secret,
        "limits": {"algorithm": algorithm, "rps": rps, "burst": burst, "quota_daily": quota_daily,
                   "quota_monthly": quota_monthly},
        "expires_at": None, "grace_until": None, "scopes": [], "allowed_routes": [], "ip_allowlist": [],
    }
    entry.update(overrides)
    return entry


def route_entry(slug: str, upstream_url: str, *, tenant_id: int | None = None,
                methods: tuple[str, ...] = ("GET", "POST"), **overrides: Any) -> dict[str, Any]:
    entry = {
        "id": next(_ids), "tenant_id": tenant_id, "slug": slug, "targets": [{"url": upstream_url, "weight": 1}],
        "load_balancing": "round_robin", "connect_timeout_ms": 1000, "read_timeout_ms": 5000, "timeout_ms": 5000,
        "retry_attempts": 0, "auth_mode": "api_key", "methods": list(methods), "max_body_bytes": 1024 * 1024,
        "rate_limit": None, "cache_policy": None, "request_headers_add": {}, "request_headers_remove": [],
        "response_headers_add": {},
    }
    entry.update(overrides)
    return entry


def tenant_entry(tenant_id: int, *, active: bool = True) -> dict[str, Any]:
    return {"id": tenant_id, "slug": f"t{tenant_id}", "active": active, "exempt_from_auto_block": False}


@dataclass
class Config:
    tenants: list[dict[str, Any]] = field(default_factory=lambda: [tenant_entry(1), tenant_entry(2)])
    keys: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    blocked_ips: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, store: Store) -> int:
        version = store.next_config_version()
        blob = {"version": version, "built_at": time.time(), "tenants": self.tenants, "keys": self.keys,
                "routes": self.routes, "blocked_ips": self.blocked_ips}
        assert store.put_config(version, json.dumps(blob).encode())
        return version


def make_gateway(store: Store, tmp_path: Path, *, on_store_error: str = "local",
                 trusted_proxies: list[str] | None = None, bootstrap: Any = None,
                 cache_backend: CacheBackend | None = None, dispatch_refresh: Any = None,
                 records_enabled: bool = True, pepper: bytes = PEPPER, circuit_open_seconds: float = 30.0) -> Gateway:
    """`pepper`: the settings' own when the keys were issued through the control plane."""
    return Gateway(
        GatewaySettings(
            pepper=pepper, trusted_proxies=trusted_proxies or [], on_store_error=on_store_error,
            snapshot_path=tmp_path / "snapshot.json", resync_seconds=0.2, record_flush_interval=0.05,
            spool_path=tmp_path / "records.spool", pool_size=64, records_enabled=records_enabled,
            circuit_open_seconds=circuit_open_seconds,
        ),
        store,
        bootstrap=bootstrap,
        cache_backend=cache_backend or cache_backend_for(store),
        dispatch_refresh=dispatch_refresh,
    )


def cache_backend_for(store: Store) -> CacheBackend:
    """The cache beside the store under test: Redis (same server) or in-process."""
    if isinstance(store, RedisStore):
        return RedisCacheBackend(store.url, socket_timeout=store.socket_timeout)
    return MemoryCacheBackend()


def client_for(gateway: Gateway, client_ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gateway, client=(client_ip, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(gateway: Gateway, raw_path: bytes, headers: list[tuple[bytes, bytes]],
                      method: str = "GET") -> RawResponse:
    """Call the ASGI app with a request target exactly as given: HTTP clients would
    normalise `..` away before it ever left them, as a raw socket client would not."""
    from urllib.parse import unquote

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")), "raw_path": raw_path, "query_string": b"",
        "root_path": "", "headers": [(b"host", b"gateway.test"), *headers], "client": ("203.0.113.7", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await gateway(scope, receive, send)
    start = sent[0]
    return RawResponse(
        status=start["status"],
        headers={k.decode(): v.decode("latin-1") for k, v in start["headers"]},
        body=b"".join(m.get("body", b"") for m in sent[1:]),
    )
