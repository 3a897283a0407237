"""Route services: the plan's route cap and the SSRF and shape checks on upstreams."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from billing.models import Plan
from gateway.models import Route
from gateway.services import route_create
from tenants.services import tenant_create

pytestmark = pytest.mark.django_db
UPSTREAM = "http://127.0.0.1:8001"


def _tenant(plan: str = "free", name: str = "Route Co") -> object:
    return tenant_create(name=name, plan=Plan.objects.get(slug=plan))


def test_the_free_plans_route_cap_holds() -> None:
    tenant = _tenant()
    for n in range(5):
        route_create(tenant=tenant, slug=f"r{n}", upstream_url=UPSTREAM)
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=tenant, slug="r5", upstream_url=UPSTREAM)
    assert "allows 5 routes" in str(refused.value)


@pytest.mark.parametrize("url", [
    "ftp://example.com", "http://user:pw@example.com", "http://169.254.169.254/latest/meta-data",
    "http://[fe80::1]/", "http://metadata.google.internal/", "http://example.com/?q=1", "javascript:alert(1)",
    "http://example.com:99999/",
])
def test_unsafe_or_malformed_upstreams_are_refused(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=_tenant("pro"), slug="bad", upstream_url=url)
    assert "upstream_targets" in refused.value.message_dict


def test_slugs_are_unique_per_tenant_but_may_repeat_across_tenants_and_shared() -> None:
    acme, beta = _tenant("pro", "Acme"), _tenant("pro", "Beta")
    route_create(tenant=acme, slug="items", upstream_url=UPSTREAM)
    route_create(tenant=beta, slug="items", upstream_url=UPSTREAM)
    route_create(tenant=None, slug="items", upstream_url=UPSTREAM)
    with pytest.raises(ValidationError):
        route_create(tenant=acme, slug="items", upstream_url=UPSTREAM)
    with pytest.raises(ValidationError):
        route_create(tenant=None, slug="items", upstream_url=UPSTREAM)
    assert Route.objects.filter(slug="items").count() == 3


@pytest.mark.parametrize("fields", [{"methods": ["FETCH"]}, {"methods": []}, {"rate_limit_rps": 0},
                                    {"rate_limit_rps": -1}, {"timeout_ms": 0}])
def test_bad_route_fields_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        route_create(tenant=_tenant("pro"), slug="bad", upstream_url=UPSTREAM, **fields)
