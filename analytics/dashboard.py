"""The staff dashboard in django-admin: charts over the rollups, for the whole system or
one tenant, and a live request log (polls the admin API's `logs` with the staff session)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin

from analytics import selectors
from tenants.models import Tenant

RANGES = [(1, "1 hour"), (6, "6 hours"), (24, "24 hours"), (72, "3 days"), (168, "7 days")]
_DEFAULT_HOURS = 6


def _choice(request: HttpRequest) -> tuple[int, Tenant | None]:
    try:
        hours = int(request.GET.get("hours", _DEFAULT_HOURS))
    except ValueError:
        hours = _DEFAULT_HOURS
    hours = hours if hours in dict(RANGES) else _DEFAULT_HOURS
    tenant_id = request.GET.get("tenant", "")
    tenant = Tenant.objects.filter(pk=int(tenant_id)).first() if tenant_id.isdigit() else None
    return hours, tenant


# Same-origin framing: the tenant's admin page embeds its own dashboard.
@xframe_options_sameorigin
def dashboard(request: HttpRequest) -> HttpResponse:
    hours, tenant = _choice(request)
    context = {
        **admin.site.each_context(request),
        "title": f"Traffic: {tenant.name}" if tenant else "Traffic dashboard",
        "ranges": RANGES, "hours": hours, "tenant": tenant,
        "tenants": Tenant.objects.order_by("name").only("pk", "name"),
        "embedded": request.GET.get("embed") == "1",
        "dashboard_config": {
            "data_url": reverse("heliox-dashboard-data") + "?" + urlencode(
                {"hours": hours, **({"tenant": tenant.pk} if tenant else {})}),
            "logs_url": reverse("analytics-logs") + "?" + urlencode(
                {"page_size": 15, **({"tenant_id": tenant.pk} if tenant else {})}),
            "live_interval_ms": 3000,
        },
    }
    return TemplateResponse(request, "admin/heliox/dashboard.html", context)


def dashboard_data(request: HttpRequest) -> JsonResponse:
    hours, tenant = _choice(request)
    tenant_id = tenant.pk if tenant else None
    window = selectors.Window.last(hours)
    return JsonResponse({
        "series": selectors.analytics_timeseries(hours=hours, tenant_id=tenant_id),
        "summary": selectors.analytics_summary(window=window, tenant_id=tenant_id),
        "top_keys": selectors.analytics_top_keys(window=window, limit=10, tenant_id=tenant_id)["items"],
        "top_routes": selectors.analytics_top_routes(window=window, limit=10, tenant_id=tenant_id)["items"],
    })
