"""Writes to tenants and keys. Views, admin actions, commands and the APIs call these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from billing.models import Plan, Subscription
from gateway.runtime.keys import display_prefix, generate_secret, hash_secret, is_well_formed
from tenants.models import ApiKey, Tenant

DEFAULT_ROTATION_GRACE = dt.timedelta(hours=24)


@dataclass(frozen=True)
class IssuedKey:
    """A key and its secret. The secret exists only here: show it once, then drop it."""

    api_key: ApiKey
    secret: str


def key_hash(secret: str) -> str:
    return hash_secret(secret, settings.API_KEY_PEPPER.encode())


def default_plan() -> Plan:
    return Plan.objects.get(slug="free")


@transaction.atomic
def tenant_create(*, name: str, plan: Plan | None = None, slug: str = "", description: str = "",
                  trial_days: int = 0) -> Tenant:
    plan = plan or default_plan()
    tenant = Tenant(name=name, slug=slug or slugify(name)[:60], description=description, plan=plan)
    tenant.full_clean()
    tenant.save()
    now = timezone.now()
    Subscription.objects.create(
        tenant=tenant, plan=plan,
        status=Subscription.Status.TRIALING if trial_days else Subscription.Status.ACTIVE,
        current_period_start=now, current_period_end=now + dt.timedelta(days=30),
        trial_ends_at=now + dt.timedelta(days=trial_days) if trial_days else None,
    )
    return tenant


def tenant_set_status(*, tenant: Tenant, status: str) -> Tenant:
    tenant.status = status
    tenant.save(update_fields=["status", "updated_at"])
    return tenant


def tenant_change_plan(*, tenant: Tenant, plan: Plan) -> Tenant:
    with transaction.atomic():
        tenant.plan = plan
        tenant.save(update_fields=["plan", "updated_at"])
        Subscription.objects.filter(tenant=tenant).update(plan=plan, updated_at=timezone.now())
    return tenant


def ensure_key_capacity(tenant: Tenant, *, adding: int = 1) -> None:
    cap = tenant.plan.max_keys
    if not cap:
        return
    # A rotated-out key holds its slot only while its grace lasts.
    active = (ApiKey.objects.filter(tenant=tenant, status=ApiKey.Status.ACTIVE)
              .exclude(grace_until__lte=timezone.now()).count())
    if active + adding > cap:
        raise ValidationError(
            {"tenant": f"The {tenant.plan.name} plan allows {cap} active keys; {tenant.name} has {active}."}
        )


def _key_fields(secret: str) -> dict[str, str]:
    if not is_well_formed(secret):
        raise ValidationError({"secret": "A key is 8 to 128 printable ASCII characters without spaces."})
    return {"key_hash": key_hash(secret), "prefix": display_prefix(secret), "last4": secret[-4:]}


@transaction.atomic
def api_key_issue(*, tenant: Tenant, name: str, environment: str = ApiKey.Environment.LIVE,
                  expires_at: dt.datetime | None = None, scopes: Sequence[str] = (),
                  allowed_routes: Sequence[str] = (), ip_allowlist: Sequence[str] = (),
                  rate_limit_rps: float | None = None, rate_limit_burst: int | None = None,
                  rate_limit_algorithm: str = "", quota_daily: int | None = None,
                  quota_monthly: int | None = None, secret: str | None = None) -> IssuedKey:
    """Issue a key. `secret` is for seeding fixed demo keys only; normally it is generated."""
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # serialise the cap check
    ensure_key_capacity(tenant)
    secret = secret or generate_secret(environment)
    api_key = ApiKey(
        tenant=tenant, name=name, environment=environment, expires_at=expires_at, scopes=list(scopes),
        allowed_routes=list(allowed_routes), ip_allowlist=list(ip_allowlist), rate_limit_rps=rate_limit_rps,
        rate_limit_burst=rate_limit_burst, rate_limit_algorithm=rate_limit_algorithm,
        quota_daily=quota_daily, quota_monthly=quota_monthly, **_key_fields(secret),
    )
    api_key.full_clean()
    api_key.save()
    return IssuedKey(api_key=api_key, secret=secret)


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, grace: dt.timedelta = DEFAULT_ROTATION_GRACE) -> IssuedKey:
    """A new secret with the same settings; the old one keeps working until the grace ends."""
    if api_key.status != ApiKey.Status.ACTIVE:
        raise ValidationError({"status": "Only an active key can be rotated."})
    if grace < dt.timedelta(0):
        raise ValidationError({"grace_seconds": "The grace period cannot be negative."})
    secret = generate_secret(api_key.environment)
    new_key = ApiKey.objects.create(
        tenant=api_key.tenant, name=api_key.name, environment=api_key.environment,
        expires_at=api_key.expires_at, scopes=api_key.scopes, allowed_routes=api_key.allowed_routes,
        ip_allowlist=api_key.ip_allowlist, rate_limit_rps=api_key.rate_limit_rps,
        rate_limit_burst=api_key.rate_limit_burst, rate_limit_algorithm=api_key.rate_limit_algorithm,
        quota_daily=api_key.quota_daily, quota_monthly=api_key.quota_monthly, rotated_from=api_key,
        **_key_fields(secret),
    )
    if grace:
        api_key.grace_until = timezone.now() + grace
        api_key.save(update_fields=["grace_until", "updated_at"])
    else:
        api_key_revoke(api_key=api_key)
    return IssuedKey(api_key=new_key, secret=secret)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    api_key.status = ApiKey.Status.REVOKED
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["status", "revoked_at", "updated_at"])
    return api_key


def tenant_update(*, tenant: Tenant, **fields: Any) -> Tenant:
    """Name, slug, description; the status and the plan have services of their own."""
    for name, value in fields.items():
        setattr(tenant, name, value)
    tenant.full_clean()
    tenant.save()
    return tenant


def api_key_update(*, api_key: ApiKey, **fields: Any) -> ApiKey:
    """Limits, scopes, allowlists, name, expiry. Revoking has its own service; a key never
    changes tenant or secret."""
    for name, value in fields.items():
        setattr(api_key, name, value)
    api_key.full_clean()
    api_key.save()
    return api_key
