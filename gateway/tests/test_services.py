"""Route services: the plan's route cap and the SSRF and shape checks on upstreams."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from gateway.models import CachePolicy, Route
from gateway.services import cache_policy_create, route_create
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
UPSTREAM = "http://127.0.0.1:8001"


def test_a_free_tenant_cannot_have_a_sixth_route() -> None:
    tenant = TenantFactory(plan_slug="free")
    for n in range(5):
        route_create(tenant=tenant, slug=f"r{n}", upstream_url=UPSTREAM)
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=tenant, slug="r5", upstream_url=UPSTREAM)
    assert refused.value.message_dict["tenant"] == [f"The Free plan allows 5 routes; {tenant.name} has 5."]
    assert Route.objects.filter(tenant=tenant).count() == 5


def test_an_enterprise_tenant_has_no_route_cap() -> None:
    tenant = TenantFactory(plan_slug="enterprise")
    for n in range(26):  # past the Pro plan's 25
        route_create(tenant=tenant, slug=f"r{n}", upstream_url=UPSTREAM)
    assert Route.objects.filter(tenant=tenant).count() == 26


def test_shared_routes_count_against_no_tenants_cap() -> None:
    tenant = TenantFactory(plan_slug="free")
    for n in range(6):
        route_create(tenant=None, slug=f"shared{n}", upstream_url=UPSTREAM)
    route_create(tenant=tenant, slug="own", upstream_url=UPSTREAM)
    assert Route.objects.count() == 7


@pytest.mark.parametrize("url", [
    "ftp://example.com",
    "javascript:alert(1)",
    "http://user:pw@example.com",
    "https://token@example.com",
    "http://169.254.169.254/latest/meta-data",
    "http://[fe80::1]/",
    "http://metadata.google.internal/",
    "http://metadata.google.internal./",
    "http://example.com/?q=1",
    "http://example.com:99999/",
])
def test_an_unsafe_or_malformed_upstream_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=TenantFactory(plan_slug="pro"), slug="bad", upstream_url=url)
    assert "upstream_targets" in refused.value.message_dict
    assert not Route.objects.exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8001", "https://api.example.com/v1", "http://10.0.0.5:8080"])
def test_public_loopback_and_private_upstreams_are_accepted(url: str) -> None:
    route = route_create(tenant=TenantFactory(plan_slug="pro"), slug="ok", upstream_url=url)
    assert route.upstream_targets == [{"url": url, "weight": 1}]


def test_a_tenant_cannot_have_two_routes_with_one_slug() -> None:
    tenant = TenantFactory(plan_slug="pro")
    route_create(tenant=tenant, slug="items", upstream_url=UPSTREAM)
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=tenant, slug="items", upstream_url=UPSTREAM)
    assert "already exists" in str(refused.value)
    assert Route.objects.filter(slug="items").count() == 1


def test_two_tenants_and_a_shared_route_may_use_the_same_slug() -> None:
    route_create(tenant=TenantFactory(plan_slug="pro"), slug="items", upstream_url=UPSTREAM)
    route_create(tenant=TenantFactory(plan_slug="pro"), slug="items", upstream_url=UPSTREAM)
    route_create(tenant=None, slug="items", upstream_url=UPSTREAM)
    assert Route.objects.filter(slug="items").count() == 3


def test_two_shared_routes_cannot_have_one_slug() -> None:
    route_create(tenant=None, slug="items", upstream_url=UPSTREAM)
    with pytest.raises(ValidationError):
        route_create(tenant=None, slug="items", upstream_url=UPSTREAM)
    assert Route.objects.filter(slug="items").count() == 1


@pytest.mark.parametrize("fields, field", [
    ({"methods": ["FETCH"]}, "methods"),
    ({"methods": []}, "methods"),
    ({"methods": ["GET", "GET"]}, "methods"),
    ({"methods": "GET"}, "methods"),
    ({"rate_limit_rps": 0}, "rate_limit_rps"),
    ({"rate_limit_rps": -1}, "rate_limit_rps"),
    ({"timeout_ms": 0}, "timeout_ms"),
    ({"slug": "Not A Slug"}, "slug"),
])
def test_a_bad_route_field_is_refused_naming_the_field(fields: dict, field: str) -> None:
    fields = {"slug": "bad", **fields}
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=TenantFactory(plan_slug="pro"), upstream_url=UPSTREAM, **fields)
    assert field in refused.value.message_dict
    assert not Route.objects.exists()


@pytest.mark.parametrize("fields, field", [
    ({"vary_headers": ["Bad Header"]}, "vary_headers"),
    ({"cacheable_statuses": [200, 503]}, "cacheable_statuses"),
])
def test_a_bad_cache_policy_is_refused_naming_the_field(fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        cache_policy_create(name="Bad", **fields)
    assert field in refused.value.message_dict
    assert not CachePolicy.objects.exists()


def test_a_duplicate_shared_slug_is_refused_with_a_readable_message() -> None:
    route_create(tenant=None, slug="items", upstream_url=UPSTREAM)
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=None, slug="items", upstream_url=UPSTREAM)
    assert "route_unique_shared_slug" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://[::ffff:169.254.169.254]/", "http://2852039166/", "http://0xa9fea9fe/"])
def test_other_spellings_of_the_metadata_address_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        route_create(tenant=TenantFactory(plan_slug="pro"), slug="bad", upstream_url=url)
