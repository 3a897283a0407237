"""Admission decisions, held to the same answers on the Redis script and the in-process store."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from gateway.runtime import ratelimit
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.ratelimit import AdmissionRequest, RateState
from gateway.runtime.store import Store, block_key, soft_limit_key


def request(subject: str, *, algorithm: str = "token_bucket", rps: float = 0.001, burst: int = 5,
            quota_daily: int = 0, quota_monthly: int = 0, bucket: str = "") -> AdmissionRequest:
    return AdmissionRequest(subject=subject, bucket=bucket, algorithm=algorithm, rps=rps, burst=burst,
                            quota_daily=quota_daily, quota_monthly=quota_monthly)


@pytest.mark.parametrize("algorithm", ["token_bucket", "sliding_window", "leaky_bucket"])
async def test_a_burst_admits_exactly_the_limit_under_concurrency(store: Store, algorithm: str) -> None:
    # rps so low that nothing refills during the test: the count must be exact.
    decisions = await asyncio.gather(*[store.admit(request("k1", algorithm=algorithm, burst=10))
                                       for _ in range(40)])
    outcomes = [d.outcome for d in decisions]
    assert outcomes.count(ratelimit.OK) == 10
    assert outcomes.count(ratelimit.RATE_LIMITED) == 30


@pytest.mark.parametrize("algorithm", ["token_bucket", "sliding_window", "leaky_bucket"])
async def test_remaining_counts_down_and_refusals_say_when_to_retry(store: Store, algorithm: str) -> None:
    remaining = [(await store.admit(request("k2", algorithm=algorithm, rps=0.5, burst=3))).remaining
                 for _ in range(3)]
    assert remaining == [2, 1, 0]
    refused = await store.admit(request("k2", algorithm=algorithm, rps=0.5, burst=3))
    assert refused.outcome == ratelimit.RATE_LIMITED
    assert 0 < refused.retry_after <= 2 * refused.window  # the sliding window may wait into the next one
    assert refused.reset == pytest.approx(refused.retry_after, abs=0.01)
    assert refused.limit == 3


async def test_daily_quota_stops_at_the_boundary_and_names_itself(store: Store) -> None:
    decisions = [await store.admit(request("k3", rps=1000, burst=1000, quota_daily=5)) for _ in range(7)]
    assert [d.outcome for d in decisions] == [ratelimit.OK] * 5 + [ratelimit.QUOTA_DAILY] * 2
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert decisions[-1].retry_after == pytest.approx((midnight - now).total_seconds(), abs=5)
    assert decisions[-1].limit == 5


async def test_monthly_quota_resets_at_the_calendar_month(store: Store) -> None:
    decisions = [await store.admit(request("k4", rps=1000, burst=1000, quota_monthly=2)) for _ in range(3)]
    assert decisions[-1].outcome == ratelimit.QUOTA_MONTHLY
    now = dt.datetime.now(dt.UTC)
    first = dt.datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=dt.UTC)
    assert decisions[-1].retry_after == pytest.approx((first - now).total_seconds(), abs=5)


async def test_a_rate_limited_request_consumes_no_quota(store: Store) -> None:
    for _ in range(5):
        await store.admit(request("k5", burst=2, quota_daily=3))
    # 2 admitted, 3 refused by the rate limit: one unit of quota is still left.
    fresh_bucket = request("k5", burst=2, quota_daily=3, bucket="r1")
    assert (await store.admit(fresh_bucket)).outcome == ratelimit.OK
    assert (await store.admit(request("k5", burst=2, quota_daily=3, bucket="r2"))).outcome == ratelimit.QUOTA_DAILY


async def test_a_block_refuses_with_its_remaining_time(store: Store) -> None:
    await _set_expiring(store, block_key("k6"), "anomaly", 120)
    decision = await store.admit(request("k6", rps=1000, burst=1000))
    assert decision.outcome == ratelimit.BLOCKED
    assert 115 < decision.retry_after <= 120


async def test_a_soft_limit_tightens_the_rate(store: Store) -> None:
    await _set_expiring(store, soft_limit_key("k7"), "0.5", 60)
    outcomes = [(await store.admit(request("k7", burst=10))).outcome for _ in range(10)]
    assert outcomes.count(ratelimit.OK) == 5


async def test_route_buckets_are_separate_from_the_keys_own(store: Store) -> None:
    for _ in range(2):
        await store.admit(request("k8", burst=2))
    assert (await store.admit(request("k8", burst=2))).outcome == ratelimit.RATE_LIMITED
    assert (await store.admit(request("k8", burst=2, bucket="r9"))).outcome == ratelimit.OK


async def _set_expiring(store: Store, key: str, value: str, ttl: int) -> None:
    if isinstance(store, MemoryStore):
        store.set_expiring(key, value, ttl)
    else:
        await store.client().set(key, value, ex=ttl)  # type: ignore[attr-defined]


class TestAlgorithmsOverTime:
    """Pure algorithm behaviour with a simulated clock (the Lua twin is held by the tests above)."""

    def test_token_bucket_refills_at_rps(self) -> None:
        state = RateState()
        for _ in range(4):
            verdict = ratelimit.token_bucket(state, 100.0, 2.0, 4)
            state = verdict.new_state
        assert not ratelimit.token_bucket(state, 100.0, 2.0, 4).allowed
        assert ratelimit.token_bucket(state, 100.5, 2.0, 4).allowed

    def test_leaky_bucket_spaces_requests_after_the_burst(self) -> None:
        state = RateState()
        admitted = 0
        for step in range(100):  # 10 s at 10 checks/s against 2 rps, burst 3
            verdict = ratelimit.leaky_bucket(state, step / 10, 2.0, 3)
            if verdict.allowed:
                admitted += 1
                state = verdict.new_state
        assert admitted in (21, 22, 23)  # 3 burst + 2/s over 10 s

    def test_sliding_window_weights_the_previous_window(self) -> None:
        state = RateState()
        for _ in range(10):  # fill window 0 (size 1 s: burst 10 / rps 10)
            state = ratelimit.sliding_window(state, 0.5, 10.0, 10).new_state
        # 30% into window 1 the previous window still weighs 70%: 3 more fit.
        admitted = 0
        for _ in range(10):
            verdict = ratelimit.sliding_window(state, 1.3, 10.0, 10)
            if verdict.allowed:
                admitted += 1
                state = verdict.new_state
        assert admitted == 3

    def test_quota_windows_are_calendar_utc(self) -> None:
        moment = dt.datetime(2026, 12, 31, 23, 59, 30, tzinfo=dt.UTC).timestamp()
        _, day_left, month, month_left = ratelimit.quota_windows(moment)
        assert month == "202612"
        assert day_left == pytest.approx(30)
        assert month_left == pytest.approx(30)
