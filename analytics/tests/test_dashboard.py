"""The staff dashboard: its data endpoint, and the page rendered with data in a real
headless Chromium (skipped, with the reason, only where no browser can be had)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analytics.ingest import ingest_records
from analytics.tests.test_ingest import record
from gateway.services import route_create
from tenants.services import api_key_issue
from tenants.tests.factories import TenantFactory

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "dashboard-password-1"


def seed_traffic() -> tuple[object, object]:
    tenant, other = TenantFactory(plan_slug="pro"), TenantFactory(plan_slug="pro")
    key = api_key_issue(tenant=tenant, name="dashboard-key").api_key
    other_key = api_key_issue(tenant=other, name="other-key").api_key
    route = route_create(tenant=tenant, slug="charts", upstream_url="http://127.0.0.1:8001")
    now = time.time()
    records = [record(ts=now - i * 20, tenant_id=tenant.pk, api_key_id=key.pk, route_id=route.pk,
                      status=200 if i % 5 else 502, error="" if i % 5 else "upstream_error",
                      cache="HIT" if i % 2 else "MISS", latency_ms=3 + i % 40) for i in range(150)]
    records += [record(ts=now - 30, tenant_id=other.pk, api_key_id=other_key.pk, status=429, error="rate_limited")]
    ingest_records(records)
    return tenant, other


def staff_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("staff", password=PASSWORD, is_staff=True))
    return client


@pytest.mark.django_db
def test_the_dashboard_data_covers_the_window_and_narrows_to_a_tenant() -> None:
    tenant, _ = seed_traffic()
    client = staff_client()
    everything = client.get("/admin/dashboard/data", {"hours": 1}).json()
    assert everything["summary"]["total_requests"] == 151
    assert sum(everything["series"]["requests"]) == 151
    assert sum(everything["series"]["upstream_errors"]) == 30
    assert sum(everything["series"]["rate_limited"]) == 1
    assert everything["series"]["step_seconds"] == 60
    assert everything["series"]["cache"]["HIT"] == 75
    assert everything["top_routes"][0]["route_name"] == "charts"
    mine = client.get("/admin/dashboard/data", {"hours": 1, "tenant": tenant.pk}).json()  # type: ignore[attr-defined]
    assert mine["summary"]["total_requests"] == 150
    assert [k["api_key_name"] for k in mine["top_keys"]] == ["dashboard-key"]


@pytest.mark.django_db
def test_the_dashboard_is_for_staff_only() -> None:
    anonymous = Client().get("/admin/dashboard/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert Client().get("/admin/dashboard/data").status_code == 302
    member = Client()
    member.force_login(get_user_model().objects.create_user("member", password=PASSWORD))
    assert member.get("/admin/dashboard/").status_code == 302


@pytest.mark.django_db
def test_the_tenant_admin_page_embeds_its_own_dashboard() -> None:
    tenant, _ = seed_traffic()
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("boss", password=PASSWORD))
    page = client.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()  # type: ignore[attr-defined]
    assert f"/admin/dashboard/?tenant={tenant.pk}&amp;embed=1" in page  # type: ignore[attr-defined]
    framed = client.get("/admin/dashboard/", {"tenant": tenant.pk, "embed": "1"})  # type: ignore[attr-defined]
    assert framed["X-Frame-Options"] == "SAMEORIGIN"


def _browser() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine (Debian package 'chromium'; .ci/run installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (requirements-test.txt)")
    return chromium


# The live server reads from another thread, so the data is committed.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_dashboard_renders_charts_and_the_live_log_in_a_real_browser(live_server: object) -> None:
    chromium = _browser()
    from playwright.sync_api import sync_playwright

    seed_traffic()
    get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{live_server.url}/admin/login/?next=/admin/dashboard/%3Fhours%3D1")  # type: ignore[attr-defined]
            page.fill("#id_username", "viewer")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#hx-dashboard[data-charts='4']", timeout=15_000)
            page.wait_for_selector("#hx-dashboard[data-live-rows='15']", timeout=15_000)
            kpis = page.inner_text("#hx-kpis")
            top_route = page.inner_text("#hx-top-routes tr:first-child td:first-child")
            canvases_drawn = page.evaluate(
                "[...document.querySelectorAll('canvas')].every(c => c.width > 0 && Chart.getChart(c))")
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert "151" in kpis and "Rate limited" in kpis
    assert top_route == "charts"
    assert canvases_drawn
