"""/admin/api/analytics/…: credentials, input errors, and figures that match a brute-force
recount of the request log."""

from __future__ import annotations

import random
import statistics
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from analytics.ingest import ingest_records
from analytics.models import RequestLog
from analytics.rollups import histogram_percentile, latency_bucket
from analytics.tests.test_ingest import record
from gateway.services import route_create
from tenants.services import api_key_issue
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
ADMIN_KEY = "test-admin-key-0123456789"
ENDPOINTS = ("summary", "top-keys", "top-routes", "cache-hit-rate", "logs")


@pytest.fixture(autouse=True)
def admin_keys(settings: object) -> None:
    settings.ADMIN_API_KEYS = ["an-older-admin-key-000", ADMIN_KEY]  # type: ignore[attr-defined]


def get(client: Client, endpoint: str, **params: object) -> object:
    return client.get(f"/admin/api/analytics/{endpoint}", params, HTTP_X_ADMIN_KEY=ADMIN_KEY)


@pytest.fixture
def traffic() -> dict:
    """Mixed traffic over two tenants, three keys and two routes in the last hour."""
    rng = random.Random(7)
    tenant_a, tenant_b = TenantFactory(plan_slug="pro"), TenantFactory(plan_slug="pro")
    keys = [api_key_issue(tenant=tenant_a, name="a1").api_key, api_key_issue(tenant=tenant_a, name="a2").api_key,
            api_key_issue(tenant=tenant_b, name="b1").api_key]
    routes = [route_create(tenant=tenant_a, slug="alpha", upstream_url="http://127.0.0.1:8001"),
              route_create(tenant=tenant_b, slug="beta", upstream_url="http://127.0.0.1:8001")]
    now = time.time()
    records = []
    for _ in range(400):
        key = rng.choice(keys)
        route = routes[0] if key.tenant_id == tenant_a.pk else routes[1]
        status, error = rng.choice([(200, ""), (200, ""), (200, ""), (404, ""), (429, "rate_limited"),
                                    (429, "blocked"), (502, "upstream_error")])
        records.append(record(ts=now - rng.uniform(0, 3000), tenant_id=key.tenant_id, api_key_id=key.pk,
                              route_id=route.pk, status=status, error=error,
                              cache=rng.choice(["HIT", "MISS", "STALE", "BYPASS"]),
                              latency_ms=rng.expovariate(1 / 20)))
    records.append(record(ts=now - 60, status=401, error="missing_api_key"))  # no key, no route
    ingest_records(records)
    return {"records": records, "keys": keys, "routes": routes, "tenant_a": tenant_a}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_missing_and_a_wrong_admin_key_get_the_same_401(client: Client, endpoint: str) -> None:
    missing = client.get(f"/admin/api/analytics/{endpoint}")
    wrong = client.get(f"/admin/api/analytics/{endpoint}", HTTP_X_ADMIN_KEY="nope-nope-nope-nope")
    assert missing.status_code == wrong.status_code == 401
    assert {k: v for k, v in missing.json().items() if k != "request_id"} == \
           {k: v for k, v in wrong.json().items() if k != "request_id"} == \
           {"error": "unauthorized", "message": "A valid X-Admin-Key header or a staff session is required."}
    assert missing["X-Request-ID"] == missing.json()["request_id"]


def test_every_configured_admin_key_works_so_keys_can_be_rotated(client: Client) -> None:
    for key in ("an-older-admin-key-000", ADMIN_KEY):
        assert client.get("/admin/api/analytics/summary", HTTP_X_ADMIN_KEY=key).status_code == 200


def test_a_staff_session_works_and_a_non_staff_one_is_forbidden(client: Client) -> None:
    users = get_user_model()
    client.force_login(users.objects.create_user("member", password="x-long-password-1"))
    assert client.get("/admin/api/analytics/summary").status_code == 403
    client.force_login(users.objects.create_user("staff", password="x-long-password-2", is_staff=True))
    assert client.get("/admin/api/analytics/summary").status_code == 200


@pytest.mark.parametrize("endpoint, params, field", [
    ("summary", {"hours": 0}, "hours"), ("summary", {"hours": 169}, "hours"), ("summary", {"hours": "x"}, "hours"),
    ("top-keys", {"limit": 1000}, "limit"), ("logs", {"page_size": 101}, "page_size"),
    ("logs", {"cache_status": "WARM"}, "cache_status"), ("logs", {"since": "yesterday"}, "since"),
])
def test_bad_query_parameters_are_a_400_naming_the_field(client: Client, endpoint: str, params: dict,
                                                         field: str) -> None:
    response = get(client, endpoint, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error" and field in body["fields"]


def test_summary_matches_a_recount_of_the_log(client: Client, traffic: dict) -> None:
    body = get(client, "summary", hours=1).json()
    rows = list(RequestLog.objects.all())
    latencies = [r.latency_ms for r in rows]
    looked_up = [r for r in rows if r.cache_status in ("HIT", "MISS", "STALE")]
    assert body["total_requests"] == len(rows) == 401
    assert body["error_count"] == sum(r.status_code >= 400 for r in rows)
    assert body["rate_limited_count"] == sum(r.error_code == "rate_limited" for r in rows)
    assert body["blocked_count"] == sum(r.error_code == "blocked" for r in rows)
    assert body["unique_keys"] == 3 and body["unique_routes"] == 2
    assert body["cache_hits"] == sum(r.cache_status == "HIT" for r in rows)
    assert body["cache_hit_rate"] == round(sum(r.cache_status != "MISS" for r in looked_up) / len(looked_up), 4)
    assert body["avg_latency_ms"] == pytest.approx(statistics.fmean(latencies), abs=0.001)
    histogram = [0] * 14
    for latency in latencies:
        histogram[latency_bucket(latency)] += 1
    assert body["latency_percentiles"]["p95"] == histogram_percentile(histogram, 0.95)
    assert body["requests_per_minute"] == pytest.approx(401 / 60, abs=0.001)


def test_a_percentile_past_the_last_latency_bucket_is_null_not_a_500(client: Client) -> None:
    ingest_records([record(latency_ms=20_000)])  # past the last bound (10 s)
    response = get(client, "summary", hours=1)
    assert response.status_code == 200
    assert response.json()["latency_percentiles"] == {"p50": None, "p95": None, "p99": None}


def test_summary_for_one_tenant_counts_only_its_traffic(client: Client, traffic: dict) -> None:
    tenant = traffic["tenant_a"]
    body = get(client, "summary", hours=1, tenant_id=tenant.pk).json()
    assert body["total_requests"] == RequestLog.objects.filter(tenant_id=tenant.pk).count()


def test_top_keys_and_routes_rank_by_requests_with_names(client: Client, traffic: dict) -> None:
    keys = get(client, "top-keys", hours=1, limit=2).json()
    counts = {k.pk: RequestLog.objects.filter(api_key_id=k.pk).count() for k in traffic["keys"]}
    expected = sorted(counts, key=lambda key_id: -counts[key_id])[:2]
    assert [item["api_key_id"] for item in keys["items"]] == expected
    assert keys["items"][0]["request_count"] == counts[expected[0]]
    assert keys["items"][0]["api_key_name"] in {"a1", "a2", "b1"} and keys["items"][0]["tenant_name"]
    routes = get(client, "top-routes", hours=1).json()
    assert {item["route_name"] for item in routes["items"]} == {"alpha", "beta"}
    assert sum(item["request_count"] for item in routes["items"]) == 400


def test_cache_hit_rate_by_route_adds_up(client: Client, traffic: dict) -> None:
    body = get(client, "cache-hit-rate", hours=1).json()
    assert body["hits"] == sum(route["hits"] for route in body["by_route"])
    assert body["hits"] == sum(hour["hits"] for hour in body["by_hour"])
    assert body["hits"] == RequestLog.objects.filter(cache_status="HIT").count()


def test_logs_page_newest_first_with_filters_and_no_count_query(client: Client, traffic: dict) -> None:
    route = traffic["routes"][0]
    with CaptureQueriesContext(connection) as queries:
        first = get(client, "logs", route_id=route.pk, page_size=20).json()
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    # The page, then the names of its tenants, keys and routes: one query each.
    assert len(queries.captured_queries) == 4
    assert len(first["items"]) == 20 and first["has_more"] is True
    assert all(item["route_name"] == "alpha" for item in first["items"])
    stamps = [item["timestamp"] for item in first["items"]]
    assert stamps == sorted(stamps, reverse=True)
    total = RequestLog.objects.filter(route_id=route.pk).count()
    last_page = (total + 19) // 20
    last = get(client, "logs", route_id=route.pk, page_size=20, page=last_page).json()
    assert last["has_more"] is False and len(last["items"]) == total - 20 * (last_page - 1)
    errors = get(client, "logs", status_code=502).json()["items"]
    assert errors and all(item["error_type"] == "upstream_error" for item in errors)
