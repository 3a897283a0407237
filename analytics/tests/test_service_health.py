"""/admin/api/services/health and /admin/api/services/<name>/health: circuits as the gateways
report them, traffic from the minute rollups."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from analytics.ingest import ingest_records
from analytics.tests.test_ingest import record
from gateway.config_publish import config_store, publish_snapshot
from gateway.services import route_create
from gateway.tests.dataplane import client_for, make_gateway
from tenants.services import api_key_issue
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.mark.usefixtures("clean_metrics")
def test_a_service_with_no_failures_is_healthy_and_counts_its_recent_traffic(admin_api: APIClient) -> None:
    route = route_create(tenant=TenantFactory(), slug="orders", upstream_url="http://127.0.0.1:8001/")
    now = time.time()
    ingest_records([record(route_id=route.pk, ts=now - 30, latency_ms=20.0),
                    record(route_id=route.pk, ts=now - 20, latency_ms=40.0, status=502, error="upstream_error"),
                    record(route_id=route.pk, ts=now - 10, latency_ms=40.0, status=404),
                    record(route_id=route.pk, ts=now - 3600, status=504, error="upstream_timeout")])  # too old

    response = admin_api.get("/admin/api/services/orders/health", {"minutes": 5})

    assert response.status_code == 200
    assert response.json() == {
        "name": "orders", "status": "healthy", "minutes": 5,
        "routes": [{"route_id": route.pk, "tenant_id": route.tenant_id, "is_active": True, "status": "healthy"}],
        "targets": [{"url": "http://127.0.0.1:8001", "circuit": "closed"}],
        "requests": 3, "upstream_failures": 1, "upstream_failure_rate": 0.3333, "latency_p95_ms": 50.0,
    }


def test_an_unknown_service_is_404_in_the_heliox_shape(admin_api: APIClient) -> None:
    response = admin_api.get("/admin/api/services/nothing-here/health")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response["X-Request-ID"] == response.json()["request_id"]


def test_minutes_out_of_range_is_a_validation_error(admin_api: APIClient) -> None:
    response = admin_api.get("/admin/api/services/health", {"minutes": 0})
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert set(response.json()["fields"]) == {"minutes"}


def test_service_health_is_503_in_the_heliox_shape_when_redis_is_down(admin_api: APIClient, settings: object) -> None:
    route_create(tenant=None, slug="shared", upstream_url="http://127.0.0.1:8001")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # type: ignore[attr-defined]  # nothing listens there
    for path in ("/admin/api/services/health", "/admin/api/services/shared/health"):
        response = admin_api.get(path)
        assert response.status_code == 503
        assert response.json()["error"] == "unavailable"
        assert response["X-Request-ID"] == response.json()["request_id"]


def test_service_health_needs_the_admin_key() -> None:
    response = APIClient().get("/admin/api/services/health")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_a_dead_target_makes_its_service_down_and_the_whole_degraded(
        admin_api: APIClient, tmp_path: Path, upstream: object, clean_metrics: None) -> None:
    def world() -> tuple[str, str, int, int]:
        tenant, other = TenantFactory(plan_slug="pro"), TenantFactory(plan_slug="pro")
        route_create(tenant=tenant, slug="alive", upstream_url=upstream.url)  # type: ignore[attr-defined]
        route_create(tenant=tenant, slug="dead", upstream_url=DEAD)
        route_create(tenant=tenant, slug="half", upstream_targets=[
            {"url": upstream.url, "weight": 1}, {"url": DEAD, "weight": 1}])  # type: ignore[attr-defined]
        route_create(tenant=tenant, slug="retired", upstream_url=DEAD, is_active=False)
        # One slug, two tenants: one's route points at the dead target, the other's answers.
        broken = route_create(tenant=tenant, slug="orders", upstream_url=DEAD)
        working = route_create(tenant=other, slug="orders", upstream_url=upstream.url)  # type: ignore[attr-defined]
        secrets = api_key_issue(tenant=tenant, name="k").secret, api_key_issue(tenant=other, name="k").secret
        publish_snapshot()
        connection.close()
        return *secrets, broken.pk, working.pk

    secret, other_secret, broken_id, working_id = await sync_to_async(world)()
    gateway = make_gateway(config_store(), tmp_path, pepper=settings.API_KEY_PEPPER.encode())
    await gateway.startup()
    try:
        async with client_for(gateway) as client:
            headers = {"X-API-Key": secret}
            assert (await client.get("/g/alive/items", headers=headers)).status_code == 200
            dead = [(await client.get("/g/dead/items", headers=headers)).status_code for _ in range(6)]
            for _ in range(12):  # round robin: the dead target fails every other request until it opens
                await client.get("/g/half/items", headers=headers)
            broken_orders = [(await client.get("/g/orders/items", headers=headers)).status_code for _ in range(6)]
            assert (await client.get("/g/orders/items", headers={"X-API-Key": other_secret})).status_code == 200
        await gateway.records.flush()
    finally:
        await gateway.shutdown()
    assert dead == broken_orders == [502] * 5 + [503]

    def health() -> dict:
        body = admin_api.get("/admin/api/services/health").json()
        connection.close()
        return body

    body = await sync_to_async(health)()
    services = {service["name"]: service for service in body["services"]}
    assert body["status"] == "degraded"
    assert {name: service["status"] for name, service in services.items()} == {
        "alive": "healthy", "dead": "down", "half": "degraded", "retired": "inactive", "orders": "degraded"}
    assert {route["route_id"]: route["status"] for route in services["orders"]["routes"]} == {
        broken_id: "down", working_id: "healthy"}
    assert services["half"]["targets"] == sorted([
        {"url": upstream.url.rstrip("/"), "circuit": "closed"},  # type: ignore[attr-defined]
        {"url": DEAD, "circuit": "open"}], key=lambda target: target["url"])
    assert services["retired"]["targets"] == []
