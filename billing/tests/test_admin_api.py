"""/admin/api/plans and /admin/api/subscriptions."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from billing.models import Plan
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_the_seeded_plans_are_listed_cheapest_first(admin_api: APIClient) -> None:
    slugs = [plan["slug"] for plan in admin_api.get("/admin/api/plans", {"ordering": "price_monthly"}).json()["items"]]
    assert slugs[:3] == ["free", "pro", "enterprise"]


def test_creating_and_patching_a_plan(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/plans", {"name": "Team", "slug": "team", "rps": 20, "burst": 40,
                                                   "quota_daily": 50_000, "max_keys": 10, "price_monthly": "49.00"},
                              format="json")
    assert response.status_code == 201, response.json()
    patched = admin_api.patch(f"/admin/api/plans/{response.json()['id']}", {"rps": 25}, format="json")
    assert patched.status_code == 200 and Plan.objects.get(slug="team").rps == 25


@pytest.mark.parametrize("field,value", [("rps", 0), ("burst", 0), ("algorithm", "fastest"), ("price_monthly", "x")])
def test_a_bad_plan_is_a_field_error(admin_api: APIClient, field: str, value: object) -> None:
    body = {"name": "Bad", "slug": "bad", "rps": 1, "burst": 1, field: value}
    response = admin_api.post("/admin/api/plans", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]


def test_a_plan_in_use_cannot_be_deleted(admin_api: APIClient) -> None:
    TenantFactory(plan_slug="pro")
    pro = Plan.objects.get(slug="pro")
    response = admin_api.delete(f"/admin/api/plans/{pro.pk}")
    assert response.status_code == 409 and response.json()["error"] == "conflict"
    assert Plan.objects.filter(pk=pro.pk).exists()


def test_changing_a_subscriptions_plan_changes_the_tenants(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    pro = Plan.objects.get(slug="pro")
    subscription = admin_api.get("/admin/api/subscriptions", {"tenant_id": tenant.pk}).json()["items"][0]
    response = admin_api.patch(f"/admin/api/subscriptions/{subscription['id']}",
                               {"plan_id": pro.pk, "status": "past_due"}, format="json")
    assert response.status_code == 200
    tenant.refresh_from_db()
    assert (tenant.plan, tenant.subscription.status, response.json()["plan_id"]) == (pro, "past_due", pro.pk)


def test_a_second_subscription_for_a_tenant_is_refused(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    response = admin_api.post("/admin/api/subscriptions", {
        "tenant_id": tenant.pk, "plan_id": tenant.plan_id, "current_period_start": "2026-01-01T00:00:00Z",
        "current_period_end": "2026-02-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and "tenant" in response.json()["fields"]


def test_a_period_that_ends_before_it_starts_is_refused(admin_api: APIClient) -> None:
    subscription = TenantFactory().subscription
    response = admin_api.patch(f"/admin/api/subscriptions/{subscription.pk}",
                               {"current_period_end": "2000-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and response.json()["error"] == "validation_error"


@pytest.mark.parametrize("resource", ["plans", "subscriptions"])
def test_list_query_count_is_fixed(admin_api: APIClient, django_assert_num_queries: object, resource: str) -> None:
    for _ in range(4):
        TenantFactory()
    # 1 COUNT(*) for the page, 1 SELECT of the rows (related ids read from the row itself).
    with django_assert_num_queries(2):  # type: ignore[operator]
        assert admin_api.get(f"/admin/api/{resource}").json()["total"] >= 3
