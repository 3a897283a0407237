"""What one request carries on its way through the gateway, and how it can end early."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.runtime.ratelimit import AdmissionDecision

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Counters:
    """Process-local counters of degraded behaviour (DESIGN.md §4)."""

    store_errors: int = 0
    ratelimit_local: int = 0
    ratelimit_open: int = 0
    ratelimit_closed: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Exchange:
    """What one request gathers on its way through, for its response headers and record."""

    request_id: str
    started: float
    method: str
    path: str
    client_ip: str | None
    user_agent: str = ""
    tenant_id: int | None = None
    key_id: int | None = None
    route_id: int | None = None
    route_slug: str = ""
    status: int = 0
    error_code: str = ""
    cache_status: str = "BYPASS"
    upstream_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    decision: AdmissionDecision | None = None
    degraded: str = ""
    failed_key: str = ""


class ResponseAborted(Exception):
    """The response had started when the upstream failed: the connection must be cut."""


class ClientGone(Exception):
    """The client disconnected; nothing more can be sent (recorded as 499)."""
