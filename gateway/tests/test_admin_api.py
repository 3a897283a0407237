"""/admin/api/routes, /policies and /cache/purge."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from analytics.ingest import ingest_records
from analytics.models import RequestLog
from analytics.tests.test_ingest import record
from gateway.cache_purge import cache_backend
from gateway.config_publish import config_store, publish_snapshot
from gateway.models import CachePolicy, Route
from gateway.services import cache_policy_create, route_create
from gateway.tests.dataplane import client_for, make_gateway
from tenants.models import AuditEntry
from tenants.services import api_key_issue
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
UPSTREAM = "http://127.0.0.1:8001"


def test_creating_a_route_from_the_originals_fields(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    policy = cache_policy_create(name="Short")
    response = admin_api.post("/admin/api/routes", {
        "name": "orders", "tenant_id": tenant.pk, "methods": ["GET", "POST"], "upstream_base_url": UPSTREAM + "/v2",
        "timeout_ms": 5000, "request_headers_add": {"X-From": "heliox"}, "policy_id": policy.pk,
        "rate_limit_rps": 10, "priority": 3,
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["slug"], body["upstream_base_url"], body["policy_id"], body["tenant_id"]) == (
        "orders", UPSTREAM + "/v2", policy.pk, tenant.pk)
    route = Route.objects.get(pk=body["id"])
    assert route.upstream_targets == [{"url": UPSTREAM + "/v2", "weight": 1}] and route.methods == ["GET", "POST"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://[::ffff:169.254.169.254]/",
                                 "http://metadata.google.internal/", "file:///etc/passwd",
                                 "http://user:pw@example.com/"])
def test_an_ssrf_upstream_url_is_a_field_error(admin_api: APIClient, url: str) -> None:
    response = admin_api.post("/admin/api/routes", {"slug": "evil", "upstream_base_url": url}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["upstream_base_url"]
    assert not Route.objects.filter(slug="evil").exists()


def test_ssrf_targets_are_refused_too(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/routes", {
        "slug": "evil", "upstream_targets": [{"url": UPSTREAM}, {"url": "http://169.254.169.254/"}]}, format="json")
    assert response.status_code == 400 and "upstream_targets" in response.json()["fields"]


def test_a_route_needs_an_upstream(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/routes", {"slug": "nowhere"}, format="json")
    assert response.status_code == 400 and "upstream_base_url" in response.json()["fields"]


def test_route_names_are_unique_per_tenant_not_globally(admin_api: APIClient) -> None:
    a, b = TenantFactory(plan_slug="pro"), TenantFactory(plan_slug="pro")
    payload = {"slug": "same", "upstream_base_url": UPSTREAM}
    assert admin_api.post("/admin/api/routes", {**payload, "tenant_id": a.pk}, format="json").status_code == 201
    assert admin_api.post("/admin/api/routes", {**payload, "tenant_id": b.pk}, format="json").status_code == 201
    again = admin_api.post("/admin/api/routes", {**payload, "tenant_id": a.pk}, format="json")
    assert again.status_code == 400 and again.json()["error"] == "validation_error"
    assert admin_api.post("/admin/api/routes", payload, format="json").status_code == 201  # shared
    shared_again = admin_api.post("/admin/api/routes", payload, format="json")
    assert shared_again.status_code == 400
    assert "A shared route with this slug already exists." in str(shared_again.json()["fields"])


def test_the_plans_route_cap_is_a_validation_error(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    for n in range(tenant.plan.max_routes):
        route_create(tenant=tenant, slug=f"r{n}", upstream_url=UPSTREAM)
    response = admin_api.post("/admin/api/routes", {"slug": "extra", "tenant_id": tenant.pk,
                                                    "upstream_base_url": UPSTREAM}, format="json")
    assert response.status_code == 400 and "routes" in response.json()["fields"]["tenant"][0]


def test_patching_a_route_validates_like_django_admin(admin_api: APIClient) -> None:
    route = route_create(tenant=None, slug="shared", upstream_url=UPSTREAM)
    ok = admin_api.patch(f"/admin/api/routes/{route.pk}", {"methods": ["GET", "PUT"], "is_active": False},
                         format="json")
    assert ok.status_code == 200 and ok.json()["methods"] == ["GET", "PUT"]
    bad = admin_api.patch(f"/admin/api/routes/{route.pk}", {"methods": ["FETCH"], "timeout_ms": 1}, format="json")
    assert bad.status_code == 400 and {"methods", "timeout_ms"} <= set(bad.json()["fields"])
    route.refresh_from_db()
    assert (route.methods, route.is_active, route.timeout_ms) == (["GET", "PUT"], False, 30_000)


def test_deleting_a_route_keeps_its_request_logs(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    route = route_create(tenant=tenant, slug="gone", upstream_url=UPSTREAM)
    ingest_records([record(tenant_id=tenant.pk, route_id=route.pk) for _ in range(3)])
    assert admin_api.delete(f"/admin/api/routes/{route.pk}").status_code == 204
    assert not Route.objects.filter(pk=route.pk).exists()
    assert RequestLog.objects.filter(route_id=route.pk).count() == 3
    assert AuditEntry.objects.get(action="delete", target_type="gateway.route").before["slug"] == "gone"


def test_routes_filter_by_tenant_and_shared(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    route_create(tenant=tenant, slug="own", upstream_url=UPSTREAM)
    route_create(tenant=None, slug="common", upstream_url=UPSTREAM)
    assert [r["slug"] for r in admin_api.get("/admin/api/routes", {"tenant_id": tenant.pk}).json()["items"]] == ["own"]
    assert [r["slug"] for r in admin_api.get("/admin/api/routes", {"shared": "true"}).json()["items"]] == ["common"]


def test_route_list_query_count_is_fixed(admin_api: APIClient, django_assert_num_queries: object) -> None:
    for n in range(5):
        route_create(tenant=None, slug=f"r{n}", upstream_url=UPSTREAM)
    # 1 COUNT(*) for the page, 1 SELECT of the routes.
    with django_assert_num_queries(2):  # type: ignore[operator]
        assert len(admin_api.get("/admin/api/routes").json()["items"]) == 5


def test_policies_speak_the_originals_field_names(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/policies", {
        "name": "Catalogue", "ttl_seconds": 120, "stale_seconds": 30, "vary_headers_json": ["Accept-Language"],
        "cacheable_statuses_json": [200, 404], "cache_no_store": False, "max_body_bytes": 1024}, format="json")
    assert response.status_code == 201, response.json()
    policy = CachePolicy.objects.get(pk=response.json()["id"])
    assert (policy.stale_while_revalidate_seconds, policy.vary_headers, policy.cacheable_statuses) == (
        30, ["Accept-Language"], [200, 404])
    patched = admin_api.patch(f"/admin/api/policies/{policy.pk}", {"ttl_seconds": 60}, format="json").json()
    assert (patched["ttl_seconds"], patched["stale_seconds"]) == (60, 30)


def test_a_bad_policy_is_a_field_error(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/policies", {"name": "Bad", "cacheable_statuses_json": [99, "ok"],
                                                      "vary_headers_json": ["bad header"]}, format="json")
    assert response.status_code == 400
    assert {"cacheable_statuses", "vary_headers"} <= set(response.json()["fields"])


@pytest.mark.parametrize("body", [{}, {"all": True, "route_name": "x"}, {"prefix": "/items"}])
def test_a_purge_must_name_what_or_say_all(admin_api: APIClient, body: dict) -> None:
    response = admin_api.post("/admin/api/cache/purge", body, format="json")
    assert response.status_code == 400 and "all" in response.json()["fields"]


def test_purging_an_unknown_route_purges_nothing(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/cache/purge", {"route_name": "nope"}, format="json")
    assert response.status_code == 200 and response.json()["purged_count"] == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_purge_removes_what_a_running_gateway_cached(admin_api: APIClient, tmp_path: Path,
                                                           upstream: object) -> None:
    def world() -> str:
        policy = cache_policy_create(name="Purge API", ttl_seconds=300)
        tenant = TenantFactory(plan_slug="pro")
        route_create(tenant=tenant, slug="purgeable", upstream_url=upstream.url, cache_policy=policy)  # type: ignore[attr-defined]
        secret = api_key_issue(tenant=tenant, name="k").secret
        publish_snapshot()
        connection.close()
        return secret

    def purge(body: dict) -> dict:
        response = admin_api.post("/admin/api/cache/purge", body, format="json")
        connection.close()
        assert response.status_code == 200, response.json()
        return response.json()

    secret = await sync_to_async(world)()
    gateway = make_gateway(config_store(), tmp_path, cache_backend=cache_backend(),
                           pepper=settings.API_KEY_PEPPER.encode())
    await gateway.startup()
    try:
        async with client_for(gateway) as client:
            headers = {"X-API-Key": secret}
            for path in ("/g/purgeable/items/1", "/g/purgeable/items/2", "/g/purgeable/health"):
                await client.get(path, headers=headers)
            assert (await client.get("/g/purgeable/items/1", headers=headers)).headers["x-cache"] == "HIT"
            result = await sync_to_async(purge)({"route_name": "purgeable", "prefix": "/items"})
            assert result == {"purged_count": 2, "message": "Purged 2 cached responses."}
            assert (await client.get("/g/purgeable/items/1", headers=headers)).headers["x-cache"] == "MISS"
            assert (await client.get("/g/purgeable/health", headers=headers)).headers["x-cache"] == "HIT"
            assert (await sync_to_async(purge)({"all": True}))["purged_count"] == 2
    finally:
        await gateway.shutdown()
    entries = await sync_to_async(lambda: list(AuditEntry.objects.filter(action="cache_purge").order_by("pk")))()
    assert [e.after["purged_count"] for e in entries] == [2, 2]


def test_policy_list_query_count_is_fixed(admin_api: APIClient, django_assert_num_queries: object) -> None:
    for n in range(4):
        cache_policy_create(name=f"Policy {n}")
    # 1 COUNT(*) for the page, 1 SELECT of the policies.
    with django_assert_num_queries(2):  # type: ignore[operator]
        assert admin_api.get("/admin/api/policies").json()["total"] >= 4
