"""Admission decisions: abuse block, rate limit, daily and monthly quota.

The Redis store runs the same decisions in one Lua script (admission.lua); this module is
the in-process twin used by the embedded store and the `local` fallback. One shared test
suite (gateway/tests/test_admission.py) holds the two to the same answers.

Parameters are the same for every algorithm: `rps` sustained, `burst` at most at once.
- token bucket: capacity `burst`, refilled at `rps` tokens/s.
- sliding window: at most `burst` requests per window of `burst / rps` seconds, by the
  weighted two-window counter (Cloudflare's). It assumes the previous window's requests
  were spread evenly; in the worst case (all of them at its very end) the true count over
  any window-length span can reach `burst * (1 + f)` where f < 1 is how far the current
  window has run, so the error bound is < 1x burst, and 0 for evenly spread traffic.
- leaky bucket: GCRA with emission interval 1/rps and tolerance `burst` intervals.
A request that is refused consumes nothing: no token, no window slot, no quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OK = "ok"
RATE_LIMITED = "rate_limited"
QUOTA_DAILY = "quota_daily"
QUOTA_MONTHLY = "quota_monthly"
BLOCKED = "blocked"

# Script result codes, shared with admission.lua.
OUTCOMES = (OK, RATE_LIMITED, QUOTA_DAILY, QUOTA_MONTHLY, BLOCKED)


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    subject: str  # "k<id>" for a key, "ip:<addr>" for anonymous traffic
    bucket: str  # "" for the subject's own bucket, "r<id>" for a route override
    algorithm: str
    rps: float
    burst: int
    quota_daily: int  # 0 = unlimited
    quota_monthly: int


@dataclass(frozen=True, slots=True)
class AdmissionDecision:
    outcome: str
    limit: int
    remaining: int
    reset: float  # seconds until a token/slot is available (0 when one is)
    retry_after: float  # seconds; > 0 only when refused
    window: float  # the policy's window in seconds, for RateLimit-Policy

    @property
    def allowed(self) -> bool:
        return self.outcome == OK


@dataclass(slots=True)
class RateState:
    """The per-bucket state: (a, b, c) mean (tokens, ts, -) / (window, count, prev) / (tat, -, -)."""

    a: float = 0.0
    b: float = 0.0
    c: float = 0.0
    fresh: bool = True


@dataclass(frozen=True, slots=True)
class RateVerdict:
    allowed: bool
    remaining: int
    reset: float
    retry_after: float
    new_state: RateState


def window_of(rps: float, burst: int) -> float:
    return burst / rps


def token_bucket(state: RateState, now: float, rps: float, burst: int) -> RateVerdict:
    tokens = float(burst) if state.fresh else min(float(burst), state.a + max(0.0, now - state.b) * rps)
    if tokens >= 1:
        left = tokens - 1
        reset = 0.0 if left >= 1 else (1 - left) / rps
        return RateVerdict(True, int(left), reset, 0.0, RateState(left, now, 0.0, False))
    wait = (1 - tokens) / rps
    return RateVerdict(False, 0, wait, wait, state)


def sliding_window(state: RateState, now: float, rps: float, burst: int) -> RateVerdict:
    size = burst / rps
    current = math.floor(now / size)
    elapsed = now - current * size
    if state.fresh or state.a < current - 1:
        count, previous = 0.0, 0.0
    elif state.a == current:
        count, previous = state.b, state.c
    else:  # the stored window is the one just before this
        count, previous = 0.0, state.b
    weight = 1 - elapsed / size
    estimate = previous * weight + count
    if estimate + 1 <= burst:
        left = burst - estimate - 1
        verdict_state = RateState(float(current), count + 1, previous, False)
        reset = 0.0 if left >= 1 else _sliding_wait(previous, count + 1, elapsed, size, burst)
        return RateVerdict(True, int(left), reset, 0.0, verdict_state)
    wait = _sliding_wait(previous, count, elapsed, size, burst)
    return RateVerdict(False, 0, wait, wait, state)


def _sliding_wait(previous: float, count: float, elapsed: float, size: float, burst: int) -> float:
    """Seconds until `previous * weight + count + 1 <= burst` holds again."""
    excess = previous * (1 - elapsed / size) + count - (burst - 1)
    if excess <= 0:
        return 0.0
    if previous > 0:
        wait = excess * size / previous
        if wait <= size - elapsed:
            return wait
    # Not within this window: in the next one, `count` becomes the previous window.
    next_wait = max(0.0, size * (1 - (burst - 1) / count)) if count > 0 else 0.0
    return (size - elapsed) + next_wait


def leaky_bucket(state: RateState, now: float, rps: float, burst: int) -> RateVerdict:
    interval = 1 / rps
    tolerance = interval * burst
    tat = now if state.fresh else max(state.a, now)
    new_tat = tat + interval
    allow_at = new_tat - tolerance
    if now >= allow_at:
        remaining = int((now - allow_at) / interval + 1e-9)
        reset = 0.0 if remaining >= 1 else max(0.0, new_tat + interval - tolerance - now)
        return RateVerdict(True, remaining, reset, 0.0, RateState(new_tat, 0.0, 0.0, False))
    wait = allow_at - now
    return RateVerdict(False, 0, wait, wait, state)


ALGORITHMS = {"token_bucket": token_bucket, "sliding_window": sliding_window, "leaky_bucket": leaky_bucket}


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (Howard Hinnant's algorithm; admission.lua has the inverse)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def quota_windows(now: float) -> tuple[str, float, str, float]:
    """(day id, seconds to day end, month id, seconds to month end), calendar UTC."""
    import datetime as _dt

    moment = _dt.datetime.fromtimestamp(now, _dt.UTC)
    day_number = int(now // 86400)
    day_end = (day_number + 1) * 86400
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    month_end = days_from_civil(year, month, 1) * 86400
    return str(day_number), day_end - now, f"{moment.year}{moment.month:02d}", month_end - now
