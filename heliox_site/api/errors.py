"""The Heliox error body for everything Django and DRF answer: `{"error", "message",
"request_id"}` (CONTRACT.md), with `X-Request-ID`."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

log = logging.getLogger(__name__)

UNAUTHORIZED_MESSAGE = "A valid X-Admin-Key header or a staff session is required."


def error_body(code: str, message: str, **extra: Any) -> tuple[dict[str, Any], str]:
    request_id = os.urandom(16).hex()
    return {"error": code, "message": message, "request_id": request_id, **extra}, request_id


def error_response(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    body, request_id = error_body(code, message, **extra)
    response = JsonResponse(body, status=status)
    response["X-Request-ID"] = request_id
    return response


def _drf_error(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return 400, "validation_error", "The request has invalid fields.", {"fields": detail}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # One answer for a missing and a wrong key: nothing to learn from the difference.
        return 401, "unauthorized", UNAUTHORIZED_MESSAGE, {}
    if isinstance(exc, exceptions.PermissionDenied):
        return 403, "forbidden", str(exc.detail), {}
    if isinstance(exc, Http404 | exceptions.NotFound):
        return 404, "not_found", "Not found.", {}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return 405, "method_not_allowed", str(exc.detail), {}
    if isinstance(exc, exceptions.Throttled):
        return 429, "rate_limited", "Too many requests; slow down.", {"retry_after": math.ceil(exc.wait or 1)}
    if isinstance(exc, exceptions.ParseError):
        return 400, "bad_request", str(exc.detail), {}
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, exc.default_code, str(exc.detail), {}
    raise exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every API error in the Heliox shape; anything unexpected is a
    500 `internal_error` whose traceback goes to the log, never to the client."""
    try:
        status, code, message, extra = _drf_error(exc)
    except Exception:
        log.exception("unhandled error in %s", context.get("view"))
        status, code, message, extra = 500, "internal_error", "Something went wrong on our side.", {}
    body, request_id = error_body(code, message, **extra)
    headers = {"X-Request-ID": request_id}
    if status == 429:
        headers["Retry-After"] = str(extra["retry_after"])
    if status == 401:
        headers["WWW-Authenticate"] = "X-Admin-Key"
    return Response(body, status=status, headers=headers)


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: a JSON 500, never Django's page or a traceback."""
    return error_response(500, "internal_error", "Something went wrong on our side.")
