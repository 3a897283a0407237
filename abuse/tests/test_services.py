"""Abuse detection end to end below the gateway: records → signals → scoring → blocks in the
store and the snapshot; unblock. Simulated time: signals are written for past intervals."""

from __future__ import annotations

import datetime as dt
import io
import random
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from abuse.models import AbuseEvent, AbuseScore, Block
from abuse.services import abuse_score_intervals, api_key_unblock, blocks_active
from analytics.ingest import ingest_records
from billing.models import Plan
from gateway.config_publish import build_snapshot, config_store
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.records import Record
from gateway.runtime.store import block_key, soft_limit_key
from tenants.services import api_key_issue, tenant_create

pytestmark = pytest.mark.django_db
INTERVAL = 10


def _key(plan: str = "pro") -> object:
    tenant = tenant_create(name=f"Abuse {uuid.uuid4().hex[:6]}", plan=Plan.objects.get(slug=plan))
    return api_key_issue(tenant=tenant, name="k").api_key


def _traffic(start: dt.datetime, rates: list[float], *, key_id: int | None = None, status: int = 200,
             client_ip: str = "198.51.100.7", failed_keys: int = 0, paths: int = 1) -> None:
    """Records for consecutive intervals at the given rates (requests/s)."""
    records = []
    for index, rate in enumerate(rates):
        bucket = start + dt.timedelta(seconds=INTERVAL * index)
        for n in range(round(rate * INTERVAL)):
            records.append(Record(
                request_id=uuid.uuid4().hex, ts=bucket.timestamp() + n * INTERVAL / max(1, rate * INTERVAL),
                api_key_id=key_id, route_id=None, method="GET", path=f"/p/{n % paths}",
                status=status, latency_ms=1.0, client_ip=client_ip,
                failed_key=f"guess{n % max(1, failed_keys)}" if failed_keys else "",
            ))
    for chunk in range(0, len(records), 5000):
        ingest_records(records[chunk:chunk + 5000])


def _store_has(key: str) -> bool:
    store = config_store()
    if isinstance(store, MemoryStore):
        return store._get_expiring(key, store._clock()) is not None
    return bool(store.sync.exists(key))  # type: ignore[attr-defined]


def _start(intervals: int) -> dt.datetime:
    now = timezone.now()
    aligned = now.timestamp() - now.timestamp() % INTERVAL
    return dt.datetime.fromtimestamp(aligned, dt.UTC) - dt.timedelta(seconds=INTERVAL * (intervals + 3))


def test_a_steady_key_that_jumps_tenfold_is_blocked_in_the_store(django_capture_on_commit_callbacks: Any) -> None:
    api_key = _key()
    _traffic(_start(32), [2.0] * 30 + [20.0, 20.0], key_id=api_key.pk)
    with django_capture_on_commit_callbacks(execute=True):
        decisions = abuse_score_intervals()
    assert [d.action for d in decisions][:1] == ["blocked"]
    block = Block.objects.get(api_key=api_key)
    assert block.reason == "anomaly"
    assert block.anomaly_score > 6
    assert block.rate_at_block == pytest.approx(20.0)
    assert _store_has(block_key(f"k{api_key.pk}"))
    assert AbuseScore.objects.get(api_key=api_key).intervals == 32
    assert abuse_score_intervals() == []  # every interval is scored once


def test_a_noisy_steady_key_is_never_flagged() -> None:
    api_key = _key()
    noise = random.Random(7)
    _traffic(_start(60), [2.0 * noise.uniform(0.7, 1.3) for _ in range(60)], key_id=api_key.pk)
    assert abuse_score_intervals() == []
    assert not Block.objects.exists()


def test_an_exempt_plans_key_is_only_soft_limited() -> None:
    api_key = _key("enterprise")
    _traffic(_start(32), [2.0] * 30 + [20.0, 20.0], key_id=api_key.pk)
    decisions = abuse_score_intervals()
    assert {d.action for d in decisions} == {"soft_limit"}
    assert not Block.objects.exists()
    assert _store_has(soft_limit_key(f"k{api_key.pk}"))


def test_an_error_storm_is_blocked_but_a_404_crawl_is_not() -> None:
    stormy, crawler = _key(), _key()
    _traffic(_start(8), [1.0] * 7 + [8.0], key_id=stormy.pk, status=403)
    _traffic(_start(8), [1.0] * 7 + [8.0], key_id=crawler.pk, status=404, paths=80)
    abuse_score_intervals()
    assert Block.objects.get(api_key=stormy).reason == "error_storm"
    assert not Block.objects.filter(api_key=crawler, reason="error_storm").exists()


def test_key_guessing_blocks_the_address_in_the_snapshot() -> None:
    _traffic(_start(2), [3.0], status=401, client_ip="203.0.113.99", failed_keys=30)
    abuse_score_intervals()
    block = Block.objects.get(client_ip="203.0.113.99")
    assert block.reason == "key_guessing"
    assert [b["ip"] for b in build_snapshot(1)["blocked_ips"]] == ["203.0.113.99"]


def test_a_few_wrong_keys_from_one_address_are_not_guessing() -> None:
    _traffic(_start(2), [1.0], status=401, client_ip="203.0.113.5", failed_keys=3)
    abuse_score_intervals()
    assert not Block.objects.exists()


def test_unblock_lifts_the_block_everywhere_and_records_who_and_why(
        admin_user: object, django_capture_on_commit_callbacks: Any) -> None:
    api_key = _key()
    _traffic(_start(32), [2.0] * 30 + [20.0, 20.0], key_id=api_key.pk)
    with django_capture_on_commit_callbacks(execute=True):
        abuse_score_intervals()
    assert blocks_active()
    assert _store_has(block_key(f"k{api_key.pk}"))
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("unblock_key", str(api_key.pk), "--reason", "customer confirmed a batch job", stdout=out)
    assert not _store_has(block_key(f"k{api_key.pk}"))
    assert "Lifted 1 block(s)" in out.getvalue()
    block = Block.objects.get(api_key=api_key)
    assert block.lifted_at is not None
    assert block.lift_reason == "customer confirmed a batch job"
    assert not blocks_active()
    assert AbuseEvent.objects.filter(api_key=api_key, action="unblocked").count() == 1
    assert api_key_unblock(api_key=api_key, by=admin_user, reason="again") == 0  # type: ignore[arg-type]
