"""The portal's OpenAPI operations list the error answers too, each in the Heliox error body."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from tenants.accounts.serializers import AccountErrorSerializer

UNAUTHORIZED = "unauthorized: no valid access token (an X-Admin-Key does not count here)."
FORBIDDEN = "forbidden: the account belongs to no tenant, or its role cannot make this change."
INVALID = "validation_error, with the messages by field in `fields`; bad_request for a body that is not JSON."
NOT_FOUND = "not_found: no such object in the caller's tenant (another tenant's is not found either)."


class PortalAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        # A private hook of drf-spectacular's, but the one place every operation's answers are
        # made: the alternative is repeating these four on every action.
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_answers().items():
            responses.setdefault(code, self._get_response_for_code(
                OpenApiResponse(AccountErrorSerializer, description=description), code, direction=direction))
        return responses

    def _error_answers(self) -> dict[str, str]:
        answers = {"401": UNAUTHORIZED, "403": FORBIDDEN}
        listing = self.method == "GET" and self._is_list_view()
        if self.method in ("POST", "PATCH") or listing or getattr(self.view, "query_class", None):
            answers["400"] = INVALID
        if "{" in self.path or listing or getattr(self.view, "may_be_missing", False):
            answers["404"] = NOT_FOUND  # a list's page past the last is one too
        return answers
