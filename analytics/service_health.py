"""Service health for `/admin/api/services/health` and `/admin/api/services/<name>/health`.

A service is a route slug, as in the `service` label of `api_gateway_service_requests_total` and
`api_gateway_circuit_breaker_state` (several tenants' routes may share one). Its health is what
the gateways have seen, not a probe of its own: each route's targets' circuits, the worst state
any live gateway process reports, and from the minute rollups the last minutes' requests,
upstream failures and latency.

A route is
- `healthy`: every one of its targets has a closed circuit;
- `degraded`: some target's circuit is open or half-open, so its other targets answer;
- `down`: every target's circuit is open, so its requests get 503 `circuit_open`;
- `inactive`: it is not active.

A service is `healthy` or `down` when all its active routes are, `inactive` when it has none,
and `degraded` otherwise: one tenant's route down while another's answers is degraded, and the
route that is down says so in `routes`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from analytics.metrics import gateway_metrics
from analytics.models import RequestRollup
from analytics.rollups import HISTOGRAM_SIZE, histogram_percentile
from gateway.models import Route
from gateway.runtime.circuit import CLOSED, HALF_OPEN, OPEN, worst

HEALTHY, DEGRADED, DOWN, INACTIVE = "healthy", "degraded", "down", "inactive"
CIRCUIT_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}
# Answers that mean the upstream did not: refused, reset or timed out, or skipped as dead.
UPSTREAM_FAILURES = ("upstream_error", "upstream_timeout", "circuit_open")


@dataclass
class _Traffic:
    requests: int = 0
    upstream_failures: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)


def services_health(*, minutes: int, name: str | None = None) -> list[dict[str, Any]]:
    """Every service (or the one named), by name. An unknown name gives an empty list."""
    routes = Route.objects.order_by("slug", "pk").only("id", "slug", "tenant_id", "is_active", "upstream_targets")
    if name is not None:
        routes = routes.filter(slug=name)
    by_service: dict[str, list[Route]] = defaultdict(list)
    for route in routes:
        by_service[route.slug].append(route)
    if not by_service:
        return []
    circuits = {(route_id, target): state
                for (route_id, _, target), state in gateway_metrics().route_circuit_states().items()}
    # The minutes asked for, whole, and the one under way: `minutes=1` is never a few seconds.
    since = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes)
    traffic = _traffic_by_route([route.pk for group in by_service.values() for route in group], since)
    return [_service(slug, group, circuits, traffic) for slug, group in by_service.items()]


def overall_status(services: list[dict[str, Any]]) -> str:
    """`healthy` when every active service is, else `degraded`: the gateway itself answers."""
    return HEALTHY if all(s["status"] in (HEALTHY, INACTIVE) for s in services) else DEGRADED


def _service(slug: str, routes: list[Route], circuits: dict[tuple[int, str], int],
             traffic: dict[int, _Traffic]) -> dict[str, Any]:
    route_targets = {route.pk: _route_targets(route, circuits) for route in routes}
    targets: dict[str, int] = {}
    for states in route_targets.values():
        for url, state in states.items():
            targets[url] = worst(targets.get(url, CLOSED), state)
    totals = _Traffic()
    for route in routes:
        seen = traffic.get(route.pk)
        if seen is not None:
            totals.requests += seen.requests
            totals.upstream_failures += seen.upstream_failures
            totals.histogram = [a + b for a, b in zip(totals.histogram, seen.histogram, strict=True)]
    route_statuses = [_status(list(route_targets[route.pk].values())) for route in routes]
    return {
        "name": slug,
        "status": _service_status(route_statuses),
        "routes": [{"route_id": route.pk, "tenant_id": route.tenant_id, "is_active": route.is_active,
                    "status": status} for route, status in zip(routes, route_statuses, strict=True)],
        "targets": [{"url": url, "circuit": CIRCUIT_NAMES[state]} for url, state in sorted(targets.items())],
        "requests": totals.requests,
        "upstream_failures": totals.upstream_failures,
        "upstream_failure_rate": round(totals.upstream_failures / totals.requests, 4) if totals.requests else 0.0,
        "latency_p95_ms": histogram_percentile(totals.histogram, 0.95),
    }


def _route_targets(route: Route, circuits: dict[tuple[int, str], int]) -> dict[str, int]:
    """An active route's targets, as the snapshot names them, and their circuits."""
    if not route.is_active:
        return {}
    urls = (str(target["url"]).rstrip("/") for target in route.upstream_targets)
    return {url: circuits.get((route.pk, url), CLOSED) for url in urls}


def _status(states: list[int]) -> str:
    if not states:
        return INACTIVE
    if all(state == OPEN for state in states):
        return DOWN
    return HEALTHY if all(state == CLOSED for state in states) else DEGRADED


def _service_status(route_statuses: list[str]) -> str:
    active = {status for status in route_statuses if status != INACTIVE}
    if not active:
        return INACTIVE
    return active.pop() if len(active) == 1 and active <= {HEALTHY, DOWN} else DEGRADED


def _traffic_by_route(route_ids: list[int], since: dt.datetime) -> dict[int, _Traffic]:
    traffic: dict[int, _Traffic] = defaultdict(_Traffic)
    rollups = RequestRollup.objects.filter(granularity=RequestRollup.Granularity.MINUTE, bucket_start__gte=since,
                                           route_id__in=route_ids)
    for route_id, error_code, count, histogram in rollups.values_list(
            "route_id", "error_code", "count", "latency_histogram").iterator(chunk_size=5000):
        seen = traffic[route_id]
        seen.requests += count
        seen.upstream_failures += count if error_code in UPSTREAM_FAILURES else 0
        for index, value in enumerate(histogram or ()):
            seen.histogram[index] += value
    return traffic
