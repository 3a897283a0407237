"""Which headers belong to one hop, and which a route's configuration may add."""

from __future__ import annotations

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"trailers",
    b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization",
})
# What a route's added headers may not name: the framing and connection headers each hop sets
# for itself, and those the gateway sets once (a second Content-Length or Date would make the
# message ambiguous to whatever reads it next).
ROUTE_RESERVED_HEADERS = HOP_BY_HOP | {b"content-length", b"host", b"date", b"x-request-id"}


def route_may_add(name: str) -> bool:
    lower = name.lower()
    return lower.encode("latin-1") not in ROUTE_RESERVED_HEADERS and not lower.startswith("proxy-")
