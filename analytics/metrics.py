"""`/metrics` (JSON) and `/metrics/prometheus`, read from the counters every gateway process
adds to the store (gateway/runtime/metrics.py), so they cover all processes.

Prometheus series: the Sandbox gateway's names (`api_gateway_*`) and Heliox's (`heliox_*`).
The state lives in the store, not in this process, so the exposition is the same whichever
worker answers the scrape (no prometheus-client multiprocess directory needed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from analytics.rollups import histogram_percentile
from gateway.config_publish import config_store
from gateway.runtime.circuit import CIRCUIT_GAUGE, CLOSED, open_circuits, worst
from gateway.runtime.metrics import DURATION_BUCKETS

CACHE_OUTCOMES = ("HIT", "MISS", "STALE", "BYPASS")
DEGRADED = ("store_errors", "ratelimit_local", "ratelimit_open", "ratelimit_closed", "cache_errors",
            "records_spooled")


@dataclass
class GatewayMetrics:
    requests: dict[tuple[str, str, str], float] = field(default_factory=dict)  # method, route, status
    upstream: dict[tuple[str, str], float] = field(default_factory=dict)  # route, status
    durations: dict[str, list[float]] = field(default_factory=dict)  # route → per-bucket counts
    duration_sums: dict[str, float] = field(default_factory=dict)
    cache: dict[str, float] = field(default_factory=dict)
    rate_limited: dict[str, float] = field(default_factory=dict)  # route
    blocked: float = 0
    upstream_errors: float = 0
    processes: dict[str, dict[str, float]] = field(default_factory=dict)

    def gauge(self, name: str) -> float:
        return sum(report.get(name, 0) for report in self.processes.values())

    def circuit_states(self) -> dict[tuple[str, str], int]:
        """(route slug, target) → the worst state any live process reports, for the series
        labelled by service."""
        states: dict[tuple[str, str], int] = {}
        for (_, slug, target), state in self.route_circuit_states().items():
            states[(slug, target)] = worst(states.get((slug, target), CLOSED), state)
        return states

    def route_circuit_states(self) -> dict[tuple[int, str, str], int]:
        """(route id, route slug, target) → the worst state any live process reports (open over
        half-open over closed): each process keeps its own breakers."""
        states: dict[tuple[int, str, str], int] = {}
        for report in self.processes.values():
            for name, state in report.items():
                kind, _, rest = name.partition("|")
                route_id, _, rest = rest.partition("|")
                slug, _, target = rest.partition("|")
                if kind == CIRCUIT_GAUGE and route_id.isdigit() and target:
                    key = (int(route_id), slug, target)
                    states[key] = worst(states.get(key, CLOSED), int(state))
        return states


def gateway_metrics() -> GatewayMetrics:
    counters, processes = config_store().read_metrics()
    metrics = GatewayMetrics(processes=processes)
    for name, value in counters.items():
        kind, _, rest = name.partition("|")
        parts = rest.split("|")
        if kind == "req" and len(parts) == 3:
            metrics.requests[(parts[0], parts[1], parts[2])] = value
        elif kind == "svc" and len(parts) == 2:
            metrics.upstream[(parts[0], parts[1])] = value
        elif kind == "dur" and len(parts) == 2 and parts[1].isdigit():
            buckets = metrics.durations.setdefault(parts[0], [0.0] * (len(DURATION_BUCKETS) + 1))
            if int(parts[1]) < len(buckets):
                buckets[int(parts[1])] += value
        elif kind == "dursum":
            metrics.duration_sums[rest] = value
        elif kind == "cache":
            metrics.cache[rest] = value
        elif kind == "ratelimited":
            metrics.rate_limited[rest] = value
        elif kind == "blocked":
            metrics.blocked = value
        elif kind == "upstream_errors":
            metrics.upstream_errors = value
    return metrics


_DURATION_BUCKETS_MS = [bound * 1000 for bound in DURATION_BUCKETS]


def _percentile_ms(buckets: list[float], fraction: float) -> float | None:
    return histogram_percentile(buckets, fraction, _DURATION_BUCKETS_MS)


def metrics_json() -> dict[str, object]:
    metrics = gateway_metrics()
    all_routes = [sum(column) for column in zip(*metrics.durations.values(), strict=True)] or [0.0]
    by_status: dict[str, int] = {}
    for (_, _, status), value in metrics.requests.items():
        by_status[status] = by_status.get(status, 0) + int(value)
    cache = {outcome.lower(): int(metrics.cache.get(outcome, 0)) for outcome in CACHE_OUTCOMES}
    looked_up = cache["hit"] + cache["miss"] + cache["stale"]
    return {
        "requests": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
        "cache": {**cache, "hit_rate": round((cache["hit"] + cache["stale"]) / looked_up, 4) if looked_up else None},
        "upstream_errors": int(metrics.upstream_errors),
        "rate_limited": int(sum(metrics.rate_limited.values())),
        "blocked": int(metrics.blocked),
        "latency_ms": {"p50": _percentile_ms(all_routes, 0.5), "p95": _percentile_ms(all_routes, 0.95),
                       "p99": _percentile_ms(all_routes, 0.99)},
        "active_requests": int(metrics.gauge("active_requests")),
        "gateway_processes": len(metrics.processes),
        "degraded": {name: int(metrics.gauge(name)) for name in DEGRADED},
        "open_circuits": open_circuits(metrics.circuit_states()),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
    }


class _GatewayCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        metrics = gateway_metrics()
        requests = CounterMetricFamily("api_gateway_requests", "Requests answered by the gateway.",
                                       labels=["method", "route", "status"])
        for (method, route, status), value in sorted(metrics.requests.items()):
            requests.add_metric([method, route, status], value)
        yield requests
        duration = HistogramMetricFamily("api_gateway_request_duration_seconds",
                                         "Time from request to response, inside the gateway.", labels=["route"])
        bounds = [*(repr(b) for b in DURATION_BUCKETS), "+Inf"]
        for route, buckets in sorted(metrics.durations.items()):
            cumulative, running = [], 0.0
            for bound, count in zip(bounds, buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            duration.add_metric([route], cumulative, metrics.duration_sums.get(route, 0.0))
        yield duration
        yield GaugeMetricFamily("api_gateway_active_requests", "Requests in flight across gateway processes.",
                                value=metrics.gauge("active_requests"))
        upstream = CounterMetricFamily("api_gateway_service_requests", "Requests answered by an upstream service.",
                                       labels=["service", "status"])
        for (route, status), value in sorted(metrics.upstream.items()):
            upstream.add_metric([route, status], value)
        yield upstream
        circuits = GaugeMetricFamily("api_gateway_circuit_breaker_state",
                                     "Circuit breaker per route and target: 0 closed, 1 open, 2 half-open "
                                     "(the worst any gateway process reports).", labels=["service", "target"])
        for (route, target), state in sorted(metrics.circuit_states().items()):
            circuits.add_metric([route, target], state)
        yield circuits
        limited = CounterMetricFamily("api_gateway_rate_limit_hits", "Requests refused for rate limit or quota.",
                                      labels=["route"])
        for route, value in sorted(metrics.rate_limited.items()):
            limited.add_metric([route], value)
        yield limited
        for outcome, name in (("HIT", "hits"), ("MISS", "misses"), ("STALE", "stale"), ("BYPASS", "bypass")):
            yield CounterMetricFamily(f"heliox_cache_{name}", f"Responses with X-Cache: {outcome}.",
                                      value=metrics.cache.get(outcome, 0))
        yield CounterMetricFamily("heliox_upstream_errors", "Upstream errors and timeouts (502/504).",
                                  value=metrics.upstream_errors)
        yield CounterMetricFamily("heliox_blocked", "Requests refused under an abuse block.", value=metrics.blocked)
        yield GaugeMetricFamily("heliox_gateway_processes", "Gateway processes reporting.",
                                value=len(metrics.processes))
        for name in DEGRADED:
            yield GaugeMetricFamily(f"heliox_degraded_{name}", f"Degraded-mode count of {name} since each "
                                    "process started, summed over live processes.", value=metrics.gauge(name))


def metrics_prometheus() -> bytes:
    from prometheus_client import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_GatewayCollector())
    return generate_latest(registry)
