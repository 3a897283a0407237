"""django-admin for the request log and its rollups: read-only, and the log is listed without
counting it, without scanning it for filter values and without a query per row."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.ingest import ingest_records
from analytics.models import RequestLog, RequestRollup
from gateway.models import Route
from gateway.runtime.records import Record
from tenants.models import ApiKey
from tenants.tests.factories import (
    ApiKeyFactory,
    RouteFactory,
    admin_url,
    assert_admin_pages_render,
    registered_models,
    staff_with_every_permission,
)

pytestmark = pytest.mark.django_db


def _record(api_key: ApiKey, route: Route, **extra: Any) -> Record:
    fields = {"request_id": uuid.uuid4().hex, "ts": time.time(), "tenant_id": api_key.tenant_id,
              "api_key_id": api_key.pk, "route_id": route.pk, "method": "GET", "path": "/items", "status": 200,
              "latency_ms": 2.0, "client_ip": "203.0.113.1"}
    return Record(**fields | extra)


@pytest.fixture
def traffic() -> tuple[ApiKey, Route]:
    api_key = ApiKeyFactory()
    route = RouteFactory(tenant=api_key.tenant)
    ingest_records([_record(api_key, route), _record(api_key, route, status=502, path="/broken")])
    RequestRollup.objects.create(granularity="hour", bucket_start=timezone.now(), tenant_id=api_key.tenant_id,
                                 status_class=2, cache_status="HIT", count=1)
    return api_key, route


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(staff_with_every_permission())
    return client


def _requestlog_sql(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].upper() for q in queries.captured_queries if "ANALYTICS_REQUESTLOG" in q["sql"].upper()]


@pytest.mark.parametrize("model", registered_models("analytics"), ids=lambda m: m._meta.label)
def test_every_analytics_page_renders_for_a_superuser(admin_client: Client, traffic: Any,
                                                      model: type[models.Model]) -> None:
    assert_admin_pages_render(admin_client, model)


@pytest.mark.parametrize("model", registered_models("analytics"), ids=lambda m: m._meta.label)
def test_every_analytics_page_renders_for_staff_with_every_permission(staff_client: Client, traffic: Any,
                                                                      model: type[models.Model]) -> None:
    assert_admin_pages_render(staff_client, model)


@pytest.mark.parametrize("query", ["", "?status_class=5", "?method=GET&cache_status__exact=BYPASS", "?q=nope", "?p=2"])
def test_the_request_log_is_listed_without_counting_or_scanning_it(admin_client: Client, traffic: Any,
                                                                   query: str) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(admin_url(RequestLog, "changelist") + query)

    assert response.status_code == 200
    assert [sql for sql in _requestlog_sql(queries) if "COUNT(" in sql or "DISTINCT" in sql] == []


def test_the_request_log_filters_by_status_class(admin_client: Client, traffic: Any) -> None:
    html = admin_client.get(admin_url(RequestLog, "changelist") + "?status_class=5").content.decode()

    assert "/broken" in html
    assert "/items" not in html


def test_the_request_log_changelist_does_not_query_per_row(admin_client: Client, traffic: tuple[ApiKey, Route],
                                                           django_assert_num_queries: Any) -> None:
    api_key, route = traffic
    admin_client.get(admin_url(RequestLog, "changelist"))
    ingest_records([_record(api_key, route) for _ in range(20)])

    # 1 session, 2 user, 3 the page of log rows (ids shown raw; no count, no related rows).
    with django_assert_num_queries(3):
        response = admin_client.get(admin_url(RequestLog, "changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", [RequestLog, RequestRollup])
def test_the_log_and_rollups_are_read_only_even_with_every_permission(staff_client: Client, traffic: Any,
                                                                      model: type[models.Model]) -> None:
    obj = model._default_manager.first()

    assert staff_client.get(admin_url(model, "add")).status_code == 403
    assert staff_client.post(admin_url(model, "change", obj.pk), {}).status_code == 403
    assert staff_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    changelist = staff_client.get(admin_url(model, "changelist"))
    assert changelist.context["action_form"] is None  # no bulk delete
    assert model._default_manager.filter(pk=obj.pk).exists()


def test_route_traffic_shows_its_sketch_estimates(admin_client: Client, traffic: tuple[ApiKey, Route]) -> None:
    _, route = traffic

    html = admin_client.get(admin_url(Route, "change", route.pk)).content.decode()

    assert "2 requests, ~1 unique client IPs" in html
    assert "/items" in html
