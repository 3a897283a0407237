"""The embedded store: admission, config and records in this process (no Redis), making the
same decisions as the Redis script (the shared admission tests hold both to it)."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

from gateway.runtime import ratelimit
from gateway.runtime.ratelimit import AdmissionDecision, AdmissionRequest, RateState
from gateway.runtime.store import block_key, live_processes, quota_keys, rate_limit_key, soft_limit_key


class MemoryStore:
    """The in-process store: same decisions as the Redis script, guarded by one lock
    because the control plane (threads) and the data plane (the event loop) share it."""

    def __init__(self, clock: callable = time.time) -> None:  # type: ignore[valid-type]
        self._clock = clock
        self._lock = threading.Lock()
        self._rate: dict[str, tuple[RateState, float]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._expiring: dict[str, tuple[str, float]] = {}
        self._config_counter = 0
        self._config: tuple[int, bytes] | None = None
        self.records: collections.deque[bytes] = collections.deque()  # encoded batches
        self._admissions = 0
        self._metrics: dict[str, float] = {}
        self._process_reports: dict[str, dict[str, float]] = {}

    # --- admission -----------------------------------------------------------------
    def admit_now(self, request: AdmissionRequest) -> AdmissionDecision:
        with self._lock:
            return self._admit_locked(request, self._clock())

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision:
        return self.admit_now(request)

    def _admit_locked(self, request: AdmissionRequest, now: float) -> AdmissionDecision:
        self._admissions += 1
        if self._admissions % 10_000 == 0:
            self._sweep(now)
        block = self._get_expiring(block_key(request.subject), now)
        if block is not None:
            wait = self._expiring[block_key(request.subject)][1] - now
            return AdmissionDecision(ratelimit.BLOCKED, 0, 0, wait, wait, 0.0)
        rps, burst = request.rps, request.burst
        soft = self._get_expiring(soft_limit_key(request.subject), now)
        if soft is not None:
            rps, burst = rps * float(soft), max(1, int(burst * float(soft)))
        window = ratelimit.window_of(rps, burst)

        _, day_left, _, month_left = ratelimit.quota_windows(now)
        day_key, month_key = quota_keys(request.subject, now)
        if request.quota_daily and self._count(day_key, now) >= request.quota_daily:
            return AdmissionDecision(ratelimit.QUOTA_DAILY, request.quota_daily, 0, day_left, day_left, 86400.0)
        if request.quota_monthly and self._count(month_key, now) >= request.quota_monthly:
            return AdmissionDecision(ratelimit.QUOTA_MONTHLY, request.quota_monthly, 0, month_left, month_left, 0.0)

        rate_key = rate_limit_key(request)
        stored = self._rate.get(rate_key)
        state = stored[0] if stored and stored[1] > now else RateState()
        algorithm = ratelimit.ALGORITHMS.get(request.algorithm, ratelimit.token_bucket)
        verdict = algorithm(state, now, rps, burst)
        if not verdict.allowed:
            return AdmissionDecision(ratelimit.RATE_LIMITED, burst, 0, verdict.reset, verdict.retry_after, window)
        self._rate[rate_key] = (verdict.new_state, now + window * 2 + 1)
        if request.quota_daily:
            self._incr(day_key, now + day_left + 86400)
        if request.quota_monthly:
            self._incr(month_key, now + month_left + 86400)
        return AdmissionDecision(ratelimit.OK, burst, verdict.remaining, verdict.reset, 0.0, window)

    def _count(self, key: str, now: float) -> int:
        value = self._counters.get(key)
        return value[0] if value and value[1] > now else 0

    def _incr(self, key: str, expires_at: float) -> None:
        count = self._count(key, self._clock())
        self._counters[key] = (count + 1, expires_at if count == 0 else self._counters[key][1])

    def _get_expiring(self, key: str, now: float) -> str | None:
        value = self._expiring.get(key)
        return value[0] if value and value[1] > now else None

    def _sweep(self, now: float) -> None:
        for table in (self._rate, self._counters, self._expiring):
            for key in [k for k, v in table.items() if v[1] <= now]:
                del table[key]

    def set_expiring(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._expiring[key] = (value, self._clock() + ttl)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._expiring.pop(key, None) is not None

    # --- abuse actions (control plane), enforced by admission ------------------------------
    def set_block(self, subject: str, seconds: float, reason: str) -> None:
        self.set_expiring(block_key(subject), reason, seconds)

    def clear_block(self, subject: str) -> bool:
        return self.delete(block_key(subject))

    def set_soft_limit(self, subject: str, factor: float, seconds: float) -> None:
        self.set_expiring(soft_limit_key(subject), repr(factor), seconds)

    def quota_used(self, subjects: list[str], now: float) -> dict[str, tuple[int, int]]:
        """Requests admitted today and this month, as the quota counts them (counted only
        for a subject that has that quota)."""
        with self._lock:
            return {subject: tuple(self._count(key, now) for key in quota_keys(subject, now))  # type: ignore[misc]
                    for subject in subjects}

    # --- records -------------------------------------------------------------------
    async def append_records(self, batch: bytes) -> None:
        self.records.append(batch)

    def take_records(self, limit: int) -> list[bytes]:
        """Peek at up to `limit` batches; `ack_records` removes them once stored."""
        return [self.records[i] for i in range(min(limit, len(self.records)))]

    def ack_records(self, count: int) -> None:
        for _ in range(count):
            self.records.popleft()

    # --- metrics -------------------------------------------------------------------
    async def add_metrics(self, deltas: dict[str, float], process: str, gauges: dict[str, float]) -> None:
        with self._lock:
            for name, amount in deltas.items():
                self._metrics[name] = self._metrics.get(name, 0) + amount
            self._process_reports[process] = {**gauges, "at": self._clock()}

    def read_metrics(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        with self._lock:
            return dict(self._metrics), live_processes(self._process_reports, self._clock())

    # --- config --------------------------------------------------------------------
    def next_config_version(self) -> int:
        with self._lock:
            self._config_counter += 1
            return self._config_counter

    def put_config(self, version: int, blob: bytes) -> bool:
        with self._lock:
            if self._config is not None and self._config[0] >= version:
                return False
            self._config = (version, blob)
            return True

    async def config_version(self) -> int:
        return self._config[0] if self._config else 0

    async def get_config(self) -> tuple[int, bytes] | None:
        return self._config

    async def ping(self) -> bool:
        return True

    async def wait_for_config_change(self, timeout: float) -> None:
        # Publishing is in-process: polling a local variable every 0.2 s is free.
        await asyncio.sleep(min(timeout, 0.2))
