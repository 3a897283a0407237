"""Ops endpoints served by Django (the data plane answers /ready itself)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from gateway.config_publish import config_store


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _redis_ok() -> bool | None:
    if settings.EMBEDDED:
        return None
    try:
        return bool(config_store().sync.ping())  # type: ignore[attr-defined]
    except Exception:
        return False


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness with component status (the original's shape); 200 even when degraded."""
    database = _database_ok()
    redis_ok = _redis_ok()
    components = {
        "database": "ok" if database else "unavailable",
        "redis": "embedded" if redis_ok is None else ("ok" if redis_ok else "unavailable"),
    }
    healthy = database and redis_ok is not False
    return JsonResponse({
        "status": "healthy" if healthy else "degraded",
        "version": settings.GATEWAY_VERSION,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "components": components,
    })
