"""Circuit breakers: one per route and upstream target, in each gateway process.

A target whose connections fail or time out `failure_threshold` times in a row is *open*:
requests skip it (another of the route's targets answers) and, when no target is left, get
503 `circuit_open` at once instead of waiting on a dead upstream. After `open_seconds` one
request is let through as a probe (*half-open*): an answer closes the circuit, a failure opens
it again for another `open_seconds`. A probe that never reports (its client went away) frees
the slot for another probe after `open_seconds`.

Only failing to get an answer counts (connection refused or reset, the deadline passing
before the response headers): an upstream that answers 500, or whose body is slow, is up,
and what it sent goes to the client as it is. The state is per process, like Envoy's outlier
detection: each process learns on its own within `failure_threshold` requests, and nothing is
added to the one Redis round trip of a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from gateway.runtime.snapshot import RouteConfig

# Values of the `api_gateway_circuit_breaker_state` gauge.
CLOSED, OPEN, HALF_OPEN = 0, 1, 2
# A circuit in a process's metrics report is `breaker|<route id>|<route slug>|<target>`: by id,
# since tenants' routes share slugs; the slug labels the Prometheus series.
CIRCUIT_GAUGE = "breaker"


@dataclass
class _Circuit:
    route_slug: str  # for the metric's label (route ids key the circuits: slugs repeat across tenants)
    failures: int = 0
    state: int = CLOSED
    since: float = 0.0  # when it opened, or when its probe went out


class CircuitBreakers:
    def __init__(self, failure_threshold: int, open_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.clock = clock
        # Only circuits that have failed at least once: the rest are closed.
        self._circuits: dict[tuple[int, str], _Circuit] = {}

    def allow(self, route_id: int, target: str) -> bool:
        """Whether a request may go to this target now (and, half-open, whether it is the probe)."""
        circuit = self._circuits.get((route_id, target))
        if circuit is None or circuit.state == CLOSED:
            return True
        now = self.clock()
        if now - circuit.since < self.open_seconds:
            return False
        circuit.state, circuit.since = HALF_OPEN, now
        return True

    def succeeded(self, route: RouteConfig, target: str) -> None:
        circuit = self._circuits.get((route.id, target))
        if circuit is not None:
            circuit.failures, circuit.state = 0, CLOSED

    def failed(self, route: RouteConfig, target: str) -> None:
        circuit = self._circuits.get((route.id, target))
        if circuit is None:
            circuit = self._circuits[(route.id, target)] = _Circuit(route.slug)
        circuit.failures += 1
        if circuit.state == HALF_OPEN or circuit.failures >= self.failure_threshold:
            circuit.state, circuit.since = OPEN, self.clock()

    def keep_only(self, routes: Collection[RouteConfig]) -> None:
        """Forget the circuits of routes and targets no longer configured."""
        live = {(route.id, target.url) for route in routes for target in route.targets}
        for key in [key for key in self._circuits if key not in live]:
            del self._circuits[key]

    def states(self) -> dict[tuple[str, str], int]:
        """(route slug, target) → CLOSED / OPEN / HALF_OPEN for every circuit that has failed;
        where two tenants' routes share a slug and a target, the worse state."""
        states: dict[tuple[str, str], int] = {}
        for (_, slug, target), state in self.states_by_route().items():
            states[(slug, target)] = worst(states.get((slug, target), CLOSED), state)
        return states

    def states_by_route(self) -> dict[tuple[int, str, str], int]:
        """(route id, route slug, target) → state for every circuit that has failed."""
        return {(route_id, circuit.route_slug, target): circuit.state
                for (route_id, target), circuit in self._circuits.items()}


_SEVERITY = (CLOSED, HALF_OPEN, OPEN)


def worst(a: int, b: int) -> int:
    return max(a, b, key=_SEVERITY.index)


def open_circuits(states: dict[tuple[str, str], int]) -> list[str]:
    """`"<route> <target>"` for each circuit not closed, for /ready and /metrics."""
    return sorted(f"{route} {target}" for (route, target), state in states.items() if state != CLOSED)
