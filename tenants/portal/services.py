"""Writes the portal makes beyond the tenants and gateway services."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing.models import Plan, Subscription
from gateway.models import Route
from gateway.services import ensure_route_capacity
from tenants.models import ApiKey, Tenant
from tenants.portal.validators import limits_over_plan
from tenants.services import ensure_key_capacity, tenant_change_plan


def subscription_change_plan(*, tenant: Tenant, plan: Plan) -> Subscription:
    """Move the tenant to `plan`, if it fits the plan's caps and limits.

    Payment is out of scope, and this is where it goes: a payment provider would be called
    here (charge or prorate an upgrade, confirm a downgrade) before `tenant_change_plan`, and
    the plan changed only once it has said yes. Views call this, never `tenant_change_plan`."""
    with transaction.atomic():
        # The same lock key issue and route creation take: nothing is added while we check.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        _ensure_tenant_fits(tenant=tenant, plan=plan)
        tenant_change_plan(tenant=tenant, plan=plan)
    return Subscription.objects.select_related("plan").get(tenant=tenant)


def _ensure_tenant_fits(*, tenant: Tenant, plan: Plan) -> None:
    """A downgrade the tenant has outgrown is refused, with what to remove or lower first: it
    would otherwise keep what the plan it leaves allowed."""
    problems: list[str] = []
    # The counts are the ones issue and create enforce, with the new plan's caps.
    on_new_plan = Tenant(pk=tenant.pk, name=tenant.name, plan=plan)
    for ensure in (ensure_key_capacity, ensure_route_capacity):
        try:
            ensure(on_new_plan, adding=0)
        except ValidationError as exc:
            problems.extend(f"{message} Remove some first." for message in exc.messages)
    now = timezone.now()
    keys = (ApiKey.objects.filter(tenant=tenant, status=ApiKey.Status.ACTIVE).exclude(grace_until__lte=now)
            .values("name", "rate_limit_rps", "rate_limit_burst", "quota_daily", "quota_monthly"))
    routes = Route.objects.filter(tenant=tenant).values("slug", "rate_limit_rps", "rate_limit_burst")
    for kind, label, rows in (("Key", "name", keys), ("Route", "slug", routes)):
        for row in rows:
            for field, message in limits_over_plan(plan=plan, limits=row).items():
                problems.append(f"{kind} {row[label]!r}: {field} is above the plan's. {message}")
    if problems:
        raise ValidationError({"plan_id": problems})
