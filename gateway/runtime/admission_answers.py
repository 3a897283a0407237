"""What a client is told about admission: the rate-limit headers of every proxied answer and
the 429 of a refused one (an address or key blocked, rate limited, quota used up)."""

from __future__ import annotations

import math

from gateway.runtime import ratelimit
from gateway.runtime.errors import GatewayError
from gateway.runtime.ratelimit import AdmissionDecision


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))  # Retry-After is never 0


def address_blocked(remaining: float) -> GatewayError:
    """Key guessing blocks the address itself, for `remaining` more seconds."""
    retry_after = _whole_seconds(remaining)
    return GatewayError(429, "blocked", "This address is temporarily blocked.",
                        headers=[(b"retry-after", str(retry_after).encode())], extra={"retry_after": retry_after})


def rate_limit_headers(decision: AdmissionDecision) -> list[tuple[bytes, bytes]]:
    """X-RateLimit-* and the IETF draft's RateLimit-Policy / RateLimit fields."""
    reset = math.ceil(decision.reset)
    window = max(1, math.ceil(decision.window)) if decision.window else 0
    headers = [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        (b"x-ratelimit-reset", str(reset).encode()),
        (b"ratelimit", f'"default";r={decision.remaining};t={reset}'.encode()),
    ]
    if window:
        headers.append((b"ratelimit-policy", f'"default";q={decision.limit};w={window}'.encode()))
    return headers


def refusal(decision: AdmissionDecision) -> GatewayError:
    retry_after = _whole_seconds(decision.retry_after)
    headers = [(b"retry-after", str(retry_after).encode()), *rate_limit_headers(decision)]
    if decision.outcome == ratelimit.BLOCKED:
        return GatewayError(429, "blocked", "This key is temporarily blocked for unusual traffic.",
                            headers=headers, extra={"retry_after": retry_after})
    if decision.outcome == ratelimit.RATE_LIMITED:
        return GatewayError(429, "rate_limited", "Rate limit exceeded; slow down.", headers=headers,
                            extra={"retry_after": retry_after, "limit": decision.limit, "remaining": 0})
    period = "daily" if decision.outcome == ratelimit.QUOTA_DAILY else "monthly"
    return GatewayError(429, "quota_exceeded", f"The {period} request quota is used up.", headers=headers,
                        extra={"retry_after": retry_after, "limit": decision.limit, "remaining": 0,
                               "period": period})
