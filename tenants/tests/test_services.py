"""Tenant and key services: subscriptions, key hashing, plan caps, rotation and revocation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from billing.models import Plan
from gateway.runtime.keys import hash_secret
from tenants.models import ApiKey
from tenants.services import api_key_issue, api_key_revoke, api_key_rotate, tenant_create

pytestmark = pytest.mark.django_db


def _tenant(plan: str = "free") -> object:
    return tenant_create(name=f"{plan.title()} Co", plan=Plan.objects.get(slug=plan))


def test_a_new_tenant_gets_a_subscription_to_its_plan() -> None:
    tenant = _tenant("pro")
    assert tenant.subscription.plan.slug == "pro"  # type: ignore[attr-defined]
    assert tenant.subscription.status == "active"  # type: ignore[attr-defined]


def test_an_issued_key_is_kept_only_as_its_hmac() -> None:
    issued = api_key_issue(tenant=_tenant(), name="main")
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.key_hash == hash_secret(issued.secret, settings.API_KEY_PEPPER.encode())
    assert issued.secret.startswith("hx_live_") and len(issued.secret) == 40
    assert (key.prefix, key.last4) == (issued.secret[:12], issued.secret[-4:])
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_apikey")
        assert issued.secret not in repr(cursor.fetchall())


def test_the_free_plans_key_cap_holds_and_a_revoked_key_frees_a_slot() -> None:
    tenant = _tenant("free")
    first = api_key_issue(tenant=tenant, name="one").api_key
    api_key_issue(tenant=tenant, name="two")
    with pytest.raises(ValidationError) as refused:
        api_key_issue(tenant=tenant, name="three")
    assert "tenant" in refused.value.message_dict
    api_key_revoke(api_key=first)
    api_key_issue(tenant=tenant, name="three")


def test_enterprise_has_no_key_cap() -> None:
    tenant = _tenant("enterprise")
    for n in range(12):
        api_key_issue(tenant=tenant, name=f"k{n}")
    assert ApiKey.objects.filter(tenant=tenant).count() == 12


def test_rotation_keeps_the_old_secret_until_the_grace_ends() -> None:
    old = api_key_issue(tenant=_tenant("pro"), name="rotating", rate_limit_rps=5, rate_limit_burst=10).api_key
    new = api_key_rotate(api_key=old, grace=dt.timedelta(minutes=30))
    old.refresh_from_db()
    assert new.api_key.rotated_from == old
    assert (new.api_key.rate_limit_rps, new.api_key.rate_limit_burst) == (5, 10)
    assert old.status == "active"
    assert old.grace_until == pytest.approx(timezone.now() + dt.timedelta(minutes=30), abs=dt.timedelta(seconds=5))
    assert new.secret != ""


def test_rotation_without_grace_revokes_at_once_and_a_revoked_key_cannot_rotate() -> None:
    old = api_key_issue(tenant=_tenant("pro"), name="rotating").api_key
    api_key_rotate(api_key=old, grace=dt.timedelta(0))
    old.refresh_from_db()
    assert old.status == "revoked"
    with pytest.raises(ValidationError):
        api_key_rotate(api_key=old)


@pytest.mark.parametrize("bad", [{"ip_allowlist": ["300.1.1.1/8"]}, {"scopes": ["root"]},
                                 {"allowed_routes": ["Not A Slug"]}, {"secret": "short"}])
def test_bad_key_fields_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        api_key_issue(tenant=_tenant("pro"), name="bad", **bad)
