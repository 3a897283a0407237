"""Gateway metrics shared by every process: counters folded from request records.

Each process folds the records it flushes into counter deltas and adds them to one store
hash (HINCRBY, off the hot path, once per flush), and reports its own gauges (requests in
flight, degraded-mode counters) under its process id. `/metrics` and `/metrics/prometheus`
read that hash, so they show every gateway process, not the one that answered.

Deltas the store did not take (Redis down) are kept and sent with the next flush; a process
that dies loses the deltas of its last unflushed interval (the request log, not these
counters, is the record of what was served).

Field names: `req|<method>|<route>|<status>`, `dur|<route>|<bucket>`, `dursum|<route>`,
`cache|<outcome>`, `svc|<route>|<status>` (answered by the upstream), `ratelimited|<route>`,
`blocked`, `upstream_errors`.
"""

from __future__ import annotations

import bisect
import os
import socket
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.runtime.records import Record

# Upper bounds (seconds) of the request-duration histogram (Prometheus `le`); +Inf follows.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_UPSTREAM_ERRORS = frozenset({"upstream_error", "upstream_timeout"})
_RATE_LIMITED = frozenset({"rate_limited", "quota_exceeded"})
# How long a process's gauges count after its last report.
PROCESS_REPORT_TTL = 15.0


def process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def tally(records: Sequence[Record], deltas: dict[str, float]) -> None:
    """Fold records into counter deltas (added to `deltas` in place). Counts distinct label
    sets first: a flush holds many records and few label sets."""
    labels = Counter((r.method, r.route or "-", r.status, r.cache or "BYPASS", r.upstream_ms is not None, r.error)
                     for r in records)
    durations = Counter((r.route or "-", bisect.bisect_left(DURATION_BUCKETS, r.latency_ms / 1000)) for r in records)
    for (method, route, status, cache, upstream_called, error), count in labels.items():
        deltas_add(deltas, f"req|{method}|{route}|{status}", count)
        deltas_add(deltas, f"cache|{cache}", count)
        if upstream_called:
            deltas_add(deltas, f"svc|{route}|{status}", count)
        if error in _UPSTREAM_ERRORS:
            deltas_add(deltas, "upstream_errors", count)
        elif error in _RATE_LIMITED:
            deltas_add(deltas, f"ratelimited|{route}", count)
        elif error == "blocked":
            deltas_add(deltas, "blocked", count)
    for (route, bucket), count in durations.items():
        deltas_add(deltas, f"dur|{route}|{bucket}", count)
    seconds_by_route: dict[str, float] = {}
    for record in records:
        route = record.route or "-"
        seconds_by_route[route] = seconds_by_route.get(route, 0.0) + record.latency_ms / 1000
    for route, seconds in seconds_by_route.items():
        deltas_add(deltas, f"dursum|{route}", seconds)


def deltas_add(deltas: dict[str, float], field: str, amount: float) -> None:
    deltas[field] = deltas.get(field, 0) + amount
