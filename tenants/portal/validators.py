"""Rules for what a tenant may set on itself, stricter than the admin API's: staff may give a key
or a route limits past its plan (a sales deal) and point a route at an internal service; a
self-serve customer may do neither."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from billing.models import Plan
from gateway.validators import literal_address

# A key's or route's own rate limit replaces the plan's (gateway/config_publish.py), so a
# higher one would be a free upgrade.
_RATE_LIMITS = (("rate_limit_rps", "rps"), ("rate_limit_burst", "burst"))
# A key's quota replaces the plan's too, and 0 there means unlimited.
_QUOTAS = ("quota_daily", "quota_monthly")


def limits_over_plan(*, plan: Plan, limits: Mapping[str, Any]) -> dict[str, str]:
    """The limits among `limits` (a key's or a route's fields) looser than `plan`'s, with why.
    Empty (None) inherits the plan and is always within it."""
    errors = {}
    for field, plan_field in _RATE_LIMITS:
        value, cap = limits.get(field), getattr(plan, plan_field)
        if value is not None and value > cap:
            errors[field] = f"The {plan.name} plan allows at most {cap:g}; leave it empty for the plan's."
    for field in _QUOTAS:
        value, cap = limits.get(field), getattr(plan, field)
        if value is not None and cap and not 0 < value <= cap:
            errors[field] = f"The {plan.name} plan allows 1 to {cap}; leave it empty for the plan's."
    return errors


def ensure_within_plan(*, plan: Plan, limits: Mapping[str, Any]) -> None:
    errors = limits_over_plan(plan=plan, limits=limits)
    if errors:
        raise ValidationError(errors)


def validate_public_upstream_url(value: str) -> None:
    """Loopback, private and reserved addresses are refused: they reach the gateway's own
    network, which a customer's route must not. (Only literal addresses and localhost: a name
    that resolves to one needs a check when connecting, in the data plane.)"""
    if settings.PORTAL_UPSTREAM_ALLOW_PRIVATE:
        return
    host = (urlsplit(value).hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        raise ValidationError("The upstream URL must be a public address, not localhost.")
    address = literal_address(host) if host else None
    if address is not None and not address.is_global:
        raise ValidationError("The upstream URL must be a public address, not a loopback, private or "
                              "reserved one.")
