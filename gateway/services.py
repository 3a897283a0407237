"""Writes to routes and cache policies, with the plan's route cap."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from gateway.models import CachePolicy, Route
from tenants.models import Tenant


def ensure_route_capacity(tenant: Tenant | None, *, adding: int = 1) -> None:
    if tenant is None:  # shared routes are staff-made and outside any plan
        return
    cap = tenant.plan.max_routes
    if not cap:
        return
    count = Route.objects.filter(tenant=tenant).count()
    if count + adding > cap:
        raise ValidationError(
            {"tenant": f"The {tenant.plan.name} plan allows {cap} routes; {tenant.name} has {count}."}
        )


@transaction.atomic
def route_create(*, tenant: Tenant | None, slug: str, upstream_url: str = "",
                 upstream_targets: list[dict[str, Any]] | None = None, name: str = "",
                 **fields: Any) -> Route:
    if tenant is not None:
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # serialise the cap check
    ensure_route_capacity(tenant)
    targets = upstream_targets or [{"url": upstream_url, "weight": 1}]
    route = Route(tenant=tenant, slug=slug, name=name or slug, upstream_targets=targets, **fields)
    route.full_clean()
    route.save()
    return route


def route_update(*, route: Route, **fields: Any) -> Route:
    for name, value in fields.items():
        setattr(route, name, value)
    route.full_clean()
    route.save()
    return route


def cache_policy_create(**fields: Any) -> CachePolicy:
    policy = CachePolicy(**fields)
    policy.full_clean()
    policy.save()
    return policy
