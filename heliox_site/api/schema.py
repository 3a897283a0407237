"""What drf-spectacular cannot see by itself: the admin-key scheme, and the endpoints the
data plane serves outside Django's URLconf (the proxy, /ready), added to /openapi.json."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_parameter_type
from drf_spectacular.utils import OpenApiParameter


class AdminKeyScheme(OpenApiAuthenticationExtension):
    target_class = "heliox_site.api.authentication.AdminKeyAuthentication"
    name = "adminKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "header", "name": "X-Admin-Key"}


_STRING = {"type": "string"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "request_id"],
    "properties": {
        "error": {"type": "string", "example": "rate_limited"},
        "message": {"type": "string"},
        "request_id": {"type": "string"},
        "fields": {"type": "object", "description": "validation_error only: the messages per field"},
    },
}


def _proxy_operation(method: str) -> dict[str, Any]:
    errors = {
        "401": "missing_api_key / invalid_api_key", "403": "tenant_suspended / forbidden",
        "404": "route_not_found", "405": "method_not_allowed", "413": "payload_too_large",
        "429": "rate_limited / quota_exceeded / blocked (with Retry-After)", "502": "upstream_error",
        "503": "circuit_open / unavailable", "504": "upstream_timeout",
    }
    return {
        "operationId": f"proxy_{method}",
        "tags": ["proxy"],
        "summary": "Forward to the route's upstream",
        "description": (
            "Served by the data plane. Authenticated by `X-API-Key`; rate limits and quotas apply. "
            "The upstream's answer is passed through (streamed) with `X-Cache` (HIT|MISS|STALE|BYPASS), "
            "`Age`, `X-Request-ID`, `X-RateLimit-Limit/Remaining/Reset`, `RateLimit-Policy`, `RateLimit` "
            "and `X-Gateway-Overhead-Ms`. The gateway's own errors have the body below."
        ),
        "security": [{"apiKey": []}],
        "parameters": [
            build_parameter_type("route", _STRING, OpenApiParameter.PATH, description="The route's slug"),
            build_parameter_type("path", _STRING, OpenApiParameter.PATH, description="The path below the route"),
        ],
        "responses": {
            "200": {"description": "The upstream's response, as it sent it"},
            **{status: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
               for status, text in errors.items()},
        },
    }


def add_data_plane_endpoints(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    components.setdefault("securitySchemes", {})["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    result["paths"]["/g/{route}/{path}"] = {
        method: _proxy_operation(method) for method in ("get", "post", "put", "patch", "delete")
    }
    result["paths"]["/ready"] = {"get": {
        "operationId": "ready", "tags": ["ops"], "summary": "Readiness: 200 once a config snapshot is loaded",
        "security": [],
        "responses": {"200": {"description": "ready"}, "503": {"description": "no snapshot loaded yet"}},
    }}
    return result
