"""/portal/usage by route and by cache outcome covers all the days asked for, also past the
minute rollups' retention (7 days): there it reads the hour rollups."""

from __future__ import annotations

import time

import pytest

from analytics.ingest import ingest_records
from analytics.retention import analytics_prune
from analytics.tests.test_ingest import record
from tenants.tests.factories import ApiKeyFactory, RouteFactory, TenantFactory
from tenants.tests.test_portal_api import portal_client

pytestmark = pytest.mark.django_db
DAY = 86_400


def test_usage_by_route_reaches_past_the_minute_rollups_retention() -> None:
    tenant = TenantFactory(plan_slug="enterprise")
    key, route = ApiKeyFactory(tenant=tenant), RouteFactory(tenant=tenant, slug="orders")
    now = time.time()
    ingest_records([record(tenant_id=tenant.pk, api_key_id=key.pk, route_id=route.pk, ts=now - 12 * DAY, cache="HIT"),
                    record(tenant_id=tenant.pk, api_key_id=key.pk, route_id=route.pk, ts=now - 3 * DAY, cache="HIT"),
                    record(tenant_id=tenant.pk, api_key_id=key.pk, route_id=route.pk, ts=now, cache="MISS")])
    assert analytics_prune().minute_rollups == 1  # the 12-day-old record's minute is gone
    owner = portal_client(tenant)

    month = owner.get("/portal/usage", {"days": 30}).json()
    week = owner.get("/portal/usage", {"days": 7}).json()

    assert [(item["route_name"], item["request_count"]) for item in month["by_route"]["items"]] == [("orders", 3)]
    assert (month["cache"]["hits"], month["cache"]["misses"]) == (2, 1)
    assert month["by_route"]["period_start"].endswith(":00:00+00:00")  # whole hours
    assert [(item["route_name"], item["request_count"]) for item in week["by_route"]["items"]] == [("orders", 2)]
    assert (week["cache"]["hits"], week["cache"]["misses"]) == (1, 1)
