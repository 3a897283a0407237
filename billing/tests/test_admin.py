"""django-admin for plans, subscriptions and credits: pages render, negative limits and
duplicate slugs are form errors, and the ledger and subscriptions cannot be forged by hand."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import models
from django.test import Client

from billing.models import CreditBalance, CreditLedger, Plan, Subscription
from tenants.models import Tenant
from tenants.tests.factories import (
    TenantFactory,
    admin_url,
    assert_admin_pages_render,
    registered_models,
    staff_with_every_permission,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant() -> Tenant:
    tenant = TenantFactory(plan_slug="pro")
    CreditBalance.objects.create(tenant=tenant, balance=Decimal("10"))
    CreditLedger.objects.create(tenant=tenant, amount=Decimal("-1.5"), reason="chat", request_id=uuid.uuid4().hex)
    return tenant


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(staff_with_every_permission())
    return client


def _plan_form(**extra: Any) -> dict[str, Any]:
    return {"name": "Startup", "slug": "startup", "rps": 5, "burst": 10, "algorithm": "token_bucket",
            "quota_daily": 0, "quota_monthly": 0, "max_keys": 3, "max_routes": 3, "price_monthly": "19.00",
            "features": "{}", "is_public": "on", **extra}


@pytest.mark.parametrize("model", registered_models("billing"), ids=lambda m: m._meta.label)
def test_every_billing_page_renders_for_a_superuser(admin_client: Client, tenant: Tenant,
                                                    model: type[models.Model]) -> None:
    assert_admin_pages_render(admin_client, model)


@pytest.mark.parametrize("model", registered_models("billing"), ids=lambda m: m._meta.label)
def test_every_billing_page_renders_for_staff_with_every_permission(staff_client: Client, tenant: Tenant,
                                                                    model: type[models.Model]) -> None:
    assert_admin_pages_render(staff_client, model)


def test_a_plan_added_in_the_admin_is_saved(admin_client: Client) -> None:
    response = admin_client.post(admin_url(Plan, "add"), _plan_form())

    assert response.status_code == 302
    assert Plan.objects.get(slug="startup").max_keys == 3


@pytest.mark.parametrize("field, value", [
    ("rps", "0"), ("rps", "-1"), ("burst", "0"), ("burst", "-5"), ("quota_daily", "-1"), ("quota_monthly", "-1"),
    ("max_keys", "-1"), ("max_routes", "-2"), ("slug", "pro"), ("slug", "not a slug"), ("name", "Pro"),
    ("features", "{not json"), ("algorithm", "fastest"),
])
def test_bad_plan_fields_are_form_errors(admin_client: Client, field: str, value: str) -> None:
    response = admin_client.post(admin_url(Plan, "add"), _plan_form(**{field: value}))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field)
    assert not Plan.objects.filter(name="Startup").exists()


def test_a_subscription_period_that_ends_before_it_starts_is_a_form_error(admin_client: Client,
                                                                          tenant: Tenant) -> None:
    subscription = tenant.subscription
    response = admin_client.post(admin_url(Subscription, "change", subscription.pk), {
        "status": "active", "current_period_start_0": "2025-02-01", "current_period_start_1": "00:00:00",
        "current_period_end_0": "2025-01-01", "current_period_end_1": "00:00:00",
    })

    assert response.status_code == 200
    assert "subscription_period_ordered" in str(response.context["adminform"].form.non_field_errors())


def test_a_subscriptions_plan_is_changed_on_its_tenant_not_here(staff_client: Client, tenant: Tenant) -> None:
    page = staff_client.get(admin_url(Subscription, "change", tenant.subscription.pk))

    assert "plan" not in page.context["adminform"].form.fields
    assert staff_client.get(admin_url(Subscription, "add")).status_code == 403


def test_the_ledger_cannot_be_written_by_hand(staff_client: Client, tenant: Tenant) -> None:
    entry = CreditLedger.objects.get(tenant=tenant)

    assert staff_client.get(admin_url(CreditLedger, "add")).status_code == 403
    assert staff_client.post(admin_url(CreditLedger, "change", entry.pk), {"amount": "100"}).status_code == 403
    assert staff_client.post(admin_url(CreditLedger, "delete", entry.pk), {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.amount == Decimal("-1.5")


def test_a_balance_is_not_edited_by_hand(admin_client: Client, tenant: Tenant) -> None:
    balance = tenant.credit_balance
    response = admin_client.post(admin_url(CreditBalance, "change", balance.pk),
                                 {"tenant": tenant.pk, "balance": "1000000"})

    assert response.status_code == 302
    balance.refresh_from_db()
    assert balance.balance == Decimal("10")
