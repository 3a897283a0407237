"""django-admin for routes and cache policies: pages render, routes are made through
route_create, and bad upstreams, limits, JSON, duplicate slugs and the plan's route cap are
form errors (never a 500)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import models
from django.test import Client

from gateway.models import CachePolicy, Route
from gateway.services import cache_policy_create
from tenants.models import Tenant
from tenants.tests.factories import (
    LOCAL_UPSTREAM,
    RouteFactory,
    TenantFactory,
    admin_url,
    assert_admin_pages_render,
    registered_models,
    staff_with_every_permission,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def route() -> Route:
    policy = cache_policy_create(name="Short", ttl_seconds=30, vary_headers=["Accept"])
    return RouteFactory(tenant=TenantFactory(plan_slug="pro"), slug="products", cache_policy=policy)


def _route_form(tenant: Tenant | None, **extra: Any) -> dict[str, Any]:
    return {"tenant": tenant.pk if tenant else "", "slug": "newroute", "name": "New route",
            "upstream_targets": f'[{{"url": "{LOCAL_UPSTREAM}", "weight": 1}}]', "load_balancing": "round_robin",
            "connect_timeout_ms": 2000, "read_timeout_ms": 30000, "timeout_ms": 30000, "retry_attempts": 0,
            "retry_backoff_ms": 100, "auth_mode": "api_key", "methods": '["GET"]', "max_body_bytes": 1024,
            "request_headers_add": "{}", "request_headers_remove": "[]", "response_headers_add": "{}",
            "priority": 0, "is_active": "on", **extra}


def _policy_form(**extra: Any) -> dict[str, Any]:
    return {"name": "New policy", "ttl_seconds": 60, "stale_while_revalidate_seconds": 10,
            "stale_if_error_seconds": 10, "vary_headers": "[]", "normalize_query": "on",
            "cacheable_statuses": "[200, 404]", "max_body_bytes": 1024, "bloom_expected_items": 1000,
            "bloom_false_positive_rate": 0.01, **extra}


@pytest.mark.parametrize("model", registered_models("gateway"), ids=lambda m: m._meta.label)
def test_every_gateway_page_renders_for_a_superuser(admin_client: Client, route: Route,
                                                    model: type[models.Model]) -> None:
    assert_admin_pages_render(admin_client, model)


@pytest.mark.parametrize("model", registered_models("gateway"), ids=lambda m: m._meta.label)
def test_every_gateway_page_renders_for_staff_with_every_permission(client: Client, route: Route,
                                                                    model: type[models.Model]) -> None:
    client.force_login(staff_with_every_permission())
    assert_admin_pages_render(client, model)


def test_a_route_added_in_the_admin_is_saved(admin_client: Client, route: Route) -> None:
    response = admin_client.post(admin_url(Route, "add"), _route_form(route.tenant, methods='["GET", "POST"]'))

    assert response.status_code == 302
    saved = Route.objects.get(slug="newroute")
    assert saved.tenant == route.tenant
    assert saved.methods == ["GET", "POST"]
    assert saved.upstream_targets == [{"url": LOCAL_UPSTREAM, "weight": 1}]


def test_a_shared_route_needs_no_tenant(admin_client: Client) -> None:
    response = admin_client.post(admin_url(Route, "add"), _route_form(None))

    assert response.status_code == 302
    assert Route.objects.get(slug="newroute").tenant is None


@pytest.mark.parametrize("field, value", [
    ("upstream_targets", '[{"url": "ftp://example.com"}]'),
    ("upstream_targets", '[{"url": "file:///etc/passwd"}]'),
    ("upstream_targets", '[{"url": "http://user:pw@example.com"}]'),
    ("upstream_targets", '[{"url": "http://169.254.169.254/latest"}]'),
    ("upstream_targets", '[{"url": "http://[fe80::1]/"}]'),
    ("upstream_targets", '[{"url": "http://metadata.google.internal/"}]'),
    ("upstream_targets", '[{"url": "http://127.0.0.1:8001", "weight": 0}]'),
    ("upstream_targets", "[]"),
    ("upstream_targets", '[{"url": "http://127.0.0.1:8001"'),  # not JSON at all
    ("methods", '["FETCH"]'),
    ("methods", '["GET", "GET"]'),
    ("request_headers_add", '{"X-Bad": "one\\ntwo"}'),
    ("request_headers_remove", '["no spaces allowed"]'),
    ("timeout_ms", "-1"),
    ("connect_timeout_ms", "5"),
    ("retry_attempts", "9"),
    ("max_body_bytes", "-1"),
    ("rate_limit_rps", "0"),
    ("rate_limit_rps", "-2"),
    ("rate_limit_burst", "0"),
    ("slug", "Not A Slug"),
])
def test_bad_route_fields_are_form_errors(admin_client: Client, route: Route, field: str, value: str) -> None:
    response = admin_client.post(admin_url(Route, "add"), _route_form(route.tenant, **{field: value}))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field)
    assert not Route.objects.filter(slug="newroute").exists()


def test_a_bad_upstream_is_refused_on_the_change_form_too(admin_client: Client, route: Route) -> None:
    response = admin_client.post(admin_url(Route, "change", route.pk), _route_form(
        route.tenant, slug=route.slug, upstream_targets='[{"url": "http://169.254.169.254/"}]'))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get("upstream_targets")
    route.refresh_from_db()
    assert route.upstream_targets == [{"url": LOCAL_UPSTREAM, "weight": 1}]


def test_a_duplicate_slug_for_the_same_tenant_is_a_form_error(admin_client: Client, route: Route) -> None:
    response = admin_client.post(admin_url(Route, "add"), _route_form(route.tenant, slug=route.slug))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Route.objects.filter(slug=route.slug).count() == 1


def test_a_duplicate_shared_slug_is_a_form_error(admin_client: Client) -> None:
    RouteFactory(tenant=None, slug="shared")

    response = admin_client.post(admin_url(Route, "add"), _route_form(None, slug="shared"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Route.objects.filter(slug="shared").count() == 1


def test_the_plan_route_cap_is_a_form_error(admin_client: Client) -> None:
    tenant = TenantFactory(plan_slug="free")
    for _ in range(tenant.plan.max_routes):
        RouteFactory(tenant=tenant)

    response = admin_client.post(admin_url(Route, "add"), _route_form(tenant))

    assert response.status_code == 200
    assert "allows 5 routes" in response.context["adminform"].form.errors["tenant"][0]
    assert Route.objects.filter(tenant=tenant).count() == 5


def test_moving_a_route_to_a_tenant_at_its_cap_is_a_form_error(admin_client: Client) -> None:
    full = TenantFactory(plan_slug="free")
    for _ in range(full.plan.max_routes):
        RouteFactory(tenant=full)
    shared = RouteFactory(tenant=None, slug="mover")

    response = admin_client.post(admin_url(Route, "change", shared.pk), _route_form(full, slug="mover"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get("tenant")
    shared.refresh_from_db()
    assert shared.tenant is None


def test_editing_a_route_at_the_cap_is_allowed(admin_client: Client) -> None:
    tenant = TenantFactory(plan_slug="free")
    routes = [RouteFactory(tenant=tenant) for _ in range(tenant.plan.max_routes)]

    response = admin_client.post(admin_url(Route, "change", routes[0].pk),
                                 _route_form(tenant, slug=routes[0].slug, name="Renamed"))

    assert response.status_code == 302
    routes[0].refresh_from_db()
    assert routes[0].name == "Renamed"


def test_a_cache_policy_added_in_the_admin_is_saved(admin_client: Client) -> None:
    response = admin_client.post(admin_url(CachePolicy, "add"), _policy_form(vary_headers='["Accept-Language"]'))

    assert response.status_code == 302
    assert CachePolicy.objects.get(name="New policy").vary_headers == ["Accept-Language"]


@pytest.mark.parametrize("field, value", [
    ("vary_headers", '["not a header"]'),
    ("vary_headers", '"Accept"'),
    ("vary_headers", "[Accept"),  # not JSON at all
    ("cacheable_statuses", "[200, 500]"),
    ("cacheable_statuses", "[206]"),
    ("cacheable_statuses", '["200"]'),
    ("ttl_seconds", "-1"),
    ("stale_if_error_seconds", "-60"),
    ("bloom_expected_items", "10"),
    ("bloom_false_positive_rate", "0.5"),
])
def test_bad_cache_policy_fields_are_form_errors(admin_client: Client, field: str, value: str) -> None:
    response = admin_client.post(admin_url(CachePolicy, "add"), _policy_form(**{field: value}))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get(field)
    assert not CachePolicy.objects.filter(name="New policy").exists()


def test_a_duplicate_cache_policy_name_is_a_form_error(admin_client: Client, route: Route) -> None:
    response = admin_client.post(admin_url(CachePolicy, "add"), _policy_form(name=route.cache_policy.name))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.get("name")


def test_the_route_changelist_does_not_query_per_row(admin_client: Client, route: Route,
                                                     django_assert_num_queries: Any) -> None:
    admin_client.get(admin_url(Route, "changelist"))
    for _ in range(6):
        RouteFactory(tenant=TenantFactory(plan_slug="enterprise"), cache_policy=route.cache_policy)

    # 1 session, 2 user, 3 the cache policies for their filter, 4 the filtered count,
    # 5 the full count, 6 the page of routes joined to tenants and policies.
    with django_assert_num_queries(6):
        response = admin_client.get(admin_url(Route, "changelist"))
    assert response.status_code == 200
