"""The gateway's own error responses: `{"error", "message", "request_id"}` (CONTRACT.md)."""

from __future__ import annotations

import json


class GatewayError(Exception):
    """An answer the gateway gives itself, with its code, status and extra headers."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: list[tuple[bytes, bytes]] | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []
        self.extra = extra or {}

    def body(self, request_id: str) -> bytes:
        payload = {"error": self.code, "message": self.message, "request_id": request_id, **self.extra}
        return json.dumps(payload, separators=(",", ":")).encode()


def missing_api_key() -> GatewayError:
    return GatewayError(401, "missing_api_key", "Send your API key in the X-API-Key header.")


def invalid_api_key() -> GatewayError:
    # Unknown, malformed, revoked, expired: one answer, so a key's state never leaks.
    return GatewayError(401, "invalid_api_key", "The API key is not valid.")


def tenant_suspended() -> GatewayError:
    return GatewayError(403, "tenant_suspended", "This tenant is suspended.")


def forbidden(why: str) -> GatewayError:
    return GatewayError(403, "forbidden", why)


def route_not_found() -> GatewayError:
    # The same for an unknown route and another tenant's: no enumeration.
    return GatewayError(404, "route_not_found", "No such route.")


def method_not_allowed(allowed: list[str]) -> GatewayError:
    return GatewayError(405, "method_not_allowed", "This route does not accept that method.",
                        headers=[(b"allow", ", ".join(allowed).encode())])


def payload_too_large(limit: int) -> GatewayError:
    return GatewayError(413, "payload_too_large", f"The request body exceeds this route's limit of {limit} bytes.")


def headers_too_large(limit: int) -> GatewayError:
    return GatewayError(431, "headers_too_large", f"The request headers exceed {limit} bytes.")


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, "bad_request", message)


def upstream_error(message: str = "The upstream could not be reached.") -> GatewayError:
    return GatewayError(502, "upstream_error", message)


def upstream_timeout() -> GatewayError:
    return GatewayError(504, "upstream_timeout", "The upstream did not answer within the route's deadline.")


def circuit_open() -> GatewayError:
    return GatewayError(503, "circuit_open", "The upstream is failing; the gateway is not calling it for now.")


def unavailable(message: str) -> GatewayError:
    return GatewayError(503, "unavailable", message)


def internal_error() -> GatewayError:
    return GatewayError(500, "internal_error", "The gateway failed to handle this request.")
