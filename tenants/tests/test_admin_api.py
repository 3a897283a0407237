"""/admin/api/tenants and /admin/api/keys: the original's shapes, our services behind them,
and every write in the audit log."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Plan
from gateway.services import route_create
from tenants.models import ApiKey, AuditEntry, Tenant
from tenants.services import api_key_issue, key_hash
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_creating_a_tenant_answers_201_in_the_original_shape(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/tenants", {"name": "Globex", "description": "Widgets"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert {"id", "name", "description", "is_active", "created_at", "updated_at", "api_key_count",
            "route_count"} <= set(body)
    assert (body["name"], body["slug"], body["is_active"], body["api_key_count"]) == ("Globex", "globex", True, 0)
    tenant = Tenant.objects.get(pk=body["id"])
    assert tenant.plan.slug == "free" and tenant.subscription.plan == tenant.plan  # made by tenant_create


def test_a_duplicate_tenant_name_is_a_field_error(admin_api: APIClient) -> None:
    TenantFactory(name="Globex")
    response = admin_api.post("/admin/api/tenants", {"name": "Globex"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error" and "name" in body["fields"] and body["request_id"]


def test_listing_tenants_counts_their_keys_and_routes(admin_api: APIClient) -> None:
    tenant = TenantFactory(name="Acme", plan_slug="pro")
    api_key_issue(tenant=tenant, name="a")
    api_key_issue(tenant=tenant, name="b")
    route_create(tenant=tenant, slug="r1", upstream_url="http://127.0.0.1:8001")
    TenantFactory(name="Zeta")
    body = admin_api.get("/admin/api/tenants").json()
    assert (body["total"], body["page"], body["has_more"]) == (2, 1, False)
    acme = next(item for item in body["items"] if item["name"] == "Acme")
    assert (acme["api_key_count"], acme["route_count"]) == (2, 1)


def test_tenant_list_query_count_is_fixed(admin_api: APIClient, django_assert_num_queries: object) -> None:
    for n in range(5):
        api_key_issue(tenant=TenantFactory(name=f"T{n}"), name="k")
    # 1 COUNT(*) for the page, 1 SELECT of tenants with their key and route counts annotated.
    with django_assert_num_queries(2):  # type: ignore[operator]
        assert admin_api.get("/admin/api/tenants").status_code == 200


def test_patching_a_tenant_suspends_it_and_changes_its_plan(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    pro = Plan.objects.get(slug="pro")
    response = admin_api.patch(f"/admin/api/tenants/{tenant.pk}", {"is_active": False, "plan_id": pro.pk,
                                                                   "description": "moved"}, format="json")
    assert response.status_code == 200
    assert (response.json()["is_active"], response.json()["status"]) == (False, "suspended")
    tenant.refresh_from_db()
    assert (tenant.status, tenant.plan, tenant.subscription.plan, tenant.description) == (
        "suspended", pro, pro, "moved")


def test_every_write_is_in_the_audit_log_with_before_and_after(admin_api: APIClient) -> None:
    tenant_id = admin_api.post("/admin/api/tenants", {"name": "Audited"}, format="json").json()["id"]
    admin_api.patch(f"/admin/api/tenants/{tenant_id}", {"description": "new"}, format="json")
    admin_api.delete(f"/admin/api/tenants/{tenant_id}")
    entries = list(AuditEntry.objects.filter(target_type="tenants.tenant", target_id=str(tenant_id))
                   .order_by("pk"))
    assert [e.action for e in entries] == ["create", "update", "delete"]
    assert all(e.actor.startswith("admin-key:") and e.source == "admin_api" for e in entries)
    assert entries[1].before["description"] == "" and entries[1].after["description"] == "new"
    assert entries[2].before["name"] == "Audited" and entries[2].after is None
    assert not Tenant.objects.filter(pk=tenant_id).exists()


def test_a_staff_session_is_the_actor_when_it_writes(client: object, admin_user: object) -> None:
    api = APIClient()
    api.force_login(admin_user)
    response = api.post("/admin/api/tenants", {"name": "By staff"}, format="json")
    assert response.status_code == 201
    entry = AuditEntry.objects.get(target_id=str(response.json()["id"]))
    assert (entry.actor, entry.user) == (admin_user.username, admin_user)


def test_creating_a_key_returns_its_secret_once(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    response = admin_api.post("/admin/api/keys", {"tenant_id": tenant.pk, "name": "live", "quota_daily": 1000,
                                                  "quota_monthly": 0, "rate_limit_rps": 5}, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = body["key"]
    assert ApiKey.objects.get(pk=body["id"]).key_hash == key_hash(secret)
    assert secret.startswith(body["key_prefix"])
    assert (body["status"], body["quota_daily"], body["quota_monthly"], body["rate_limit_rps"]) == (
        "active", 1000, 0, 5.0)
    again = admin_api.get(f"/admin/api/keys/{body['id']}").json()
    assert "key" not in again and secret not in str(again)
    entry = AuditEntry.objects.get(target_type="tenants.apikey", action="create")
    assert secret not in str(entry.after) and "key_hash" not in entry.after


def test_the_plans_key_cap_is_a_validation_error(admin_api: APIClient) -> None:
    tenant = TenantFactory()  # Free: a few keys at most
    cap = tenant.plan.max_keys
    for n in range(cap):
        api_key_issue(tenant=tenant, name=f"k{n}")
    response = admin_api.post("/admin/api/keys", {"tenant_id": tenant.pk, "name": "one too many"}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["tenant"] == [
        f"The Free plan allows {cap} active keys; {tenant.name} has {cap}."]


def test_keys_filter_by_tenant(admin_api: APIClient) -> None:
    a, b = TenantFactory(), TenantFactory()
    api_key_issue(tenant=a, name="a1")
    api_key_issue(tenant=b, name="b1")
    items = admin_api.get("/admin/api/keys", {"tenant_id": a.pk}).json()["items"]
    assert [item["name"] for item in items] == ["a1"]


def test_key_list_query_count_is_fixed(admin_api: APIClient, django_assert_num_queries: object) -> None:
    tenant = TenantFactory(plan_slug="pro")
    for n in range(6):
        api_key_issue(tenant=tenant, name=f"k{n}")
    # 1 COUNT(*) for the page, 1 SELECT of the keys (ids only for tenant and rotated_from).
    with django_assert_num_queries(2):  # type: ignore[operator]
        assert len(admin_api.get("/admin/api/keys").json()["items"]) == 6


def test_patching_a_key_changes_its_limits_but_never_its_tenant(admin_api: APIClient) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    ok = admin_api.patch(f"/admin/api/keys/{key.pk}", {"name": "renamed", "quota_daily": 5,
                                                       "ip_allowlist": ["10.0.0.0/8"]}, format="json")
    assert ok.status_code == 200 and (ok.json()["name"], ok.json()["quota_daily"]) == ("renamed", 5)
    moved = admin_api.patch(f"/admin/api/keys/{key.pk}", {"tenant_id": TenantFactory().pk}, format="json")
    assert moved.status_code == 400 and "tenant_id" in moved.json()["fields"]
    bad = admin_api.patch(f"/admin/api/keys/{key.pk}", {"ip_allowlist": ["not a network"]}, format="json")
    assert bad.status_code == 400 and "ip_allowlist" in bad.json()["fields"]
    key.refresh_from_db()
    assert (key.name, key.ip_allowlist) == ("renamed", ["10.0.0.0/8"])


def test_rotating_a_key_keeps_the_old_secret_valid_for_the_grace(admin_api: APIClient) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    before = timezone.now()
    response = admin_api.post(f"/admin/api/keys/{key.pk}/rotate", {"grace_seconds": 600}, format="json")
    assert response.status_code == 201
    new = response.json()
    assert new["id"] != key.pk and new["rotated_from_id"] == key.pk
    assert ApiKey.objects.get(pk=new["id"]).key_hash == key_hash(new["key"])
    key.refresh_from_db()
    assert key.is_usable() and key.grace_until is not None
    assert before + dt.timedelta(seconds=599) < key.grace_until <= timezone.now() + dt.timedelta(seconds=600)
    assert {e.action for e in AuditEntry.objects.filter(target_type="tenants.apikey")} == {"rotate", "create"}


def test_rotating_with_no_grace_revokes_the_old_key(admin_api: APIClient) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    assert admin_api.post(f"/admin/api/keys/{key.pk}/rotate", {"grace_seconds": 0}, format="json").status_code == 201
    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED


@pytest.mark.parametrize("grace", [-1, "soon", 10**9])
def test_a_bad_grace_is_a_validation_error(admin_api: APIClient, grace: object) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    response = admin_api.post(f"/admin/api/keys/{key.pk}/rotate", {"grace_seconds": grace}, format="json")
    assert response.status_code == 400 and "grace_seconds" in response.json()["fields"]
    assert not ApiKey.objects.filter(rotated_from=key).exists()


def test_rotating_a_revoked_key_is_a_validation_error(admin_api: APIClient) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    admin_api.delete(f"/admin/api/keys/{key.pk}")
    response = admin_api.post(f"/admin/api/keys/{key.pk}/rotate", {}, format="json")
    assert response.status_code == 400 and response.json()["fields"]["status"]


def test_deleting_a_key_revokes_it_and_keeps_its_row(admin_api: APIClient) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    assert admin_api.delete(f"/admin/api/keys/{key.pk}").status_code == 204
    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED and key.revoked_at is not None
    assert admin_api.get(f"/admin/api/keys/{key.pk}").json()["status"] == "revoked"
    entry = AuditEntry.objects.get(target_type="tenants.apikey", action="revoke")
    assert (entry.before["status"], entry.after["status"]) == ("active", "revoked")


def test_an_expired_key_reads_as_expired(admin_api: APIClient) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k",
                        expires_at=timezone.now() + dt.timedelta(seconds=1)).api_key
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert admin_api.get(f"/admin/api/keys/{key.pk}").json()["status"] == "expired"


def test_an_unknown_key_is_404_in_the_heliox_body(admin_api: APIClient) -> None:
    response = admin_api.get("/admin/api/keys/999999")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found" and response["X-Request-ID"] == response.json()["request_id"]
