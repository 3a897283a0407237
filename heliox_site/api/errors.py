"""The Heliox error body for everything Django and DRF answer: `{"error", "message",
"request_id"}` (CONTRACT.md), with `X-Request-ID`."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError
from django.db.models import ProtectedError, RestrictedError
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


def _django_fields(exc: DjangoValidationError) -> dict[str, Any]:
    # The services' model validation (plan caps, SSRF checks) speaks Django's dialect.
    if hasattr(exc, "error_dict"):
        return {("non_field_errors" if name == "__all__" else name): messages
                for name, messages in exc.message_dict.items()}
    return {"non_field_errors": exc.messages}


def _drf_error(exc: Exception, unauthorized_message: str) -> tuple[int, str, str, dict[str, Any]]:
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return 400, "validation_error", "The request has invalid fields.", {"fields": detail}
    if isinstance(exc, DjangoValidationError):
        return 400, "validation_error", "The request has invalid fields.", {"fields": _django_fields(exc)}
    if isinstance(exc, ProtectedError | RestrictedError):
        return 409, "conflict", "Other objects still use this one; change or remove them first.", {}
    if isinstance(exc, OperationalError | InterfaceError) or type(exc) is DatabaseError:
        # DESIGN.md §4: with the database down the data plane serves on; writes here fail fast.
        log.warning("database unavailable: %s", exc)
        return 503, "unavailable", "The control plane's database is unavailable; try again shortly.", {}
    if isinstance(exc, IntegrityError):
        # A uniqueness race that validation checked a moment too early.
        return 409, "conflict", "The change conflicts with existing data; reload and try again.", {}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # One answer for a missing and a wrong credential: nothing to learn from the difference.
        return 401, "unauthorized", unauthorized_message, {}
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
    view = context.get("view")
    try:
        status, code, message, extra = _drf_error(exc, getattr(view, "unauthorized_message", UNAUTHORIZED_MESSAGE))
    except Exception:
        log.exception("unhandled error in %s", view)
        status, code, message, extra = 500, "internal_error", "Something went wrong on our side.", {}
    body, request_id = error_body(code, message, **extra)
    headers = {"X-Request-ID": request_id}
    if status == 429:
        headers["Retry-After"] = str(extra["retry_after"])
    if status == 401:
        # Set by APIView.handle_exception from the view's first authenticator.
        headers["WWW-Authenticate"] = getattr(exc, "auth_header", None) or "X-Admin-Key"
    return Response(body, status=status, headers=headers)


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: a JSON 500, never Django's page or a traceback."""
    return error_response(500, "internal_error", "Something went wrong on our side.")
