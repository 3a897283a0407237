"""Usage for the portal: per key today and this month against quota, and by day."""

from __future__ import annotations

import asyncio
import time

import pytest

from analytics.ingest import ingest_records
from analytics.selectors import tenant_usage
from analytics.tests.test_ingest import record
from gateway.config_publish import config_store
from gateway.runtime.ratelimit import AdmissionRequest
from tenants.services import api_key_issue
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def admit(key_id: int, times: int, quota_daily: int, quota_monthly: int) -> list[str]:
    store = config_store()
    request = AdmissionRequest(subject=f"k{key_id}", bucket="", algorithm="token_bucket", rps=1000.0, burst=1000,
                               quota_daily=quota_daily, quota_monthly=quota_monthly)

    async def run() -> list[str]:
        outcomes = [(await store.admit(request)).outcome for _ in range(times)]
        close = getattr(store, "close", None)
        if close is not None:
            await close()  # its clients belong to this event loop
        return outcomes

    return asyncio.run(run())


def test_a_key_with_quotas_reports_the_enforced_counters() -> None:
    tenant = TenantFactory(plan_slug="pro")
    key = api_key_issue(tenant=tenant, name="metered", quota_daily=5, quota_monthly=100).api_key
    outcomes = admit(key.pk, 7, quota_daily=5, quota_monthly=100)
    assert outcomes.count("ok") == 5  # the two over the daily quota were refused and not counted
    usage = tenant_usage(tenant=tenant)
    (entry,) = usage["keys"]
    assert entry["today"] == {"requests": 5, "quota": 5, "remaining": 0}
    assert entry["this_month"] == {"requests": 5, "quota": 100, "remaining": 95}


def test_a_key_without_quotas_reports_admitted_requests_from_the_rollups() -> None:
    tenant = TenantFactory(plan_slug="enterprise")
    key = api_key_issue(tenant=tenant, name="unmetered", quota_daily=0, quota_monthly=0).api_key
    now = time.time()
    ingest_records([record(tenant_id=tenant.pk, api_key_id=key.pk, ts=now) for _ in range(4)]
                   + [record(tenant_id=tenant.pk, api_key_id=key.pk, ts=now, status=429, error="rate_limited"),
                      record(tenant_id=tenant.pk, api_key_id=key.pk, ts=now, status=502, error="upstream_error")])
    usage = tenant_usage(tenant=tenant)
    (entry,) = usage["keys"]
    assert entry["today"] == {"requests": 5, "quota": None, "remaining": None}  # the 502 was admitted
    assert usage["today"]["requests"] == 5
    assert usage["by_day"][-1]["requests"] == 6
    assert usage["by_day"][-1]["errors"] == 2


def test_usage_never_includes_another_tenants_keys() -> None:
    mine, theirs = TenantFactory(plan_slug="pro"), TenantFactory(plan_slug="pro")
    api_key_issue(tenant=theirs, name="theirs")
    ingest_records([record(tenant_id=theirs.pk, ts=time.time())])
    usage = tenant_usage(tenant=mine)
    assert usage["keys"] == [] and usage["by_day"] == [] and usage["today"]["requests"] == 0
