"""What a route may ask of the shared gateway processes is bounded, for customers and staff alike:
its request body limit (bodies are read into memory), its timeouts and its retry backoff."""

from __future__ import annotations

import importlib

import pytest
from rest_framework.test import APIClient

from gateway.models import (
    MAX_CONNECT_TIMEOUT_MS,
    MAX_RETRY_BACKOFF_MS,
    MAX_ROUTE_BODY_BYTES,
    MAX_UPSTREAM_TIMEOUT_MS,
    Route,
)
from tenants.tests.factories import RouteFactory, TenantFactory
from tenants.tests.test_portal_api import portal_client

pytestmark = pytest.mark.django_db
CEILINGS = {"max_body_bytes": MAX_ROUTE_BODY_BYTES, "timeout_ms": MAX_UPSTREAM_TIMEOUT_MS,
            "read_timeout_ms": MAX_UPSTREAM_TIMEOUT_MS, "connect_timeout_ms": MAX_CONNECT_TIMEOUT_MS,
            "retry_backoff_ms": MAX_RETRY_BACKOFF_MS}


@pytest.mark.parametrize(("field", "ceiling"), CEILINGS.items())
def test_a_customer_cannot_set_a_route_past_a_ceiling(field: str, ceiling: int) -> None:
    tenant = TenantFactory(plan_slug="pro")
    route = RouteFactory(tenant=tenant)
    owner = portal_client(tenant)

    refused = owner.patch(f"/portal/routes/{route.pk}", {field: ceiling + 1}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "validation_error" and set(refused.json()["fields"]) == {field}
    assert owner.patch(f"/portal/routes/{route.pk}", {field: ceiling}, format="json").status_code == 200
    assert Route.objects.values_list(field, flat=True).get(pk=route.pk) == ceiling


def test_staff_meet_the_same_ceiling_through_the_admin_api(admin_api: APIClient) -> None:
    route = RouteFactory(tenant=None)
    response = admin_api.patch(f"/admin/api/routes/{route.pk}", {"max_body_bytes": 2**31 - 1}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"max_body_bytes"}
    assert Route.objects.get(pk=route.pk).max_body_bytes == 10 * 1024 * 1024


def test_the_upgrade_clamps_a_route_already_past_a_ceiling_so_its_owner_can_edit_it() -> None:
    from django.apps import apps

    clamp = importlib.import_module("gateway.migrations.0003_route_limits_ceilings").clamp_to_ceilings
    tenant = TenantFactory(plan_slug="pro")
    route, within = RouteFactory(tenant=tenant), RouteFactory(tenant=tenant)
    past = {field: ceiling * 4 for field, ceiling in CEILINGS.items()}
    Route.objects.filter(pk=route.pk).update(**past)  # as saved before the ceilings existed

    clamp(apps, None)

    assert Route.objects.values(*CEILINGS).get(pk=route.pk) == CEILINGS
    untouched = Route.objects.values(*CEILINGS).get(pk=within.pk)
    assert all(untouched[field] < ceiling for field, ceiling in CEILINGS.items())
    renamed = portal_client(tenant).patch(f"/portal/routes/{route.pk}", {"name": "Renamed"}, format="json")
    assert renamed.status_code == 200, renamed.json()
