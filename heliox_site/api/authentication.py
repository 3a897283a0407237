"""The admin API's credentials: `X-Admin-Key` (ADMIN_API_KEYS, several for rotation) or a
Django staff session (the browsable API)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

if TYPE_CHECKING:  # DRF imports this module while loading rest_framework.views
    from rest_framework.views import APIView


@dataclass(frozen=True)
class AdminKeyPrincipal:
    """Who a request with a valid admin key is, for permissions and the audit log."""

    fingerprint: str  # the first 12 hex of the key's SHA-256: names the key, reveals nothing
    is_authenticated: bool = True
    is_staff: bool = True
    is_active: bool = True

    @property
    def username(self) -> str:
        return f"admin-key:{self.fingerprint}"

    def __str__(self) -> str:
        return self.username


class AdminKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AdminKeyPrincipal, None] | None:
        sent = request.headers.get("X-Admin-Key")
        if sent is None:
            return None
        sent_bytes = sent.encode("utf-8", "surrogateescape")
        # Every configured key is compared, so the time taken says nothing about which matched.
        matched = False
        for key in settings.ADMIN_API_KEYS:
            matched |= hmac.compare_digest(sent_bytes, key.encode())
        if not matched:
            raise AuthenticationFailed()
        return AdminKeyPrincipal(hashlib.sha256(sent_bytes).hexdigest()[:12]), None

    def authenticate_header(self, request: Request) -> str:
        return "X-Admin-Key"  # makes a missing credential a 401, not a 403


class IsStaffOrAdminKey(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff and user.is_active)
