"""Ops metrics endpoints (Django): `/metrics` (JSON) and `/metrics/prometheus`."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from analytics.metrics import metrics_json, metrics_prometheus
from gateway.runtime.store import StoreError
from heliox_site.api.errors import error_response

log = logging.getLogger(__name__)
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _refused(request: HttpRequest) -> JsonResponse | None:
    """With METRICS_BEARER_TOKEN set, scrapers must send it; without, the endpoints are open."""
    token = settings.METRICS_BEARER_TOKEN
    if not token:
        return None
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return error_response(401, "unauthorized", "Send Authorization: Bearer <METRICS_BEARER_TOKEN>.")
    return None


def _serve(request: HttpRequest, render: Callable[[], HttpResponse]) -> HttpResponse:
    if refused := _refused(request):
        return refused
    try:
        return render()
    except StoreError:
        log.warning("metrics: the store is unavailable", exc_info=True)
        return error_response(503, "unavailable", "The metrics store (Redis) is unavailable.")


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return _serve(request, lambda: JsonResponse(metrics_json()))


@require_GET
def metrics_prometheus_text(request: HttpRequest) -> HttpResponse:
    return _serve(request, lambda: HttpResponse(metrics_prometheus(), content_type=PROMETHEUS_CONTENT_TYPE))
