"""Tenant and key services: subscriptions, key hashing, plan caps, rotation and revocation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from gateway.runtime.keys import hash_secret
from tenants.models import ApiKey
from tenants.services import api_key_issue, api_key_revoke, api_key_rotate, key_hash
from tenants.tests.factories import TenantFactory, stored_text

pytestmark = pytest.mark.django_db


def test_a_new_tenant_gets_an_active_subscription_to_its_plan() -> None:
    tenant = TenantFactory(plan_slug="pro")
    tenant.refresh_from_db()
    assert tenant.subscription.plan.slug == "pro"
    assert tenant.subscription.status == "active"
    assert tenant.subscription.current_period_end > tenant.subscription.current_period_start


def test_an_issued_key_is_stored_only_as_the_hmac_of_its_secret() -> None:
    issued = api_key_issue(tenant=TenantFactory(), name="main")
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.key_hash == hash_secret(issued.secret, settings.API_KEY_PEPPER.encode())
    assert issued.secret not in stored_text()


def test_an_issued_keys_prefix_and_last4_come_from_its_secret() -> None:
    issued = api_key_issue(tenant=TenantFactory(), name="main")
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert (key.prefix, key.last4) == (issued.secret[:12], issued.secret[-4:])
    assert key.display == f"{issued.secret[:12]}…{issued.secret[-4:]}"


def test_a_generated_secret_names_its_environment_and_is_long() -> None:
    issued = api_key_issue(tenant=TenantFactory(), name="ci", environment="test")
    assert issued.secret.startswith("hx_test_")
    assert len(issued.secret) == len("hx_test_") + 32


def test_two_issued_keys_get_different_secrets() -> None:
    tenant = TenantFactory(plan_slug="pro")
    assert api_key_issue(tenant=tenant, name="a").secret != api_key_issue(tenant=tenant, name="b").secret


def test_a_given_secret_is_hashed_like_a_generated_one() -> None:
    issued = api_key_issue(tenant=TenantFactory(), name="fixed", secret="hx_fixed_0123456789abcdef")
    assert issued.secret == "hx_fixed_0123456789abcdef"
    assert ApiKey.objects.filter(key_hash=key_hash("hx_fixed_0123456789abcdef")).get() == issued.api_key


def test_a_secret_already_in_use_is_refused() -> None:
    tenant = TenantFactory(plan_slug="pro")
    api_key_issue(tenant=tenant, name="first", secret="hx_fixed_0123456789abcdef")
    with pytest.raises(ValidationError) as refused:
        api_key_issue(tenant=tenant, name="second", secret="hx_fixed_0123456789abcdef")
    assert "key_hash" in refused.value.message_dict
    assert ApiKey.objects.count() == 1


def test_a_free_tenant_cannot_have_a_third_active_key() -> None:
    tenant = TenantFactory(plan_slug="free")
    api_key_issue(tenant=tenant, name="one")
    api_key_issue(tenant=tenant, name="two")
    with pytest.raises(ValidationError) as refused:
        api_key_issue(tenant=tenant, name="three")
    assert refused.value.message_dict["tenant"] == [
        f"The Free plan allows 2 active keys; {tenant.name} has 2."
    ]
    assert ApiKey.objects.filter(tenant=tenant).count() == 2


def test_revoking_a_key_frees_a_slot_on_a_capped_plan() -> None:
    tenant = TenantFactory(plan_slug="free")
    first = api_key_issue(tenant=tenant, name="one").api_key
    api_key_issue(tenant=tenant, name="two")
    api_key_revoke(api_key=first)
    api_key_issue(tenant=tenant, name="three")
    assert ApiKey.objects.filter(tenant=tenant, status="active").count() == 2


def test_an_enterprise_tenant_has_no_key_cap() -> None:
    tenant = TenantFactory(plan_slug="enterprise")
    for n in range(12):  # past the Pro plan's 10
        api_key_issue(tenant=tenant, name=f"k{n}")
    assert ApiKey.objects.filter(tenant=tenant, status="active").count() == 12


def test_revoking_a_key_makes_it_unusable_at_once() -> None:
    key = api_key_issue(tenant=TenantFactory(), name="gone").api_key
    api_key_revoke(api_key=key)
    key.refresh_from_db()
    assert key.status == "revoked"
    assert key.revoked_at == pytest.approx(timezone.now(), abs=dt.timedelta(seconds=5))
    assert not key.is_usable()


def test_rotation_issues_a_new_key_with_the_same_settings_that_remembers_the_old_one() -> None:
    old = api_key_issue(tenant=TenantFactory(plan_slug="pro"), name="rotating", rate_limit_rps=5,
                        rate_limit_burst=10, quota_daily=100, scopes=["proxy:read"]).api_key
    new = api_key_rotate(api_key=old, grace=dt.timedelta(minutes=30))
    fresh = ApiKey.objects.get(pk=new.api_key.pk)
    assert fresh.rotated_from == old
    assert fresh.key_hash == key_hash(new.secret) != old.key_hash
    assert (fresh.name, fresh.rate_limit_rps, fresh.rate_limit_burst, fresh.quota_daily, fresh.scopes) == (
        "rotating", 5, 10, 100, ["proxy:read"])


def test_a_rotated_out_key_works_until_its_grace_ends() -> None:
    old = api_key_issue(tenant=TenantFactory(plan_slug="pro"), name="rotating").api_key
    api_key_rotate(api_key=old, grace=dt.timedelta(minutes=30))
    old.refresh_from_db()
    assert old.status == "active"
    assert old.grace_until == pytest.approx(timezone.now() + dt.timedelta(minutes=30), abs=dt.timedelta(seconds=5))
    assert old.is_usable()
    assert not old.is_usable(old.grace_until + dt.timedelta(seconds=1))


def test_rotation_with_no_grace_revokes_the_old_key_at_once() -> None:
    old = api_key_issue(tenant=TenantFactory(plan_slug="pro"), name="rotating").api_key
    api_key_rotate(api_key=old, grace=dt.timedelta(0))
    old.refresh_from_db()
    assert old.status == "revoked"
    assert not old.is_usable()


def test_a_revoked_key_cannot_be_rotated() -> None:
    key = api_key_issue(tenant=TenantFactory(plan_slug="pro"), name="gone").api_key
    api_key_revoke(api_key=key)
    with pytest.raises(ValidationError) as refused:
        api_key_rotate(api_key=key)
    assert "status" in refused.value.message_dict
    assert ApiKey.objects.count() == 1


def test_a_negative_rotation_grace_is_refused() -> None:
    key = api_key_issue(tenant=TenantFactory(plan_slug="pro"), name="rotating").api_key
    with pytest.raises(ValidationError) as refused:
        api_key_rotate(api_key=key, grace=dt.timedelta(seconds=-1))
    assert "grace_seconds" in refused.value.message_dict


@pytest.mark.parametrize("bad, field", [
    ({"ip_allowlist": ["300.1.1.1/8"]}, "ip_allowlist"),
    ({"scopes": ["root"]}, "scopes"),
    ({"allowed_routes": ["Not A Slug"]}, "allowed_routes"),
    ({"secret": "short"}, "secret"),
    ({"secret": "has a space in it"}, "secret"),
    ({"environment": "prod"}, "environment"),
])
def test_a_bad_key_field_is_refused_naming_the_field(bad: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        api_key_issue(tenant=TenantFactory(plan_slug="pro"), name="bad", **bad)
    assert field in refused.value.message_dict
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("rps", [0, -1])
def test_a_zero_or_negative_key_rps_override_is_refused(rps: float) -> None:
    with pytest.raises(ValidationError):
        api_key_issue(tenant=TenantFactory(plan_slug="pro"), name="bad", rate_limit_rps=rps)
    assert not ApiKey.objects.exists()


def test_a_rotated_out_key_stops_holding_a_slot_once_its_grace_ends() -> None:
    tenant = TenantFactory(plan_slug="free")
    old = api_key_issue(tenant=tenant, name="rotating").api_key
    api_key_rotate(api_key=old, grace=dt.timedelta(minutes=5))
    ApiKey.objects.filter(pk=old.pk).update(grace_until=timezone.now() - dt.timedelta(seconds=1))
    api_key_issue(tenant=tenant, name="second")  # one usable key + this one = the Free plan's 2
