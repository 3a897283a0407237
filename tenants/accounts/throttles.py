"""Who a login or e-mail flow is counted against: the client's address (trusted-proxy aware,
like the gateway's) and, for password guesses, the account."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from gateway.runtime.clientip import ClientIpResolver
from tenants.accounts.services import normalise_email

if TYPE_CHECKING:
    from rest_framework.views import APIView

# A request without a socket address (a unix-socket listener that sets none) shares one
# bucket: failing open would leave such a deployment with no per-client limit at all.
UNKNOWN_CLIENT = "unknown"


@functools.lru_cache(maxsize=8)
def _resolver(trusted_proxies: tuple[str, ...]) -> ClientIpResolver:
    # Keyed by the setting's value, so a changed TRUSTED_PROXIES (a test's override) takes effect.
    return ClientIpResolver(list(trusted_proxies))


def client_ip(request: Request) -> str:
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    # Servers decode header bytes as latin-1; encoding back gives the resolver what the gateway sees.
    forwarded_bytes = forwarded.encode("latin-1", "replace") if forwarded is not None else None
    resolved = _resolver(tuple(settings.TRUSTED_PROXIES)).resolve(request.META.get("REMOTE_ADDR"), forwarded_bytes)
    return resolved or UNKNOWN_CLIENT


class ClientIpThrottle(SimpleRateThrottle):
    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class LoginIpThrottle(ClientIpThrottle):
    scope = "login_ip"


class SignupIpThrottle(ClientIpThrottle):
    scope = "signup_ip"


class EmailIpThrottle(ClientIpThrottle):
    """Verification, resend and password reset: the flows that send mail or check a mailed code."""

    scope = "email_ip"


class _SubmittedAddressThrottle(SimpleRateThrottle):
    """Counted against the e-mail address in the body, whichever client sends it."""

    def account(self, request: Request) -> str | None:
        data = request.data
        email = data.get("email") if isinstance(data, Mapping) else None
        return normalise_email(email) if isinstance(email, str) and email.strip() else None

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        account = self.account(request)
        if account is None:
            return None  # nothing to guess against; the serializer refuses the body
        # Hashed: the cache key has a bounded length and the store holds no addresses.
        ident = hashlib.sha256(account.encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LoginAccountThrottle(_SubmittedAddressThrottle):
    """Password guesses against one account, whichever addresses they come from.

    Every attempt counts, a right one too: telling them apart would need the password checked
    first, which is the work the limit exists to bound."""

    scope = "login_account"


class MailedAddressThrottle(_SubmittedAddressThrottle):
    """Verification mail sent to one address (a signup's code or notice, a new code), however
    many clients ask: the per-client limit alone let a botnet flood someone's inbox.

    Anyone can spend an address's budget, so it is a way to delay someone's mail; the reset
    flow has a budget of its own (ResetAddressThrottle), so flooding signups cannot keep an
    owner from resetting a password."""

    scope = "email_address"


class ResetAddressThrottle(_SubmittedAddressThrottle):
    """Password-reset mail sent to one address, however many clients ask."""

    scope = "reset_address"


class PasswordChangeAccountThrottle(LoginAccountThrottle):
    """`old_password` is a password guess too: it shares the account's login bucket, so a stolen
    access token cannot be used to guess the password faster than the login form allows."""

    def account(self, request: Request) -> str | None:
        user = request.user
        return normalise_email(user.get_username()) if user is not None and user.is_authenticated else None
