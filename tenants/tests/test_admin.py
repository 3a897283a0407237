"""django-admin as staff see it: every page renders, secrets are shown once and never stored
or shown again, actions call the services, bad input is a form error (never a 500)."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from abuse.models import AbuseEvent, AbuseScore, AbuseSignal, Block
from abuse.services import block_create
from analytics.ingest import ingest_records
from analytics.models import RequestRollup
from billing.models import CreditBalance, CreditLedger, Plan
from gateway.demo import demo_seed
from gateway.models import Route
from tenants.models import ApiKey, Membership, Tenant
from tenants.services import api_key_issue, tenant_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(admin_user: object) -> dict:
    demo_seed(upstream_url="http://127.0.0.1:8001")
    acme = Tenant.objects.get(slug="acme")
    key = ApiKey.objects.filter(tenant=acme).first()
    route = Route.objects.get(slug="products")
    Membership.objects.create(user=admin_user, tenant=acme, role="owner")
    Group.objects.create(name="support")
    CreditBalance.objects.create(tenant=acme, balance=10)
    CreditLedger.objects.create(tenant=acme, amount=-1, reason="chat", request_id=uuid.uuid4().hex)
    ingest_records([{"request_id": uuid.uuid4().hex, "ts": time.time(), "tenant_id": acme.pk, "api_key_id": key.pk,
                     "route_id": route.pk, "method": "GET", "path": "/items", "status": 200, "latency_ms": 2.0,
                     "client_ip": "203.0.113.1"}])
    RequestRollup.objects.create(granularity="hour", bucket_start=timezone.now(), status_class=2, cache_status="HIT")
    block_create(api_key=key, reason="anomaly", detail="test", score=7.5, rate=100, error_rate=0)
    AbuseScore.objects.create(api_key=key, mean=20, variance=4, intervals=30, last_z=1.2,
                              history=[[time.time() - 10 * i, 20, z] for i, z in enumerate([0.5, -1, 2, 7.5])])
    return {"tenant": acme, "key": key, "route": route}


def _admin_models() -> list:
    return [model for model in apps.get_models() if model in admin.site._registry]


@pytest.mark.parametrize("model", _admin_models(), ids=lambda m: m._meta.label)
def test_every_changelist_and_change_form_renders(admin_client: object, world: dict, model: type) -> None:
    opts = model._meta
    changelist = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))  # type: ignore[attr-defined]
    assert changelist.status_code == 200
    obj = model.objects.first()
    assert obj is not None, f"the fixture should create a {opts.label}"
    change = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))  # type: ignore[attr-defined]
    assert change.status_code == 200
    if admin.site._registry[model].has_add_permission(changelist.wsgi_request):
        add = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))  # type: ignore[attr-defined]
        assert add.status_code == 200


def _add_key(admin_client: object, tenant: Tenant, **extra: str) -> object:
    data = {"tenant": tenant.pk, "name": "From admin", "environment": "live", "scopes": "[]",
            "allowed_routes": "[]", "ip_allowlist": "[]", **extra}
    return admin_client.post(reverse("admin:tenants_apikey_add"), data)  # type: ignore[attr-defined]


def test_a_new_keys_secret_is_shown_once_and_stored_nowhere(admin_client: object, world: dict) -> None:
    response = _add_key(admin_client, world["tenant"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    secret = html.split('<code class="heliox-secret">')[1].split("</code>")[0]
    assert secret.startswith("hx_live_")
    key = ApiKey.objects.get(name="From admin")
    for url in (reverse("admin:tenants_apikey_changelist"), reverse("admin:tenants_apikey_change", args=[key.pk])):
        page = admin_client.get(url).content.decode()  # type: ignore[attr-defined]
        assert secret not in page
        assert key.key_hash not in page
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_apikey")
        assert secret not in repr(cursor.fetchall())


def test_the_plan_key_cap_is_a_form_error(admin_client: object) -> None:
    tenant = tenant_create(name="Small Co", plan=Plan.objects.get(slug="free"))
    for n in range(2):
        api_key_issue(tenant=tenant, name=f"k{n}")
    response = _add_key(admin_client, tenant)
    assert response.status_code == 200
    assert "allows 2 active keys" in response.content.decode()
    assert ApiKey.objects.filter(tenant=tenant).count() == 2


@pytest.mark.parametrize("field, value", [
    ("ip_allowlist", '["10.0.0.1/33"]'), ("ip_allowlist", '"not a list"'), ("scopes", '["admin"]'),
    ("rate_limit_rps", "-1"), ("quota_daily", "-5"),
])
def test_bad_key_fields_are_form_errors(admin_client: object, world: dict, field: str, value: str) -> None:
    response = _add_key(admin_client, world["tenant"], **{field: value})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field)  # type: ignore[index]
    assert not ApiKey.objects.filter(name="From admin").exists()


def _route_data(tenant: Tenant | None, **extra: str) -> dict:
    data = {"tenant": tenant.pk if tenant else "", "slug": "newroute", "name": "New route",
            "upstream_targets": '[{"url": "http://127.0.0.1:8001", "weight": 1}]', "load_balancing": "round_robin",
            "connect_timeout_ms": 2000, "read_timeout_ms": 30000, "timeout_ms": 30000, "retry_attempts": 0,
            "retry_backoff_ms": 100, "auth_mode": "api_key", "methods": '["GET"]', "max_body_bytes": 1024,
            "request_headers_add": "{}", "request_headers_remove": "[]", "response_headers_add": "{}",
            "priority": 0, "is_active": "on"}
    data.update(extra)
    return data


@pytest.mark.parametrize("field, value", [
    ("upstream_targets", '[{"url": "ftp://example.com"}]'),
    ("upstream_targets", '[{"url": "http://user:pw@example.com"}]'),
    ("upstream_targets", '[{"url": "http://169.254.169.254/latest"}]'),
    ("upstream_targets", '[{"url": "http://[fe80::1]/"}]'),
    ("upstream_targets", '[{"url": "http://metadata.google.internal/"}]'),
    ("methods", '["FETCH"]'),
    ("timeout_ms", "-1"),
    ("rate_limit_rps", "0"),
])
def test_bad_route_fields_are_form_errors(admin_client: object, world: dict, field: str, value: str) -> None:
    response = admin_client.post(reverse("admin:gateway_route_add"),  # type: ignore[attr-defined]
                                 _route_data(world["tenant"], **{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field)
    assert not Route.objects.filter(slug="newroute").exists()


def test_a_duplicate_slug_and_the_route_cap_are_form_errors(admin_client: object, world: dict) -> None:
    duplicate = admin_client.post(reverse("admin:gateway_route_add"),  # type: ignore[attr-defined]
                                  _route_data(world["tenant"], slug="products"))
    assert duplicate.status_code == 200
    assert duplicate.context["adminform"].form.non_field_errors() or duplicate.context["adminform"].form.errors
    free = tenant_create(name="Tiny Co", plan=Plan.objects.get(slug="free"))
    for n in range(5):
        Route.objects.create(tenant=free, slug=f"r{n}", name=f"r{n}",
                             upstream_targets=[{"url": "http://127.0.0.1:8001", "weight": 1}])
    capped = admin_client.post(reverse("admin:gateway_route_add"), _route_data(free))  # type: ignore[attr-defined]
    assert capped.status_code == 200
    assert "allows 5 routes" in capped.content.decode()


def test_revoke_rotate_and_suspend_actions(admin_client: object, world: dict) -> None:
    key, tenant = world["key"], world["tenant"]
    changelist = reverse("admin:tenants_apikey_changelist")
    rotated = admin_client.post(changelist, {"action": "rotate", "_selected_action": [key.pk]})  # type: ignore[attr-defined]
    assert rotated.status_code == 200
    assert '<code class="heliox-secret">hx_' in rotated.content.decode()
    key.refresh_from_db()
    assert key.grace_until is not None and key.grace_until > timezone.now() + dt.timedelta(hours=23)
    successor = ApiKey.objects.get(rotated_from=key)
    admin_client.post(changelist, {"action": "revoke", "_selected_action": [successor.pk]})  # type: ignore[attr-defined]
    successor.refresh_from_db()
    assert successor.status == "revoked"
    admin_client.post(reverse("admin:tenants_tenant_changelist"),  # type: ignore[attr-defined]
                      {"action": "suspend", "_selected_action": [tenant.pk]})
    tenant.refresh_from_db()
    assert tenant.status == "suspended"


def test_lifting_a_block_records_who(admin_client: object, world: dict, admin_user: object) -> None:
    block = Block.objects.get(api_key=world["key"])
    admin_client.post(reverse("admin:abuse_block_changelist"),  # type: ignore[attr-defined]
                      {"action": "lift", "_selected_action": [block.pk]})
    block.refresh_from_db()
    assert block.lifted_at is not None
    assert block.lifted_by == admin_user
    assert AbuseEvent.objects.filter(action="unblocked", api_key=world["key"]).exists()


def test_the_key_page_charts_its_anomaly_scores(admin_client: object, world: dict) -> None:
    page = admin_client.get(reverse("admin:tenants_apikey_change", args=[world["key"].pk]))  # type: ignore[attr-defined]
    html = page.content.decode()
    assert "<svg" in html and "<polyline" in html
    assert "last z = 7.50" in html


def test_the_request_log_is_listed_without_counting_it(admin_client: object, world: dict) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:analytics_requestlog_changelist"))  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert "/items" in response.content.decode()
    counting = [q["sql"] for q in queries.captured_queries
                if "COUNT(" in q["sql"].upper() and "analytics_requestlog" in q["sql"]]
    assert counting == []


def test_adding_a_tenant_in_the_admin_creates_its_subscription(admin_client: object) -> None:
    plan = Plan.objects.get(slug="pro")
    response = admin_client.post(reverse("admin:tenants_tenant_add"), {  # type: ignore[attr-defined]
        "name": "Admin Made", "slug": "admin-made", "description": "", "status": "active", "plan": plan.pk,
        "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content[:2000]
    tenant = Tenant.objects.get(slug="admin-made")
    assert tenant.subscription.plan == plan


def test_signals_are_visible_read_only(admin_client: object, world: dict) -> None:
    assert AbuseSignal.objects.exists()
    signal = AbuseSignal.objects.first()
    page = admin_client.get(reverse("admin:abuse_abusesignal_change", args=[signal.pk]))  # type: ignore[attr-defined]
    assert page.status_code == 200
