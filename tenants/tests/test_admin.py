"""django-admin for tenants, memberships and keys: every page renders, a secret is shown once
and never stored or shown again, the hash is never shown, actions call the services, bad
input is a form error (never a 500)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.db import models
from django.test import Client
from django.utils import timezone

from abuse.models import AbuseScore
from abuse.services import block_create
from billing.models import Plan
from tenants.audit import audit_record
from tenants.models import ApiKey, AuditEntry, EmailVerification, Membership, Tenant
from tenants.services import IssuedKey, api_key_issue, tenant_create
from tenants.tests.factories import (
    ApiKeyFactory,
    TenantFactory,
    admin_url,
    assert_admin_pages_render,
    registered_models,
    staff_with_every_permission,
    stored_text,
)

pytestmark = pytest.mark.django_db

SECRET_OPEN, SECRET_CLOSE = '<code class="heliox-secret">', "</code>"


@pytest.fixture
def issued(admin_user: AbstractBaseUser) -> IssuedKey:
    tenant = tenant_create(name="Acme", plan=Plan.objects.get(slug="pro"))
    Membership.objects.create(user=admin_user, tenant=tenant, role=Membership.Role.OWNER)
    EmailVerification.objects.create(user=admin_user, code_hash="0" * 64, expires_at=timezone.now())
    audit_record(actor=admin_user, source=AuditEntry.Source.ADMIN_API, action="create", target=tenant,
                 after={"name": tenant.name}, tenant=tenant)
    return api_key_issue(tenant=tenant, name="Acme live", ip_allowlist=["10.0.0.0/8"])


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(staff_with_every_permission())
    return client


def _secrets_on(html: str) -> list[str]:
    return [part.split(SECRET_CLOSE)[0] for part in html.split(SECRET_OPEN)[1:]]


def _add_key(client: Client, tenant: Tenant, **extra: str) -> Any:
    data = {"tenant": tenant.pk, "name": "From admin", "environment": "live", "scopes": "[]",
            "allowed_routes": "[]", "ip_allowlist": "[]", **extra}
    return client.post(admin_url(ApiKey, "add"), data)


def _act(client: Client, model: type[models.Model], action: str, *objs: models.Model) -> Any:
    return client.post(admin_url(model, "changelist"), {"action": action, "_selected_action": [o.pk for o in objs]})


@pytest.mark.parametrize("model", registered_models("tenants"), ids=lambda m: m._meta.label)
def test_every_tenants_page_renders_for_a_superuser(admin_client: Client, issued: IssuedKey,
                                                    model: type[models.Model]) -> None:
    assert_admin_pages_render(admin_client, model)


@pytest.mark.parametrize("model", registered_models("tenants"), ids=lambda m: m._meta.label)
def test_every_tenants_page_renders_for_staff_with_every_permission(staff_client: Client, issued: IssuedKey,
                                                                    model: type[models.Model]) -> None:
    assert_admin_pages_render(staff_client, model)


def test_a_new_keys_secret_is_shown_once_and_stored_nowhere(admin_client: Client, issued: IssuedKey) -> None:
    response = _add_key(admin_client, issued.api_key.tenant)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [secret] = _secrets_on(response.content.decode())
    assert secret.startswith("hx_live_")
    key = ApiKey.objects.get(name="From admin")
    assert secret.endswith(key.last4)
    for url in (admin_url(ApiKey, "changelist"), admin_url(ApiKey, "change", key.pk),
                admin_url(ApiKey, "history", key.pk), admin_url(Tenant, "change", key.tenant_id)):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert secret not in page.content.decode()
    assert secret not in stored_text()


def test_staff_with_every_permission_can_issue_a_key(staff_client: Client, issued: IssuedKey) -> None:
    response = _add_key(staff_client, issued.api_key.tenant)

    assert response.status_code == 200
    assert len(_secrets_on(response.content.decode())) == 1
    assert ApiKey.objects.filter(name="From admin", tenant=issued.api_key.tenant).exists()


def test_the_key_hash_appears_on_no_admin_page(admin_client: Client, issued: IssuedKey) -> None:
    key = issued.api_key
    block_create(api_key=key, reason="manual", detail="test")
    rotated = _act(admin_client, ApiKey, "rotate", key)
    successor = ApiKey.objects.get(rotated_from=key)
    added = _add_key(admin_client, key.tenant)
    hashes = list(ApiKey.objects.values_list("key_hash", flat=True))
    pages = [rotated, added] + [admin_client.get(url) for url in (
        admin_url(ApiKey, "changelist"), admin_url(ApiKey, "changelist") + "?q=" + key.prefix,
        admin_url(ApiKey, "add"), admin_url(ApiKey, "change", key.pk), admin_url(ApiKey, "change", successor.pk),
        admin_url(ApiKey, "history", key.pk), admin_url(ApiKey, "delete", key.pk),
        admin_url(Tenant, "change", key.tenant_id), admin_url(Tenant, "delete", key.tenant_id),
    )]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert not [h for h in hashes if h in html]
    assert "key_hash" not in admin_client.get(admin_url(ApiKey, "change", key.pk)).context["adminform"].form.fields


def test_the_change_page_shows_prefix_and_last4_only(admin_client: Client, issued: IssuedKey) -> None:
    html = admin_client.get(admin_url(ApiKey, "change", issued.api_key.pk)).content.decode()

    assert issued.api_key.display in html
    assert issued.secret not in html


def test_editing_a_key_keeps_its_secret(admin_client: Client, issued: IssuedKey) -> None:
    key = issued.api_key
    response = admin_client.post(admin_url(ApiKey, "change", key.pk), {
        "name": "Renamed", "scopes": '["proxy:read"]', "allowed_routes": "[]", "ip_allowlist": '["192.0.2.0/24"]',
    })

    assert response.status_code == 302
    before = key.key_hash
    key.refresh_from_db()
    assert (key.name, key.scopes, key.ip_allowlist) == ("Renamed", ["proxy:read"], ["192.0.2.0/24"])
    assert key.key_hash == before


def test_the_plan_key_cap_is_a_form_error(admin_client: Client) -> None:
    tenant = tenant_create(name="Small Co", plan=Plan.objects.get(slug="free"))
    for _ in range(tenant.plan.max_keys):
        ApiKeyFactory(tenant=tenant)

    response = _add_key(admin_client, tenant)

    assert response.status_code == 200
    assert "allows 2 active keys" in response.context["adminform"].form.errors["tenant"][0]
    assert ApiKey.objects.filter(tenant=tenant).count() == 2


def test_a_revoked_key_frees_its_place_under_the_cap(admin_client: Client) -> None:
    tenant = TenantFactory(plan_slug="free")
    keys = [ApiKeyFactory(tenant=tenant) for _ in range(tenant.plan.max_keys)]
    _act(admin_client, ApiKey, "revoke", keys[0])

    response = _add_key(admin_client, tenant)

    assert response.status_code == 200
    assert len(_secrets_on(response.content.decode())) == 1


@pytest.mark.parametrize("field, value", [
    ("ip_allowlist", '["10.0.0.1/33"]'),
    ("ip_allowlist", '["not-an-address"]'),
    ("ip_allowlist", '"10.0.0.0/8"'),
    ("ip_allowlist", "[10.0.0.0/8"),  # not JSON at all
    ("scopes", '["admin"]'),
    ("allowed_routes", '["Not A Slug"]'),
    ("rate_limit_rps", "-1"),
    ("rate_limit_rps", "0"),
    ("rate_limit_burst", "0"),
    ("rate_limit_burst", "-3"),
    ("quota_daily", "-5"),
    ("quota_monthly", "-1"),
])
def test_bad_key_fields_are_form_errors(admin_client: Client, issued: IssuedKey, field: str, value: str) -> None:
    response = _add_key(admin_client, issued.api_key.tenant, **{field: value})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field)
    assert not ApiKey.objects.filter(name="From admin").exists()


def test_rotating_shows_the_new_secret_once_and_keeps_the_old_key_for_the_grace(
        admin_client: Client, issued: IssuedKey) -> None:
    key = issued.api_key

    response = _act(admin_client, ApiKey, "rotate", key)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [secret] = _secrets_on(response.content.decode())
    successor = ApiKey.objects.get(rotated_from=key)
    assert secret.endswith(successor.last4) and secret != issued.secret
    key.refresh_from_db()
    assert key.status == ApiKey.Status.ACTIVE
    assert key.grace_until is not None and key.grace_until > timezone.now() + dt.timedelta(hours=23)
    for url in (admin_url(ApiKey, "changelist"), admin_url(ApiKey, "change", successor.pk)):
        assert secret not in admin_client.get(url).content.decode()
    assert secret not in stored_text()


def test_rotating_only_revoked_keys_warns_and_issues_nothing(admin_client: Client, issued: IssuedKey) -> None:
    _act(admin_client, ApiKey, "revoke", issued.api_key)

    response = _act(admin_client, ApiKey, "rotate", issued.api_key)

    assert response.status_code == 302
    assert not ApiKey.objects.filter(rotated_from=issued.api_key).exists()


def test_the_revoke_action_revokes_the_selected_keys_only(admin_client: Client, issued: IssuedKey) -> None:
    other = ApiKeyFactory(tenant=issued.api_key.tenant)

    response = _act(admin_client, ApiKey, "revoke", issued.api_key)

    assert response.status_code == 302
    issued.api_key.refresh_from_db()
    other.refresh_from_db()
    assert issued.api_key.status == ApiKey.Status.REVOKED and issued.api_key.revoked_at is not None
    assert other.status == ApiKey.Status.ACTIVE


def test_the_suspend_and_reactivate_actions_set_the_status(admin_client: Client, issued: IssuedKey) -> None:
    tenant, bystander = issued.api_key.tenant, TenantFactory()

    _act(admin_client, Tenant, "suspend", tenant)
    tenant.refresh_from_db()
    bystander.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED
    assert bystander.status == Tenant.Status.ACTIVE

    _act(admin_client, Tenant, "reactivate", tenant)
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.ACTIVE


def test_view_only_staff_are_offered_no_actions(client: Client, issued: IssuedKey) -> None:
    user = staff_with_every_permission("viewer")
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)

    response = _act(client, ApiKey, "revoke", issued.api_key)

    assert response.status_code == 200  # the changelist again, without an action form
    issued.api_key.refresh_from_db()
    assert issued.api_key.status == ApiKey.Status.ACTIVE


def _tenant_form(plan: Plan, **extra: str) -> dict[str, Any]:
    return {"name": "Admin Made", "slug": "admin-made", "description": "", "status": "active", "plan": plan.pk,
            "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0, **extra}


def test_adding_a_tenant_creates_its_subscription(admin_client: Client) -> None:
    plan = Plan.objects.get(slug="pro")

    response = admin_client.post(admin_url(Tenant, "add"), _tenant_form(plan))

    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="admin-made")
    assert tenant.subscription.plan == plan
    assert tenant.status == Tenant.Status.ACTIVE


def test_a_tenant_added_suspended_stays_suspended(admin_client: Client) -> None:
    response = admin_client.post(admin_url(Tenant, "add"), _tenant_form(Plan.objects.get(slug="free"),
                                                                          status="suspended"))

    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="admin-made")
    assert tenant.status == Tenant.Status.SUSPENDED
    assert tenant.subscription is not None


def test_changing_a_tenants_plan_moves_its_subscription(admin_client: Client, issued: IssuedKey) -> None:
    tenant, enterprise = issued.api_key.tenant, Plan.objects.get(slug="enterprise")
    data = _tenant_form(enterprise, name=tenant.name, slug=tenant.slug, **{
        "memberships-INITIAL_FORMS": 1, "memberships-TOTAL_FORMS": 1,
        "memberships-0-id": tenant.memberships.get().pk, "memberships-0-tenant": tenant.pk,
        "memberships-0-user": tenant.memberships.get().user_id, "memberships-0-role": "owner",
    })

    response = admin_client.post(admin_url(Tenant, "change", tenant.pk), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    tenant.refresh_from_db()
    assert tenant.plan == enterprise
    assert tenant.subscription.plan == enterprise


@pytest.mark.parametrize("field, value", [("slug", "acme"), ("name", "Acme"), ("slug", "not a slug")])
def test_a_duplicate_or_bad_tenant_is_a_form_error(admin_client: Client, issued: IssuedKey, field: str,
                                                   value: str) -> None:
    response = admin_client.post(admin_url(Tenant, "add"), _tenant_form(Plan.objects.get(slug="free"),
                                                                          **{field: value}))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field)
    assert not Tenant.objects.filter(slug="admin-made").exists()


def test_the_key_page_charts_its_anomaly_scores(admin_client: Client, issued: IssuedKey) -> None:
    AbuseScore.objects.create(api_key=issued.api_key, mean=20, variance=4, intervals=30, last_z=1.2,
                              history=[[time.time() - 10 * i, 20, z] for i, z in enumerate([0.5, -1, 2, 7.5])])

    html = admin_client.get(admin_url(ApiKey, "change", issued.api_key.pk)).content.decode()

    assert "<svg" in html and "<polyline" in html
    assert "last z = 7.50" in html


def test_the_key_changelist_does_not_query_per_row(admin_client: Client, issued: IssuedKey,
                                                   django_assert_num_queries: Any) -> None:
    admin_client.get(admin_url(ApiKey, "changelist"))  # warm the session and content types
    for _ in range(8):
        ApiKeyFactory(tenant=TenantFactory(plan_slug="enterprise"))

    # 1 session, 2 user, 3 the plans for the tenant__plan filter, 4 the filtered count,
    # 5 the full count, 6 the page of keys joined to their tenants: none per row.
    with django_assert_num_queries(6):
        response = admin_client.get(admin_url(ApiKey, "changelist"))
    assert response.status_code == 200
