"""Analytics read from the rollups (and, for `request_log_page`, the raw log), in the shapes
of the original Heliox admin API (CONTRACT.md). Windows are the last `hours` hours, read from
minute rollups (kept ROLLUP_MINUTE_RETENTION_DAYS, 7 by default: enough for 168 hours).

Cache hit rate everywhere: responses served from the cache (HIT + STALE) over responses that
looked in it (HIT + STALE + MISS); BYPASS is neither.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from analytics.models import RequestLog, RequestRollup
from analytics.rollups import HISTOGRAM_SIZE, histogram_percentile
from gateway.config_publish import config_store
from gateway.models import Route
from tenants.models import ApiKey, Tenant


@dataclass
class _Totals:
    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    hits: int = 0
    misses: int = 0
    stale: int = 0
    rate_limited: int = 0
    blocked: int = 0
    upstream_errors: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)

    def add(self, rollup: dict[str, Any]) -> None:
        count = rollup["count"]
        self.requests += count
        self.errors += rollup["error_count"]
        self.latency_sum_ms += rollup["latency_sum_ms"]
        outcome = rollup["cache_status"]
        self.hits += count if outcome == "HIT" else 0
        self.misses += count if outcome == "MISS" else 0
        self.stale += count if outcome == "STALE" else 0
        self.rate_limited += count if rollup["error_code"] in ("rate_limited", "quota_exceeded") else 0
        self.blocked += count if rollup["error_code"] == "blocked" else 0
        self.upstream_errors += count if rollup["error_code"] in ("upstream_error", "upstream_timeout") else 0
        for index, value in enumerate(rollup["latency_histogram"] or ()):
            self.histogram[index] += value

    @property
    def avg_latency_ms(self) -> float:
        return round(self.latency_sum_ms / self.requests, 3) if self.requests else 0.0

    @property
    def cache_hit_rate(self) -> float:
        looked_up = self.hits + self.stale + self.misses
        return round((self.hits + self.stale) / looked_up, 4) if looked_up else 0.0

    @property
    def error_rate(self) -> float:
        return round(self.errors / self.requests, 4) if self.requests else 0.0


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def last(cls, hours: int, now: dt.datetime | None = None) -> Window:
        end = now or timezone.now()
        return cls(end - dt.timedelta(hours=hours), end)

    def period(self) -> dict[str, str]:
        return {"period_start": self.start.isoformat(), "period_end": self.end.isoformat()}


_FIELDS = ("bucket_start", "tenant_id", "api_key_id", "route_id", "cache_status", "error_code", "count",
           "error_count", "latency_sum_ms", "latency_histogram")


def _rollups(window: Window, tenant_id: int | None = None,
             granularity: str = RequestRollup.Granularity.MINUTE) -> Iterable[dict[str, Any]]:
    rollups = RequestRollup.objects.filter(granularity=granularity, bucket_start__gte=window.start,
                                           bucket_start__lt=window.end)
    if tenant_id is not None:
        rollups = rollups.filter(tenant_id=tenant_id)
    return rollups.values(*_FIELDS).iterator(chunk_size=5000)


def analytics_summary(*, window: Window, tenant_id: int | None = None) -> dict[str, Any]:
    totals = _Totals()
    keys, routes = set(), set()
    for rollup in _rollups(window, tenant_id):
        totals.add(rollup)
        keys.add(rollup["api_key_id"])
        routes.add(rollup["route_id"])
    minutes = (window.end - window.start).total_seconds() / 60
    return {
        "total_requests": totals.requests,
        "requests_per_minute": round(totals.requests / minutes, 3) if minutes else 0.0,
        "unique_keys": len(keys - {0}),
        "unique_routes": len(routes - {0}),
        "avg_latency_ms": totals.avg_latency_ms,
        "latency_percentiles": {name: histogram_percentile(totals.histogram, q)
                                for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "cache_hit_rate": totals.cache_hit_rate,
        "cache_hits": totals.hits,
        "cache_misses": totals.misses,
        "cache_stale": totals.stale,
        "error_rate": totals.error_rate,
        "error_count": totals.errors,
        "rate_limited_count": totals.rate_limited,
        "blocked_count": totals.blocked,
        **window.period(),
    }


def _grouped(window: Window, dimension: str, tenant_id: int | None = None,
             granularity: str = RequestRollup.Granularity.MINUTE) -> dict[int, _Totals]:
    groups: dict[int, _Totals] = defaultdict(_Totals)
    for rollup in _rollups(window, tenant_id, granularity):
        groups[rollup[dimension]].add(rollup)
    groups.pop(0, None)  # requests with no key (401s) or no route (404s)
    return groups


def analytics_top_keys(*, window: Window, limit: int, tenant_id: int | None = None) -> dict[str, Any]:
    groups = _grouped(window, "api_key_id", tenant_id)
    top = sorted(groups.items(), key=lambda item: (-item[1].requests, item[0]))[:limit]
    keys = ApiKey.objects.select_related("tenant").in_bulk([key_id for key_id, _ in top])
    items = []
    for key_id, totals in top:
        key = keys.get(key_id)
        items.append({
            "api_key_id": key_id, "api_key_name": key.name if key else None,
            "tenant_id": key.tenant_id if key else None, "tenant_name": key.tenant.name if key else None,
            "request_count": totals.requests, "error_count": totals.errors,
            "avg_latency_ms": totals.avg_latency_ms, "cache_hit_rate": totals.cache_hit_rate,
        })
    return {"items": items, "total_requests": sum(t.requests for t in groups.values()), **window.period()}


def analytics_top_routes(*, window: Window, limit: int, tenant_id: int | None = None,
                         granularity: str = RequestRollup.Granularity.MINUTE) -> dict[str, Any]:
    groups = _grouped(window, "route_id", tenant_id, granularity)
    top = sorted(groups.items(), key=lambda item: (-item[1].requests, item[0]))[:limit]
    routes = Route.objects.in_bulk([route_id for route_id, _ in top])
    items = [{
        "route_id": route_id, "route_name": routes[route_id].slug if route_id in routes else None,
        "request_count": totals.requests, "avg_latency_ms": totals.avg_latency_ms,
        "cache_hit_rate": totals.cache_hit_rate, "error_rate": totals.error_rate,
    } for route_id, totals in top]
    return {"items": items, "total_requests": sum(t.requests for t in groups.values()), **window.period()}


def analytics_cache_hit_rate(*, window: Window, tenant_id: int | None = None,
                             granularity: str = RequestRollup.Granularity.MINUTE) -> dict[str, Any]:
    overall = _Totals()
    by_route: dict[int, _Totals] = defaultdict(_Totals)
    by_hour: dict[dt.datetime, _Totals] = defaultdict(_Totals)
    for rollup in _rollups(window, tenant_id, granularity):
        overall.add(rollup)
        if rollup["route_id"]:
            by_route[rollup["route_id"]].add(rollup)
        by_hour[rollup["bucket_start"].replace(minute=0)].add(rollup)
    names = dict(Route.objects.filter(pk__in=list(by_route)).values_list("pk", "slug"))

    def shape(totals: _Totals) -> dict[str, Any]:
        return {"hit_rate": totals.cache_hit_rate, "hits": totals.hits, "misses": totals.misses,
                "stale_hits": totals.stale}

    return {
        "overall_hit_rate": overall.cache_hit_rate, "hits": overall.hits, "misses": overall.misses,
        "stale_hits": overall.stale,
        "by_route": [{"route_id": route_id, "route_name": names.get(route_id), **shape(totals)}
                     for route_id, totals in sorted(by_route.items())],
        "by_hour": [{"hour": hour.isoformat(), **shape(totals)} for hour, totals in sorted(by_hour.items())],
        **window.period(),
    }


def request_log_page(*, filters: dict[str, Any], page: int, page_size: int) -> dict[str, Any]:
    """One page of the raw log, newest first. No COUNT(*) over the raw table: one row more
    than the page is read to say whether there is another page."""
    logs: QuerySet[RequestLog] = RequestLog.objects.order_by("-timestamp", "-pk")
    for name, lookup in (("tenant_id", "tenant_id"), ("api_key_id", "api_key_id"), ("route_id", "route_id"),
                         ("status_code", "status_code"), ("cache_status", "cache_status"),
                         ("since", "timestamp__gte"), ("until", "timestamp__lt")):
        if filters.get(name) is not None:
            logs = logs.filter(**{lookup: filters[name]})
    offset = (page - 1) * page_size
    rows = list(logs.values("id", "request_id", "timestamp", "tenant_id", "api_key_id", "route_id", "method",
                            "path", "status_code", "latency_ms", "cache_status", "error_code", "client_ip")
                [offset:offset + page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    tenants = dict(Tenant.objects.filter(pk__in={r["tenant_id"] for r in rows} - {None}).values_list("pk", "name"))
    keys = dict(ApiKey.objects.filter(pk__in={r["api_key_id"] for r in rows} - {None}).values_list("pk", "name"))
    routes = dict(Route.objects.filter(pk__in={r["route_id"] for r in rows} - {None}).values_list("pk", "slug"))
    items = [{
        "id": r["id"], "request_id": r["request_id"], "timestamp": r["timestamp"].isoformat(),
        "tenant_id": r["tenant_id"], "tenant_name": tenants.get(r["tenant_id"]),
        "api_key_id": r["api_key_id"], "api_key_name": keys.get(r["api_key_id"]),
        "route_id": r["route_id"], "route_name": routes.get(r["route_id"]), "method": r["method"],
        "path": r["path"], "status_code": r["status_code"], "latency_ms": r["latency_ms"],
        "cache_status": r["cache_status"], "error_type": r["error_code"] or None, "client_ip": r["client_ip"],
    } for r in rows]
    return {"items": items, "page": page, "page_size": page_size, "has_more": has_more}


def _step_for(hours: int) -> tuple[str, dt.timedelta]:
    """Chart resolution: minute rollups for up to 6 hours (5-minute points past 3), hour
    rollups beyond, so a chart has at most a few hundred points."""
    if hours <= 3:
        return RequestRollup.Granularity.MINUTE, dt.timedelta(minutes=1)
    if hours <= 6:
        return RequestRollup.Granularity.MINUTE, dt.timedelta(minutes=5)
    return RequestRollup.Granularity.HOUR, dt.timedelta(hours=1)


def analytics_timeseries(*, hours: int, tenant_id: int | None = None,
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Per time step: requests, errors, rate-limited, blocked, upstream errors and latency
    percentiles; with the window's cache outcomes. Steps without traffic are zeros."""
    window = Window.last(hours, now)
    granularity, step = _step_for(hours)
    start = window.start.replace(second=0, microsecond=0)
    if granularity == RequestRollup.Granularity.HOUR:
        start = start.replace(minute=0)
    window = Window(start, window.end)
    steps: dict[int, _Totals] = defaultdict(_Totals)
    cache: dict[str, int] = defaultdict(int)
    for rollup in _rollups(window, tenant_id, granularity):
        steps[int((rollup["bucket_start"] - start) / step)].add(rollup)
        cache[rollup["cache_status"]] += rollup["count"]
    count = int((window.end - start) / step) + 1
    series = [steps.get(index, _Totals()) for index in range(count)]
    return {
        "step_seconds": int(step.total_seconds()),
        "labels": [(start + index * step).isoformat() for index in range(count)],
        "requests": [t.requests for t in series],
        "errors": [t.errors for t in series],
        "rate_limited": [t.rate_limited for t in series],
        "blocked": [t.blocked for t in series],
        "upstream_errors": [t.upstream_errors for t in series],
        "p50": [histogram_percentile(t.histogram, 0.5) for t in series],
        "p95": [histogram_percentile(t.histogram, 0.95) for t in series],
        "p99": [histogram_percentile(t.histogram, 0.99) for t in series],
        "cache": {outcome: cache.get(outcome, 0) for outcome in ("HIT", "MISS", "STALE", "BYPASS")},
        **window.period(),
    }


# Refused before admission or by it: these never count against a quota.
_NOT_ADMITTED = frozenset({"missing_api_key", "invalid_api_key", "tenant_suspended", "forbidden", "route_not_found",
                           "method_not_allowed", "payload_too_large", "bad_request", "headers_too_large",
                           "rate_limited", "quota_exceeded", "blocked", "unavailable"})


def _admitted_by_key(tenant_id: int, since: dt.datetime, granularity: str) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    rollups = RequestRollup.objects.filter(granularity=granularity, tenant_id=tenant_id, bucket_start__gte=since)
    for key_id, error_code, count in rollups.values_list("api_key_id", "error_code", "count").iterator():
        if error_code not in _NOT_ADMITTED:
            counts[key_id] += count
    return counts


def tenant_usage(*, tenant: Tenant, days: int = 30, now: dt.datetime | None = None) -> dict[str, Any]:
    """Today and this month (UTC) per key against its quotas, and the tenant's requests by day.

    A key with a quota is reported from the admission counters themselves (exactly what is
    enforced, live); a key without one from the rollups (requests admitted, a second or so
    behind the gateway)."""
    now = now or timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    keys = list(ApiKey.objects.filter(tenant=tenant).order_by("pk"))
    counted = config_store().quota_used([f"k{key.pk}" for key in keys], now.timestamp())
    today = _admitted_by_key(tenant.pk, day_start, RequestRollup.Granularity.HOUR)
    month = _admitted_by_key(tenant.pk, month_start, RequestRollup.Granularity.DAY)

    def period(used: int, quota: int) -> dict[str, int | None]:
        return {"requests": used, "quota": quota or None, "remaining": max(0, quota - used) if quota else None}

    plan = tenant.plan
    key_usage = []
    for key in keys:
        daily = plan.quota_daily if key.quota_daily is None else key.quota_daily
        monthly = plan.quota_monthly if key.quota_monthly is None else key.quota_monthly
        day_used, month_used = counted[f"k{key.pk}"]
        key_usage.append({
            "api_key_id": key.pk, "name": key.name, "status": key.status,
            "today": period(day_used if daily else today.get(key.pk, 0), daily),
            "this_month": period(month_used if monthly else month.get(key.pk, 0), monthly),
        })
    by_day: dict[dt.date, _Totals] = defaultdict(_Totals)
    since = day_start - dt.timedelta(days=days - 1)
    rollups = RequestRollup.objects.filter(granularity=RequestRollup.Granularity.DAY, tenant_id=tenant.pk,
                                           bucket_start__gte=since)
    for rollup in rollups.values(*_FIELDS).iterator():
        by_day[rollup["bucket_start"].date()].add(rollup)
    return {
        "tenant_id": tenant.pk, "plan": plan.slug,
        "today": {"requests": sum(k["today"]["requests"] for k in key_usage)},
        "this_month": {"requests": sum(k["this_month"]["requests"] for k in key_usage)},
        "keys": key_usage,
        "by_day": [{"day": day.isoformat(), "requests": t.requests, "errors": t.errors,
                    "cache_hit_rate": t.cache_hit_rate} for day, t in sorted(by_day.items())],
    }
