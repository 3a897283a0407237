"""Reads for the portal, each narrowed to one tenant."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from analytics.models import RequestRollup
from analytics.selectors import Window, analytics_cache_hit_rate, analytics_top_routes, tenant_usage
from billing.models import Plan
from gateway.models import Route
from tenants.models import Tenant

# A tenant has at most its plan's routes plus the shared ones; this many is every one of them
# on any plan but an unlimited one.
USAGE_ROUTE_LIMIT = 100


def route_list_visible(*, tenant: Tenant) -> QuerySet[Route]:
    """The tenant's own routes and the shared ones (which serve every tenant)."""
    return Route.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True))


def plan_list_public() -> QuerySet[Plan]:
    return Plan.objects.filter(is_public=True)


def portal_usage(*, tenant: Tenant, days: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """Today and this month per key against its quotas, and the last `days` days by day (all
    from `tenant_usage`); requests and cache outcomes by route over the same days.

    The by-route and cache figures read minute rollups while they are kept
    (ROLLUP_MINUTE_RETENTION_DAYS), and whole hours of the hour rollups for longer: their
    `period_start` then falls on the hour."""
    now = now or timezone.now()
    usage = tenant_usage(tenant=tenant, days=days, now=now)
    if days <= settings.ROLLUP_MINUTE_RETENTION_DAYS:
        window, granularity = Window.last(days * 24, now), RequestRollup.Granularity.MINUTE
    else:
        start = (now - dt.timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
        window, granularity = Window(start, now), RequestRollup.Granularity.HOUR
    return {
        **usage,
        "days": days,
        "by_route": analytics_top_routes(window=window, limit=USAGE_ROUTE_LIMIT, tenant_id=tenant.pk,
                                         granularity=granularity),
        "cache": analytics_cache_hit_rate(window=window, tenant_id=tenant.pk, granularity=granularity),
    }
