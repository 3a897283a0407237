"""Purging the response cache (command, django-admin action, admin API)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from gateway.models import Route
from gateway.runtime.cache_store import CacheBackend, open_cache_backend
from tenants.models import Tenant


def cache_backend() -> CacheBackend:
    return open_cache_backend(settings.CACHE_REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT)


def cache_purge(*, routes: list[Route] | None = None, tenant: Tenant | None = None, prefix: str = "",
                everything: bool = False) -> int:
    """Remove cached entries; returns how many there were. Say `everything=True` to purge
    all routes, so that an empty selection never purges the world by accident."""
    if routes is None and not everything:
        raise ValidationError("Name the routes to purge, or purge everything explicitly.")
    if prefix and not prefix.startswith("/"):
        raise ValidationError({"prefix": "A path prefix starts with '/' (the path below /g/<route>)."})
    route_ids = None if everything else [route.pk for route in routes or []]
    if route_ids == []:
        return 0
    return cache_backend().purge(route_ids=route_ids, tenant_id=tenant.pk if tenant else None, prefix=prefix or None)
