"""Builds the data plane's config snapshot from the database and publishes it.

A change commits, then `schedule_publish` (after commit, once per transaction) takes a new
version number, builds the snapshot, and stores it only if no newer one is there. Every
gateway process notices the new version (pub/sub, or its periodic check) and reloads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from abuse.models import Block
from billing.models import Plan
from gateway.models import CachePolicy, Route
from gateway.runtime.store import Store, open_store
from tenants.models import ApiKey, Tenant

log = logging.getLogger(__name__)
_pending = threading.local()


def config_store() -> Store:
    return open_store(settings.REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                      stream_maxlen=settings.RECORD_STREAM_MAXLEN)


def _epoch(moment: Any) -> float | None:
    return moment.timestamp() if moment else None


def _policy(policy: CachePolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "id": policy.id, "name": policy.name, "no_store": policy.no_store, "ttl_seconds": policy.ttl_seconds,
        "stale_while_revalidate_seconds": policy.stale_while_revalidate_seconds,
        "stale_if_error_seconds": policy.stale_if_error_seconds, "respect_upstream": policy.respect_upstream,
        "vary_headers": policy.vary_headers, "normalize_query": policy.normalize_query,
        "cacheable_statuses": policy.cacheable_statuses, "max_body_bytes": policy.max_body_bytes,
        "negative_cache_404": policy.negative_cache_404, "bloom_expected_items": policy.bloom_expected_items,
        "bloom_false_positive_rate": policy.bloom_false_positive_rate,
    }


def _route(route: Route) -> dict[str, Any]:
    override = None
    if route.rate_limit_rps and route.rate_limit_burst:
        override = {"algorithm": route.rate_limit_algorithm or "token_bucket", "rps": route.rate_limit_rps,
                    "burst": route.rate_limit_burst}
    return {
        "id": route.id, "tenant_id": route.tenant_id, "slug": route.slug, "targets": route.upstream_targets,
        "load_balancing": route.load_balancing, "connect_timeout_ms": route.connect_timeout_ms,
        "read_timeout_ms": route.read_timeout_ms, "timeout_ms": route.timeout_ms,
        "retry_attempts": route.retry_attempts, "auth_mode": route.auth_mode, "methods": route.methods,
        "max_body_bytes": route.max_body_bytes, "rate_limit": override,
        "cache_policy": _policy(route.cache_policy), "request_headers_add": route.request_headers_add,
        "request_headers_remove": route.request_headers_remove,
        "response_headers_add": route.response_headers_add,
    }


def _key(key: ApiKey, plan: Plan) -> dict[str, Any]:
    return {
        "hash": key.key_hash, "id": key.id, "tenant_id": key.tenant_id, "name": key.name,
        "limits": {
            "algorithm": key.rate_limit_algorithm or plan.algorithm,
            "rps": key.rate_limit_rps or plan.rps,
            "burst": key.rate_limit_burst or plan.burst,
            "quota_daily": plan.quota_daily if key.quota_daily is None else key.quota_daily,
            "quota_monthly": plan.quota_monthly if key.quota_monthly is None else key.quota_monthly,
        },
        "expires_at": _epoch(key.expires_at), "grace_until": _epoch(key.grace_until),
        "scopes": key.scopes, "allowed_routes": key.allowed_routes, "ip_allowlist": key.ip_allowlist,
    }


def build_snapshot(version: int) -> dict[str, Any]:
    """Everything the data plane needs, in four queries."""
    tenants = list(Tenant.objects.select_related("plan"))
    plans = {t.id: t.plan for t in tenants}
    keys = ApiKey.objects.filter(status=ApiKey.Status.ACTIVE).only(
        "id", "tenant_id", "name", "key_hash", "expires_at", "grace_until", "scopes", "allowed_routes",
        "ip_allowlist", "rate_limit_rps", "rate_limit_burst", "rate_limit_algorithm", "quota_daily",
        "quota_monthly",
    )
    routes = Route.objects.filter(is_active=True).select_related("cache_policy")
    now = timezone.now()
    ip_blocks = Block.objects.filter(client_ip__isnull=False, lifted_at__isnull=True, expires_at__gt=now)
    return {
        "version": version,
        "built_at": time.time(),
        "tenants": [
            {"id": t.id, "slug": t.slug, "active": t.is_active,
             "exempt_from_auto_block": t.plan.exempt_from_auto_block}
            for t in tenants
        ],
        "keys": [_key(k, plans[k.tenant_id]) for k in keys],
        "routes": [_route(r) for r in routes],
        "blocked_ips": [{"ip": b.client_ip, "until": b.expires_at.timestamp()} for b in ip_blocks],
    }


def publish_snapshot() -> int:
    """Build and publish a snapshot now; returns its version."""
    store = config_store()
    version = store.next_config_version()
    blob = json.dumps(build_snapshot(version), separators=(",", ":")).encode()
    if store.put_config(version, blob):
        log.info("published config snapshot v%s (%d bytes)", version, len(blob))
    return version


def _publish_after_commit() -> None:
    _pending.scheduled = False
    try:
        publish_snapshot()
    except Exception:
        # The periodic resync (gateway.tasks.resync_config) heals a publish that failed.
        log.exception("config publish failed; the periodic resync will retry")


def schedule_publish() -> None:
    """Publish once after the current transaction commits (now, outside one)."""
    if getattr(_pending, "scheduled", False):
        return
    _pending.scheduled = True
    transaction.on_commit(_publish_after_commit)
