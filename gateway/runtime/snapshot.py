"""The config snapshot the data plane serves from: immutable, indexed for the hot path.

The control plane builds it as JSON (gateway.config_publish); each gateway process parses
it once per version into these frozen objects, so a request costs dict look-ups only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.runtime.header_rules import route_may_add

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Limits:
    algorithm: str
    rps: float
    burst: int
    quota_daily: int  # 0 = unlimited
    quota_monthly: int


@dataclass(frozen=True, slots=True)
class TenantConfig:
    id: int
    slug: str
    active: bool
    exempt_from_auto_block: bool


KEY_LOOKUP_PREFIX = 16  # hex chars of the digest used as the look-up key


@dataclass(frozen=True, slots=True)
class KeyConfig:
    id: int
    key_hash: str
    tenant_id: int
    name: str
    limits: Limits
    expires_at: float | None
    grace_until: float | None
    scopes: frozenset[str]
    allowed_routes: frozenset[str]
    ip_allowlist: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class CachePolicyConfig:
    id: int
    name: str
    no_store: bool
    ttl_seconds: int
    stale_while_revalidate_seconds: int
    stale_if_error_seconds: int
    respect_upstream: bool
    vary_headers: tuple[str, ...]
    normalize_query: bool
    cacheable_statuses: frozenset[int]
    max_body_bytes: int
    negative_cache_404: bool
    bloom_expected_items: int
    bloom_false_positive_rate: float


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    weight: int


@dataclass(frozen=True, slots=True)
class RouteConfig:
    id: int
    tenant_id: int | None
    slug: str
    targets: tuple[Target, ...]
    load_balancing: str
    connect_timeout: float
    read_timeout: float
    timeout: float
    retry_attempts: int
    auth_mode: str
    methods: frozenset[str]
    max_body_bytes: int
    rate_limit: tuple[str, float, int] | None  # (algorithm, rps, burst) override
    cache_policy: CachePolicyConfig | None
    request_headers_add: tuple[tuple[str, str], ...]
    request_headers_remove: frozenset[str]
    response_headers_add: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    tenants: dict[int, TenantConfig]
    keys_by_hash: dict[str, KeyConfig]
    # digest prefix → key; slug → {tenant_id or None (shared) → route}
    routes: dict[str, dict[int | None, RouteConfig]]
    raw: dict[str, Any] = field(repr=False, compare=False)
    blocked_ips: dict[str, float] = field(default_factory=dict)  # address → blocked until (epoch)

    def route_by_id(self, route_id: int) -> RouteConfig | None:
        """Off the request path (background refreshes): a scan is fine."""
        for candidates in self.routes.values():
            for route in candidates.values():
                if route.id == route_id:
                    return route
        return None

    def route_for(self, slug: str, tenant_id: int | None) -> RouteConfig | None:
        candidates = self.routes.get(slug)
        if not candidates:
            return None
        if tenant_id is not None:
            own = candidates.get(tenant_id)
            if own is not None:
                return own
        return candidates.get(None)


def _policy(data: dict[str, Any] | None) -> CachePolicyConfig | None:
    if data is None:
        return None
    return CachePolicyConfig(
        id=data["id"], name=data["name"], no_store=data["no_store"], ttl_seconds=data["ttl_seconds"],
        stale_while_revalidate_seconds=data["stale_while_revalidate_seconds"],
        stale_if_error_seconds=data["stale_if_error_seconds"], respect_upstream=data["respect_upstream"],
        vary_headers=tuple(h.lower() for h in data["vary_headers"]), normalize_query=data["normalize_query"],
        cacheable_statuses=frozenset(data["cacheable_statuses"]), max_body_bytes=data["max_body_bytes"],
        negative_cache_404=data["negative_cache_404"], bloom_expected_items=data["bloom_expected_items"],
        bloom_false_positive_rate=data["bloom_false_positive_rate"],
    )


def _route(data: dict[str, Any]) -> RouteConfig:
    override = data.get("rate_limit")
    return RouteConfig(
        id=data["id"], tenant_id=data["tenant_id"], slug=data["slug"],
        targets=tuple(Target(t["url"].rstrip("/"), int(t.get("weight", 1))) for t in data["targets"]),
        load_balancing=data["load_balancing"], connect_timeout=data["connect_timeout_ms"] / 1000,
        read_timeout=data["read_timeout_ms"] / 1000, timeout=data["timeout_ms"] / 1000,
        retry_attempts=data["retry_attempts"], auth_mode=data["auth_mode"],
        methods=frozenset(data["methods"]) | ({"HEAD"} if "GET" in data["methods"] else set()),
        max_body_bytes=data["max_body_bytes"],
        rate_limit=(override["algorithm"], float(override["rps"]), int(override["burst"])) if override else None,
        cache_policy=_policy(data.get("cache_policy")),
        request_headers_add=tuple((k.lower(), v) for k, v in data["request_headers_add"].items() if route_may_add(k)),
        request_headers_remove=frozenset(h.lower() for h in data["request_headers_remove"]),
        response_headers_add=tuple((k.lower().encode(), v.encode()) for k, v in data["response_headers_add"].items()
                                   if route_may_add(k)),
    )


def _key(data: dict[str, Any]) -> KeyConfig:
    limits = data["limits"]
    return KeyConfig(
        id=data["id"], key_hash=data["hash"], tenant_id=data["tenant_id"], name=data["name"],
        limits=Limits(limits["algorithm"], float(limits["rps"]), int(limits["burst"]),
                      int(limits["quota_daily"]), int(limits["quota_monthly"])),
        expires_at=data["expires_at"], grace_until=data["grace_until"],
        scopes=frozenset(data["scopes"]), allowed_routes=frozenset(data["allowed_routes"]),
        ip_allowlist=tuple(ipaddress.ip_network(c, strict=False) for c in data["ip_allowlist"]),
    )


def parse_snapshot(raw: dict[str, Any]) -> Snapshot:
    routes: dict[str, dict[int | None, RouteConfig]] = {}
    for data in raw["routes"]:
        route = _route(data)
        routes.setdefault(route.slug, {})[route.tenant_id] = route
    return Snapshot(
        version=int(raw["version"]),
        tenants={int(t["id"]): TenantConfig(int(t["id"]), t["slug"], t["active"], t["exempt_from_auto_block"])
                 for t in raw["tenants"]},
        keys_by_hash={k["hash"][:KEY_LOOKUP_PREFIX]: _key(k) for k in raw["keys"]},
        routes=routes,
        raw=raw,
        blocked_ips={b["ip"]: float(b["until"]) for b in raw.get("blocked_ips", [])},
    )


def load_snapshot_file(path: Path) -> Snapshot | None:
    try:
        return parse_snapshot(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.error("snapshot file %s is unreadable (%s); ignoring it", path, exc)
        return None


def save_snapshot_file(path: Path, blob: bytes) -> None:
    """Atomic replace, so a crash mid-write never leaves a half snapshot to restart from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
