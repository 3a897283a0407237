"""/portal/…: a customer's own tenant, keys, routes, usage, plans and subscription — what each
role may do, what another tenant's objects look like (absent), and every write audited."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from analytics.ingest import ingest_records
from analytics.tests.test_ingest import record
from billing.models import Plan
from gateway.models import Route
from tenants.models import ApiKey, AuditEntry, Membership, Tenant
from tenants.services import api_key_issue
from tenants.tests.factories import ApiKeyFactory, RouteFactory, TenantFactory

pytestmark = pytest.mark.django_db

OWNER, ADMIN, MEMBER = Membership.Role.OWNER, Membership.Role.ADMIN, Membership.Role.MEMBER
PUBLIC_UPSTREAM = "https://api.example.com/v1"
_usernames = itertools.count()


def portal_client(tenant: Tenant | None, role: str = OWNER) -> APIClient:
    """A client signed in (a Bearer access token) as a new user with `role` in `tenant`."""
    user = get_user_model().objects.create_user(username=f"user{next(_usernames)}@example.com")
    if tenant is not None:
        Membership.objects.create(user=user, tenant=tenant, role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    client.user = user  # type: ignore[attr-defined]
    return client


def row(model: type[Any], pk: int) -> dict[str, Any]:
    return model.objects.filter(pk=pk).values().get()


@pytest.fixture
def tenant() -> Tenant:
    return TenantFactory(name="Acme", plan_slug="pro")


@pytest.fixture
def owner(tenant: Tenant) -> APIClient:
    return portal_client(tenant, OWNER)


@pytest.fixture
def other() -> Tenant:
    return TenantFactory(name="Globex", plan_slug="pro")


# --- credentials --------------------------------------------------------------------------

PORTAL_READS = ["/portal/tenant", "/portal/keys", "/portal/routes", "/portal/plans", "/portal/usage",
                "/portal/subscription"]


@pytest.mark.parametrize("path", PORTAL_READS)
def test_no_token_is_401_unauthorized(path: str) -> None:
    response = APIClient().get(path)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.json()["message"].startswith("A valid access token is required")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PORTAL_READS)
def test_an_admin_key_does_not_open_the_portal(path: str, settings: Any) -> None:
    settings.ADMIN_API_KEYS = ["portal-test-admin-key-0123"]
    response = APIClient().get(path, HTTP_X_ADMIN_KEY="portal-test-admin-key-0123")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_an_account_without_a_tenant_is_forbidden() -> None:
    response = portal_client(None).get("/portal/keys")
    assert response.status_code == 403
    assert response.json() | {"request_id": ""} == {
        "error": "forbidden", "message": "This account belongs to no tenant.", "request_id": ""}


# --- the tenant ---------------------------------------------------------------------------

def test_get_tenant_shows_the_callers_tenant_and_its_plan(tenant: Tenant, owner: APIClient, other: Tenant) -> None:
    body = owner.get("/portal/tenant").json()
    plan = tenant.plan
    assert body == {"id": tenant.pk, "name": "Acme", "slug": "acme", "description": "", "status": "active",
                    "plan": {"id": plan.pk, "slug": "pro", "name": "Pro"}, "created_at": body["created_at"]}


def test_patch_tenant_changes_its_name_and_description(tenant: Tenant, owner: APIClient) -> None:
    response = owner.patch("/portal/tenant", {"name": "Acme Ltd", "description": "Anvils"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"]) == ("Acme Ltd", "Anvils")
    tenant.refresh_from_db()
    assert (tenant.name, tenant.description, tenant.slug) == ("Acme Ltd", "Anvils", "acme")


def test_patch_tenant_ignores_plan_status_slug_and_credits(tenant: Tenant, owner: APIClient) -> None:
    enterprise = Plan.objects.get(slug="enterprise")
    response = owner.patch("/portal/tenant", {
        "name": "Acme Two", "plan": enterprise.pk, "plan_id": enterprise.pk, "status": "suspended",
        "slug": "hijack", "credits": 1_000_000, "tenant_id": 999, "is_active": False}, format="json")
    assert response.status_code == 200
    tenant.refresh_from_db()
    assert (tenant.name, tenant.plan.slug, tenant.status, tenant.slug) == ("Acme Two", "pro", "active", "acme")
    assert tenant.subscription.plan.slug == "pro"
    assert "credits" not in response.json()


def test_a_taken_tenant_name_is_a_field_error(owner: APIClient, other: Tenant) -> None:
    response = owner.patch("/portal/tenant", {"name": "Globex"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and "name" in response.json()["fields"]


@pytest.mark.parametrize("role", [ADMIN, MEMBER])
def test_a_member_reads_the_tenant_and_an_admin_edits_it(tenant: Tenant, role: str) -> None:
    client = portal_client(tenant, role)
    assert client.get("/portal/tenant").status_code == 200
    response = client.patch("/portal/tenant", {"description": "changed"}, format="json")
    assert response.status_code == (200 if role == ADMIN else 403)
    tenant.refresh_from_db()
    assert tenant.description == ("changed" if role == ADMIN else "")


def test_tenant_query_count_is_fixed(owner: APIClient, django_assert_num_queries: Any) -> None:
    # 1 the user (JWT auth), 1 the membership with its tenant and plan (IsTenantMember).
    with django_assert_num_queries(2):
        assert owner.get("/portal/tenant").status_code == 200


# --- keys ---------------------------------------------------------------------------------

def test_create_key_returns_the_secret_once(tenant: Tenant, owner: APIClient) -> None:
    response = owner.post("/portal/keys", {"name": "ci", "environment": "test"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["key"] and body["key"].startswith(body["key_prefix"]) and body["key"].endswith(body["last4"])
    assert (body["tenant_id"], body["name"], body["environment"], body["status"]) == (tenant.pk, "ci", "test", "active")
    again = owner.get(f"/portal/keys/{body['id']}").json()
    assert "key" not in again and again["id"] == body["id"]
    assert all("key" not in item for item in owner.get("/portal/keys").json()["items"])


@pytest.mark.parametrize("field", ["tenant_id", "tenant"])
def test_create_key_ignores_a_tenant_in_the_body(tenant: Tenant, owner: APIClient, other: Tenant,
                                                 field: str) -> None:
    response = owner.post("/portal/keys", {"name": "sneaky", field: other.pk}, format="json")
    assert response.status_code == 201 and response.json()["tenant_id"] == tenant.pk
    assert ApiKey.objects.get(pk=response.json()["id"]).tenant == tenant
    assert not other.api_keys.exists()


def test_the_free_plans_key_cap_is_a_validation_error() -> None:
    free = TenantFactory(plan_slug="free")
    ApiKeyFactory.create_batch(2, tenant=free)
    response = portal_client(free).post("/portal/keys", {"name": "third"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["fields"] == {"tenant": [f"The Free plan allows 2 active keys; {free.name} has 2."]}
    assert free.api_keys.count() == 2


def test_list_keys_shows_only_the_callers_keys(tenant: Tenant, owner: APIClient, other: Tenant) -> None:
    mine = ApiKeyFactory(tenant=tenant, name="mine")
    ApiKeyFactory(tenant=other, name="theirs")
    body = owner.get("/portal/keys").json()
    assert (body["total"], [item["id"] for item in body["items"]]) == (1, [mine.pk])


def test_keys_filter_by_status_and_environment(tenant: Tenant, owner: APIClient) -> None:
    live = ApiKeyFactory(tenant=tenant, name="live")
    test = ApiKeyFactory(tenant=tenant, name="test", environment="test")
    revoked = ApiKeyFactory(tenant=tenant, name="revoked")
    ApiKey.objects.filter(pk=revoked.pk).update(status=ApiKey.Status.REVOKED)
    lapsed = ApiKeyFactory(tenant=tenant, name="lapsed")
    ApiKey.objects.filter(pk=lapsed.pk).update(grace_until=timezone.now() - dt.timedelta(minutes=1))

    def ids(**params: str) -> set[int]:
        return {item["id"] for item in owner.get("/portal/keys", params).json()["items"]}

    assert ids(environment="test") == {test.pk}
    assert ids(status="active") == {live.pk, test.pk}
    assert ids(status="revoked") == {revoked.pk}
    assert ids(status="expired") == {lapsed.pk}  # as it is shown: a rotated-out key past its grace


def test_an_unknown_status_filter_is_a_validation_error(owner: APIClient) -> None:
    response = owner.get("/portal/keys", {"status": "sideways"})
    assert response.status_code == 400 and "status" in response.json()["fields"]


def test_patch_key_renames_it_and_tightens_its_limits(tenant: Tenant, owner: APIClient) -> None:
    key = ApiKeyFactory(tenant=tenant)
    response = owner.patch(f"/portal/keys/{key.pk}", {"name": "renamed", "quota_daily": 100,
                                                      "rate_limit_rps": 5}, format="json")
    assert response.status_code == 200
    key.refresh_from_db()
    assert (key.name, key.quota_daily, key.rate_limit_rps) == ("renamed", 100, 5)


@pytest.mark.parametrize(("field", "value"), [("quota_daily", 0), ("quota_daily", 50_001), ("quota_monthly", 0),
                                              ("rate_limit_rps", 101), ("rate_limit_burst", 201)])
def test_a_key_cannot_get_limits_looser_than_the_plan(tenant: Tenant, owner: APIClient, field: str,
                                                      value: int) -> None:
    key = ApiKeyFactory(tenant=tenant)
    before = row(ApiKey, key.pk)
    response = owner.patch(f"/portal/keys/{key.pk}", {field: value}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field] and "Pro plan allows" in response.json()["fields"][field][0]
    assert row(ApiKey, key.pk) == before
    created = owner.post("/portal/keys", {"name": "loose", field: value}, format="json")
    assert created.status_code == 400 and field in created.json()["fields"]


def test_delete_key_revokes_it_and_keeps_the_row(tenant: Tenant, owner: APIClient) -> None:
    key = ApiKeyFactory(tenant=tenant)
    assert owner.delete(f"/portal/keys/{key.pk}").status_code == 204
    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED and key.revoked_at is not None
    assert owner.get(f"/portal/keys/{key.pk}").json()["status"] == "revoked"


def test_rotate_returns_a_new_secret_once_and_keeps_the_old_key_until_the_grace(tenant: Tenant,
                                                                                owner: APIClient) -> None:
    old = ApiKeyFactory(tenant=tenant, name="prod")
    started = timezone.now()
    response = owner.post(f"/portal/keys/{old.pk}/rotate", {"grace_seconds": 3600}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["key"] and body["rotated_from_id"] == old.pk and body["name"] == "prod"
    assert body["tenant_id"] == tenant.pk
    old.refresh_from_db()
    assert started + dt.timedelta(seconds=3600) <= old.grace_until <= timezone.now() + dt.timedelta(seconds=3600)
    assert old.is_usable() and not old.is_usable(old.grace_until + dt.timedelta(seconds=1))
    assert owner.get(f"/portal/keys/{old.pk}").json()["status"] == "active"
    assert "key" not in owner.get(f"/portal/keys/{body['id']}").json()


def test_rotating_a_revoked_key_is_a_validation_error(tenant: Tenant, owner: APIClient) -> None:
    key = ApiKeyFactory(tenant=tenant)
    owner.delete(f"/portal/keys/{key.pk}")
    response = owner.post(f"/portal/keys/{key.pk}/rotate", {}, format="json")
    assert response.status_code == 400 and "status" in response.json()["fields"]


KEY_WRITES = [("patch", "", {"name": "mine now", "quota_daily": 1}), ("delete", "", None),
              ("post", "/rotate", {"grace_seconds": 0})]


@pytest.mark.parametrize(("method", "suffix", "payload"), [("get", "", None), *KEY_WRITES])
def test_another_tenants_key_is_404_and_unchanged(owner: APIClient, other: Tenant, method: str, suffix: str,
                                                  payload: dict | None) -> None:
    theirs = ApiKeyFactory(tenant=other, name="theirs")
    before = row(ApiKey, theirs.pk)
    response = getattr(owner, method)(f"/portal/keys/{theirs.pk}{suffix}", payload, format="json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert row(ApiKey, theirs.pk) == before
    assert other.api_keys.count() == 1


@pytest.mark.parametrize(("method", "suffix", "payload"), [("post", "", {"name": "new"}), *KEY_WRITES])
def test_a_member_reads_keys_but_cannot_write_them(tenant: Tenant, method: str, suffix: str,
                                                   payload: dict | None) -> None:
    key = ApiKeyFactory(tenant=tenant)
    member = portal_client(tenant, MEMBER)
    assert member.get("/portal/keys").json()["total"] == 1
    assert member.get(f"/portal/keys/{key.pk}").status_code == 200
    before = row(ApiKey, key.pk)
    path = "/portal/keys" if method == "post" and not suffix else f"/portal/keys/{key.pk}{suffix}"
    response = getattr(member, method)(path, payload, format="json")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert row(ApiKey, key.pk) == before and tenant.api_keys.count() == 1


def test_an_admin_manages_keys(tenant: Tenant) -> None:
    admin = portal_client(tenant, ADMIN)
    created = admin.post("/portal/keys", {"name": "by admin"}, format="json")
    assert created.status_code == 201
    assert admin.post(f"/portal/keys/{created.json()['id']}/rotate", {}, format="json").status_code == 201


def test_key_list_query_count_is_fixed(tenant: Tenant, owner: APIClient, django_assert_num_queries: Any) -> None:
    for n in range(5):
        old = ApiKeyFactory(tenant=tenant, name=f"k{n}")
        api_key_issue(tenant=tenant, name=f"k{n}b")
        ApiKey.objects.filter(pk=old.pk).update(status=ApiKey.Status.REVOKED)
    # 1 the user (JWT auth), 1 the membership with its tenant and plan (IsTenantMember),
    # 1 COUNT(*) for the page, 1 SELECT of the page: tenant_id and rotated_from_id need no join.
    with django_assert_num_queries(4):
        assert owner.get("/portal/keys").json()["total"] == 10


# --- routes -------------------------------------------------------------------------------

def test_list_routes_shows_own_and_shared_ones_flagged(tenant: Tenant, owner: APIClient, other: Tenant) -> None:
    mine = RouteFactory(tenant=tenant, slug="mine")
    shared = RouteFactory(tenant=None, slug="shared")
    RouteFactory(tenant=other, slug="theirs")
    items = owner.get("/portal/routes").json()["items"]
    assert {(item["id"], item["shared"], item["tenant_id"]) for item in items} == {
        (mine.pk, False, tenant.pk), (shared.pk, True, None)}
    only_shared = owner.get("/portal/routes", {"shared": "true"}).json()["items"]
    assert [item["id"] for item in only_shared] == [shared.pk]


def test_create_route_lands_in_the_callers_tenant(tenant: Tenant, owner: APIClient, other: Tenant) -> None:
    response = owner.post("/portal/routes", {"name": "Billing API", "upstream_base_url": PUBLIC_UPSTREAM,
                                             "tenant_id": other.pk, "tenant": other.pk}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["slug"], body["tenant_id"], body["shared"], body["upstream_base_url"]) == (
        "billing-api", tenant.pk, False, PUBLIC_UPSTREAM)
    assert Route.objects.get(pk=body["id"]).tenant == tenant and not other.routes.exists()


def test_patch_route_changes_it(tenant: Tenant, owner: APIClient) -> None:
    route = RouteFactory(tenant=tenant)
    response = owner.patch(f"/portal/routes/{route.pk}", {"timeout_ms": 5000, "rate_limit_rps": 50,
                                                         "rate_limit_burst": 100}, format="json")
    assert response.status_code == 200
    route.refresh_from_db()
    assert (route.timeout_ms, route.rate_limit_rps, route.rate_limit_burst) == (5000, 50, 100)


def test_delete_route_removes_it(tenant: Tenant, owner: APIClient) -> None:
    route = RouteFactory(tenant=tenant)
    assert owner.delete(f"/portal/routes/{route.pk}").status_code == 204
    assert not Route.objects.filter(pk=route.pk).exists()


def test_a_shared_route_is_readable(owner: APIClient) -> None:
    shared = RouteFactory(tenant=None, slug="shared")
    response = owner.get(f"/portal/routes/{shared.pk}")
    assert response.status_code == 200 and response.json()["shared"] is True


ROUTE_WRITES = [("patch", {"upstream_base_url": PUBLIC_UPSTREAM, "is_active": False}), ("delete", None)]


@pytest.mark.parametrize(("method", "payload"), ROUTE_WRITES)
def test_a_shared_route_cannot_be_changed_or_deleted(owner: APIClient, method: str, payload: dict | None) -> None:
    shared = RouteFactory(tenant=None, slug="shared")
    before = row(Route, shared.pk)
    response = getattr(owner, method)(f"/portal/routes/{shared.pk}", payload, format="json")
    assert response.status_code == 404
    assert row(Route, shared.pk) == before


@pytest.mark.parametrize(("method", "payload"), [("get", None), *ROUTE_WRITES])
def test_another_tenants_route_is_404_and_unchanged(owner: APIClient, other: Tenant, method: str,
                                                    payload: dict | None) -> None:
    theirs = RouteFactory(tenant=other, slug="theirs")
    before = row(Route, theirs.pk)
    response = getattr(owner, method)(f"/portal/routes/{theirs.pk}", payload, format="json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert row(Route, theirs.pk) == before


@pytest.mark.parametrize(("method", "payload"), [("post", {"slug": "new", "upstream_base_url": PUBLIC_UPSTREAM}),
                                                 *ROUTE_WRITES])
def test_a_member_reads_routes_but_cannot_write_them(tenant: Tenant, method: str, payload: dict | None) -> None:
    route = RouteFactory(tenant=tenant)
    member = portal_client(tenant, MEMBER)
    assert member.get(f"/portal/routes/{route.pk}").status_code == 200
    before = row(Route, route.pk)
    path = "/portal/routes" if method == "post" else f"/portal/routes/{route.pk}"
    response = getattr(member, method)(path, payload, format="json")
    assert response.status_code == 403
    assert row(Route, route.pk) == before and tenant.routes.count() == 1


def test_the_free_plans_route_cap_is_a_validation_error() -> None:
    free = TenantFactory(plan_slug="free")
    RouteFactory.create_batch(5, tenant=free)
    response = portal_client(free).post("/portal/routes", {"slug": "sixth", "upstream_base_url": PUBLIC_UPSTREAM},
                                        format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert response.json()["fields"] == {"tenant": [f"The Free plan allows 5 routes; {free.name} has 5."]}
    assert free.routes.count() == 5


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://2852039166/latest", "http://[fd00:ec2::254]/",
                                 "http://metadata.google.internal/"])
def test_a_metadata_upstream_url_is_refused(owner: APIClient, tenant: Tenant, url: str) -> None:
    response = owner.post("/portal/routes", {"slug": "ssrf", "upstream_base_url": url}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and "upstream_base_url" in response.json()["fields"]
    assert not tenant.routes.exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/admin/", "http://localhost:6379/", "http://10.0.0.5/",
                                 "http://[::1]/", "http://192.168.1.1/"])
def test_a_loopback_or_private_upstream_url_is_refused_in_the_portal(owner: APIClient, tenant: Tenant,
                                                                     url: str) -> None:
    response = owner.post("/portal/routes", {"slug": "inside", "upstream_base_url": url}, format="json")
    assert response.status_code == 400 and "upstream_base_url" in response.json()["fields"]
    targets = owner.post("/portal/routes", {"slug": "inside", "upstream_targets": [{"url": url, "weight": 1}]},
                         format="json")
    assert targets.status_code == 400 and "upstream_targets" in targets.json()["fields"]
    assert not tenant.routes.exists()


def test_moving_an_own_route_to_a_private_upstream_is_refused(tenant: Tenant, owner: APIClient) -> None:
    route = RouteFactory(tenant=tenant, upstream_url=PUBLIC_UPSTREAM)
    response = owner.patch(f"/portal/routes/{route.pk}", {"upstream_base_url": "http://10.1.2.3/"}, format="json")
    assert response.status_code == 400 and "upstream_base_url" in response.json()["fields"]
    route.refresh_from_db()
    assert route.upstream_targets == [{"url": PUBLIC_UPSTREAM, "weight": 1}]


def test_a_route_rate_limit_above_the_plan_is_refused(tenant: Tenant, owner: APIClient) -> None:
    response = owner.post("/portal/routes", {"slug": "fast", "upstream_base_url": PUBLIC_UPSTREAM,
                                             "rate_limit_rps": 10_000, "rate_limit_burst": 10_000}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"rate_limit_rps", "rate_limit_burst"}


def test_route_list_query_count_is_fixed(tenant: Tenant, owner: APIClient, other: Tenant,
                                         django_assert_num_queries: Any) -> None:
    for n in range(4):
        RouteFactory(tenant=tenant, slug=f"own-{n}")
        RouteFactory(tenant=None, slug=f"shared-{n}")
        RouteFactory(tenant=other, slug=f"theirs-{n}")
    # 1 the user (JWT auth), 1 the membership with its tenant and plan (IsTenantMember),
    # 1 COUNT(*) for the page, 1 SELECT of the page: tenant_id and policy_id need no join.
    with django_assert_num_queries(4):
        assert owner.get("/portal/routes").json()["total"] == 8


# --- plans --------------------------------------------------------------------------------

def test_plans_lists_the_public_plans_only(owner: APIClient) -> None:
    Plan.objects.create(name="Secret deal", slug="secret", rps=5000, burst=5000, is_public=False)
    items = owner.get("/portal/plans").json()["items"]
    assert [item["slug"] for item in items] == ["free", "pro", "enterprise"]
    assert all("exempt_from_auto_block" not in item for item in items)
    assert items[0]["max_keys"] == 2 and items[0]["quota_daily"] == 1000


def test_plan_list_query_count_is_fixed(owner: APIClient, django_assert_num_queries: Any) -> None:
    # 1 the user (JWT auth), 1 the membership (IsTenantMember), 1 COUNT(*), 1 SELECT of the page.
    with django_assert_num_queries(4):
        assert owner.get("/portal/plans").status_code == 200


# --- the subscription ---------------------------------------------------------------------

def test_get_subscription_shows_plan_status_and_period(tenant: Tenant) -> None:
    subscription = tenant.subscription
    body = portal_client(tenant, MEMBER).get("/portal/subscription").json()
    assert body["id"] == subscription.pk
    assert body["plan"] == {"id": tenant.plan.pk, "slug": "pro", "name": "Pro"}
    assert (body["status"], body["trial_ends_at"]) == ("active", None)
    assert body["current_period_start"] and body["current_period_end"] > body["current_period_start"]


def test_the_owner_changes_the_plan(tenant: Tenant, owner: APIClient) -> None:
    enterprise = Plan.objects.get(slug="enterprise")
    response = owner.post("/portal/subscription", {"plan_id": enterprise.pk}, format="json")
    assert response.status_code == 200 and response.json()["plan"]["slug"] == "enterprise"
    tenant.refresh_from_db()
    assert tenant.plan == enterprise and tenant.subscription.plan == enterprise
    assert owner.get("/portal/tenant").json()["plan"]["slug"] == "enterprise"


@pytest.mark.parametrize("role", [ADMIN, MEMBER])
def test_only_the_owner_changes_the_plan(tenant: Tenant, role: str) -> None:
    response = portal_client(tenant, role).post("/portal/subscription",
                                                {"plan_id": Plan.objects.get(slug="enterprise").pk}, format="json")
    assert response.status_code == 403
    tenant.refresh_from_db()
    assert tenant.plan.slug == "pro"


@pytest.mark.parametrize("plan_id", ["hidden", 999_999, None])
def test_a_hidden_or_unknown_plan_is_a_field_error(tenant: Tenant, owner: APIClient, plan_id: Any) -> None:
    if plan_id == "hidden":
        plan_id = Plan.objects.create(name="Secret deal", slug="secret", rps=5000, burst=5000, is_public=False).pk
    response = owner.post("/portal/subscription", {"plan_id": plan_id}, format="json")
    assert response.status_code == 400 and list(response.json()["fields"]) == ["plan_id"]
    tenant.refresh_from_db()
    assert tenant.plan.slug == "pro"


def test_a_downgrade_with_more_keys_than_the_plan_allows_is_refused(tenant: Tenant, owner: APIClient) -> None:
    ApiKeyFactory.create_batch(3, tenant=tenant)
    response = owner.post("/portal/subscription", {"plan_id": Plan.objects.get(slug="free").pk}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["plan_id"] == [
        "The Free plan allows 2 active keys; Acme has 3. Remove some first."]
    tenant.refresh_from_db()
    assert tenant.plan.slug == "pro" and tenant.subscription.plan.slug == "pro"


def test_a_downgrade_with_more_routes_than_the_plan_allows_is_refused(tenant: Tenant, owner: APIClient) -> None:
    RouteFactory.create_batch(6, tenant=tenant)
    response = owner.post("/portal/subscription", {"plan_id": Plan.objects.get(slug="free").pk}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["plan_id"] == ["The Free plan allows 5 routes; Acme has 6. Remove some first."]


def test_a_downgrade_keeping_a_limit_above_the_new_plan_is_refused(tenant: Tenant, owner: APIClient) -> None:
    ApiKeyFactory(tenant=tenant, name="bulk", quota_daily=40_000)
    response = owner.post("/portal/subscription", {"plan_id": Plan.objects.get(slug="free").pk}, format="json")
    assert response.status_code == 400
    (message,) = response.json()["fields"]["plan_id"]
    assert message.startswith("Key 'bulk': quota_daily is above the plan's.")


def test_a_downgrade_that_fits_goes_through(tenant: Tenant, owner: APIClient) -> None:
    ApiKeyFactory.create_batch(2, tenant=tenant)
    revoked = ApiKeyFactory(tenant=tenant)
    ApiKey.objects.filter(pk=revoked.pk).update(status=ApiKey.Status.REVOKED)  # holds no slot
    response = owner.post("/portal/subscription", {"plan_id": Plan.objects.get(slug="free").pk}, format="json")
    assert response.status_code == 200 and response.json()["plan"]["slug"] == "free"


# --- usage --------------------------------------------------------------------------------

@pytest.fixture
def traffic(other: Tenant) -> dict[str, Any]:
    """Today's traffic of an unmetered tenant (so usage comes from the rollups), and another's."""
    tenant = TenantFactory(name="Initech", plan_slug="enterprise")
    first, second = ApiKeyFactory(tenant=tenant, name="first"), ApiKeyFactory(tenant=tenant, name="second")
    own, shared = RouteFactory(tenant=tenant, slug="own"), RouteFactory(tenant=None, slug="shared")
    now = time.time()

    def hit(key: ApiKey, route: Route, **fields: Any) -> dict[str, Any]:
        return record(tenant_id=tenant.pk, api_key_id=key.pk, route_id=route.pk, ts=now, **fields)

    theirs = ApiKeyFactory(tenant=other)
    ingest_records(
        [hit(first, own, cache="HIT") for _ in range(3)]
        + [hit(first, own, cache="MISS"), hit(first, shared, cache="MISS", status=502, error="upstream_error")]
        + [hit(second, own) for _ in range(2)]
        + [hit(second, own, status=429, error="rate_limited")]
        + [record(tenant_id=other.pk, api_key_id=theirs.pk, route_id=shared.pk, ts=now, cache="HIT")
           for _ in range(4)])
    return {"tenant": tenant, "keys": (first, second), "routes": (own, shared)}


def test_usage_matches_the_tenants_traffic(traffic: dict[str, Any]) -> None:
    (first, second), (own, shared) = traffic["keys"], traffic["routes"]
    body = portal_client(traffic["tenant"], MEMBER).get("/portal/usage").json()
    assert (body["tenant_id"], body["plan"], body["days"]) == (traffic["tenant"].pk, "enterprise", 30)
    assert body["today"] == body["this_month"] == {"requests": 7}  # the 429 was not admitted
    by_key = {entry["api_key_id"]: entry for entry in body["keys"]}
    assert by_key[first.pk]["today"] == {"requests": 5, "quota": None, "remaining": None}
    assert by_key[second.pk]["this_month"] == {"requests": 2, "quota": None, "remaining": None}
    assert [(day["requests"], day["errors"]) for day in body["by_day"]] == [(8, 2)]
    assert [(item["route_id"], item["route_name"], item["request_count"]) for item in body["by_route"]["items"]] == [
        (own.pk, "own", 7), (shared.pk, "shared", 1)]
    assert body["by_route"]["total_requests"] == 8
    cache = body["cache"]
    assert (cache["hits"], cache["misses"], cache["stale_hits"], cache["overall_hit_rate"]) == (3, 2, 0, 0.6)


def test_usage_of_a_tenant_without_traffic_is_zeros(owner: APIClient, traffic: dict[str, Any]) -> None:
    body = owner.get("/portal/usage", {"days": 7}).json()
    assert body["today"] == {"requests": 0} and body["keys"] == [] and body["by_day"] == []
    assert body["by_route"]["items"] == [] and body["cache"]["hits"] == 0 and body["days"] == 7


@pytest.mark.parametrize("days", ["0", "91", "many"])
def test_usage_days_out_of_range_is_a_validation_error(owner: APIClient, days: str) -> None:
    response = owner.get("/portal/usage", {"days": days})
    assert response.status_code == 400 and list(response.json()["fields"]) == ["days"]


def test_usage_query_count_is_fixed(traffic: dict[str, Any], django_assert_num_queries: Any) -> None:
    client = portal_client(traffic["tenant"])
    # 1 the user (JWT auth), 1 the membership with its tenant and plan (IsTenantMember),
    # tenant_usage: 1 the keys, 1 today's hour rollups, 1 this month's day rollups, 1 the day
    # rollups by day; top routes: 1 the minute rollups, 1 the routes' slugs; cache hit rate:
    # 1 the minute rollups, 1 the routes' slugs.
    with django_assert_num_queries(10):
        assert client.get("/portal/usage").status_code == 200


# --- the audit log ------------------------------------------------------------------------

def _writes(tenant: Tenant) -> list[tuple[str, str, dict | None, str]]:
    key, route = ApiKeyFactory(tenant=tenant), RouteFactory(tenant=tenant)
    spare_key, spare_route = ApiKeyFactory(tenant=tenant), RouteFactory(tenant=tenant)
    enterprise = Plan.objects.get(slug="enterprise").pk
    return [
        ("patch", "/portal/tenant", {"description": "audited"}, "update"),
        ("post", "/portal/keys", {"name": "audited"}, "create"),
        ("patch", f"/portal/keys/{key.pk}", {"name": "audited"}, "update"),
        ("post", f"/portal/keys/{key.pk}/rotate", {}, "rotate"),
        ("delete", f"/portal/keys/{spare_key.pk}", None, "revoke"),
        ("post", "/portal/routes", {"slug": "audited", "upstream_base_url": PUBLIC_UPSTREAM}, "create"),
        ("patch", f"/portal/routes/{route.pk}", {"description": "audited"}, "update"),
        ("delete", f"/portal/routes/{spare_route.pk}", None, "delete"),
        ("post", "/portal/subscription", {"plan_id": enterprise}, "change_plan"),
    ]


def test_every_portal_write_is_audited_with_source_portal(tenant: Tenant, owner: APIClient) -> None:
    for method, path, payload, action in _writes(tenant):
        latest = AuditEntry.objects.order_by("-pk").first()
        response = getattr(owner, method)(path, payload, format="json")
        assert response.status_code in (200, 201, 204), (path, response.json())
        entries = AuditEntry.objects.filter(pk__gt=latest.pk if latest else 0)
        assert action in {entry.action for entry in entries}, path
        for entry in entries:
            assert (entry.source, entry.user, entry.tenant_id) == ("portal", owner.user, tenant.pk), path


def test_a_refused_write_leaves_no_audit_entry(owner: APIClient, other: Tenant) -> None:
    theirs = ApiKeyFactory(tenant=other)
    owner.delete(f"/portal/keys/{theirs.pk}")
    owner.post("/portal/routes", {"slug": "x", "upstream_base_url": "http://169.254.169.254/"}, format="json")
    assert not AuditEntry.objects.exists()


# --- the schema ---------------------------------------------------------------------------

def test_the_schema_describes_every_portal_operation_and_its_errors() -> None:
    schema = APIClient().get("/openapi.json").json()
    operations = {(path, method) for path, item in schema["paths"].items() if path.startswith("/portal/")
                  for method in item if method != "parameters"}
    assert operations == {
        ("/portal/tenant", "get"), ("/portal/tenant", "patch"),
        ("/portal/keys", "get"), ("/portal/keys", "post"), ("/portal/keys/{id}", "get"),
        ("/portal/keys/{id}", "patch"), ("/portal/keys/{id}", "delete"), ("/portal/keys/{id}/rotate", "post"),
        ("/portal/routes", "get"), ("/portal/routes", "post"), ("/portal/routes/{id}", "get"),
        ("/portal/routes/{id}", "patch"), ("/portal/routes/{id}", "delete"),
        ("/portal/plans", "get"), ("/portal/usage", "get"),
        ("/portal/subscription", "get"), ("/portal/subscription", "post")}
    for path, method in operations:
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"jwtAuth": []}], (path, method)
        assert {"401", "403"} <= set(operation["responses"]), (path, method)
    rotate = schema["paths"]["/portal/keys/{id}/rotate"]["post"]
    assert rotate["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/PortalApiKey")
    tenant_request = schema["components"]["schemas"]["PatchedPortalTenantRequest"]["properties"]
    assert set(tenant_request) == {"name", "description"}
