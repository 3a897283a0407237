"""Circuit breakers: one per route and upstream target, in each gateway process.

A target whose connections fail or time out `failure_threshold` times in a row is *open*:
requests skip it (another of the route's targets answers) and, when no target is left, get
503 `circuit_open` at once instead of waiting on a dead upstream. After `open_seconds` one
request is let through as a probe (*half-open*): an answer closes the circuit, a failure opens
it again for another `open_seconds`. A probe that never reports (its client went away) frees
the slot for another probe after `open_seconds`.

Only failures to get an answer count (connection refused or reset, the deadline): an upstream
that answers 500 is up, and its 500 goes to the client unchanged. The state is per process,
like Envoy's outlier detection: each process learns on its own within `failure_threshold`
requests, and nothing is added to the one Redis round trip of a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Values of the `api_gateway_circuit_breaker_state` gauge.
CLOSED, OPEN, HALF_OPEN = 0, 1, 2


@dataclass
class _Circuit:
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
        self._circuits: dict[tuple[str, str], _Circuit] = {}

    def allow(self, route: str, target: str) -> bool:
        """Whether a request may go to this target now (and, half-open, whether it is the probe)."""
        circuit = self._circuits.get((route, target))
        if circuit is None or circuit.state == CLOSED:
            return True
        now = self.clock()
        if now - circuit.since < self.open_seconds:
            return False
        circuit.state, circuit.since = HALF_OPEN, now
        return True

    def succeeded(self, route: str, target: str) -> None:
        circuit = self._circuits.get((route, target))
        if circuit is not None and (circuit.failures or circuit.state != CLOSED):
            circuit.failures, circuit.state = 0, CLOSED

    def failed(self, route: str, target: str) -> None:
        circuit = self._circuits.setdefault((route, target), _Circuit())
        circuit.failures += 1
        if circuit.state == HALF_OPEN or circuit.failures >= self.failure_threshold:
            circuit.state, circuit.since = OPEN, self.clock()

    def states(self) -> dict[tuple[str, str], int]:
        """(route, target) → CLOSED / OPEN / HALF_OPEN, for every circuit that ever failed."""
        return {key: circuit.state for key, circuit in self._circuits.items()}
