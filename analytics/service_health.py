"""Service health for `/admin/api/services/health` and `/admin/api/services/<name>/health`.

A service is a route slug, as in the `service` label of `api_gateway_service_requests_total` and
`api_gateway_circuit_breaker_state` (several tenants' routes may share one). Its health is what
the gateways have seen, not a probe of its own: each target's circuit, the worst state any live
gateway process reports, and from the minute rollups the last minutes' requests, upstream
failures and latency.

- `healthy`: every target of its active routes has a closed circuit;
- `degraded`: some target's circuit is open or half-open, so its other targets answer;
- `down`: every target's circuit is open, so its requests get 503 `circuit_open`;
- `inactive`: none of its routes is active.
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
    circuits = gateway_metrics().circuit_states()
    since = timezone.now() - dt.timedelta(minutes=minutes)
    traffic = _traffic_by_route([route.pk for group in by_service.values() for route in group], since)
    return [_service(slug, group, circuits, traffic) for slug, group in by_service.items()]


def overall_status(services: list[dict[str, Any]]) -> str:
    """`healthy` when every active service is, else `degraded`: the gateway itself answers."""
    return HEALTHY if all(s["status"] in (HEALTHY, INACTIVE) for s in services) else DEGRADED


def _service(slug: str, routes: list[Route], circuits: dict[tuple[str, str], int],
             traffic: dict[int, _Traffic]) -> dict[str, Any]:
    targets: dict[str, int] = {}
    for route in routes:
        if route.is_active:
            for target in route.upstream_targets:
                url = str(target["url"]).rstrip("/")  # as the snapshot names it
                targets[url] = worst(targets.get(url, CLOSED), circuits.get((slug, url), CLOSED))
    totals = _Traffic()
    for route in routes:
        seen = traffic.get(route.pk)
        if seen is not None:
            totals.requests += seen.requests
            totals.upstream_failures += seen.upstream_failures
            totals.histogram = [a + b for a, b in zip(totals.histogram, seen.histogram, strict=True)]
    return {
        "name": slug,
        "status": _status(list(targets.values())),
        "routes": [{"route_id": r.pk, "tenant_id": r.tenant_id, "is_active": r.is_active} for r in routes],
        "targets": [{"url": url, "circuit": CIRCUIT_NAMES[state]} for url, state in sorted(targets.items())],
        "requests": totals.requests,
        "upstream_failures": totals.upstream_failures,
        "upstream_failure_rate": round(totals.upstream_failures / totals.requests, 4) if totals.requests else 0.0,
        "latency_p95_ms": histogram_percentile(totals.histogram, 0.95),
    }


def _status(states: list[int]) -> str:
    if not states:
        return INACTIVE
    if all(state == OPEN for state in states):
        return DOWN
    return HEALTHY if all(state == CLOSED for state in states) else DEGRADED


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
