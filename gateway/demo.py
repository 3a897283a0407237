"""The original Heliox Proxy's demo (DESIGN.md §5), so the same curl scripts run against us.

The demo keys are fixed on purpose and exist only here: nothing else hard-codes a key.
Every object is found by its natural key (a tenant's slug, a key's hash, a policy's name,
a route's tenant and slug) and brought back to the values below, so a rerun writes nothing
unless someone changed the demo, and then only what they changed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models, transaction

from billing.models import Plan
from gateway.models import CachePolicy, Route
from gateway.services import cache_policy_create, route_create, route_update
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_issue, ensure_key_capacity, key_hash, tenant_change_plan, tenant_create

# (slug, name, plan)
TENANTS = [
    ("acme", "Acme Corporation", "enterprise"),
    ("techflow", "TechFlow Solutions", "pro"),
    ("cloudbridge", "CloudBridge Inc", "enterprise"),
]
# (tenant, name, secret, environment, daily, monthly, rps, burst)
KEYS = [
    ("acme", "Production API", "hx_prod_acme_7k9m2n4p5q8r1s3t6u0v", "live", 100_000, 2_500_000, 500, 1_000),
    ("acme", "Staging Environment", "hx_stage_acme_3f5g7h9j2k4l6m8n0p", "test", 10_000, 250_000, 100, 200),
    ("techflow", "Analytics Service", "hx_prod_techflow_9a1b3c5d7e2f4g6h8i", "live", 50_000, 1_500_000, 250, 500),
    ("techflow", "Development Key", "hx_dev_techflow_2x4y6z8a0b1c3d5e7f", "test", 5_000, 100_000, 50, 100),
    ("cloudbridge", "Gateway Service", "hx_prod_cloudbridge_5m7n9p1q3r5s7t9u2v", "live", 200_000, 5_000_000,
     1_000, 2_000),
]
POLICIES = [
    {"name": "Standard API Cache", "ttl_seconds": 300, "stale_while_revalidate_seconds": 60,
     "vary_headers": ["Accept", "Accept-Language"]},
    {"name": "High-Frequency Data", "ttl_seconds": 30, "stale_while_revalidate_seconds": 30,
     "vary_headers": ["Accept"]},
    {"name": "Static Content", "ttl_seconds": 3600, "stale_while_revalidate_seconds": 600, "vary_headers": []},
    {"name": "No Cache", "no_store": True, "ttl_seconds": 0, "stale_while_revalidate_seconds": 0,
     "stale_if_error_seconds": 0, "vary_headers": []},
]
# (slug, tenant or None for shared, policy, methods, timeout in seconds or None for the model's default)
ROUTES = [
    ("products", "acme", "Standard API Cache", ["GET"], 30),
    ("inventory", "acme", "High-Frequency Data", ["GET"], 10),
    ("analytics", "techflow", "Standard API Cache", ["GET"], None),
    ("reports", "techflow", "Static Content", ["GET"], 60),
    ("services", "cloudbridge", "Standard API Cache", ["GET", "POST"], None),
    ("webhooks", "cloudbridge", "No Cache", ["GET", "POST"], 5),
    ("demo", None, "Standard API Cache", ["GET", "POST"], None),
]
ADMIN_USERNAME = "admin"
ADMIN_EMAIL = "admin@example.com"
# Where `manage.py runserver` / the README's first command listens.
GATEWAY_URL = "http://localhost:8000"


@dataclass
class DemoSummary:
    keys: list[tuple[str, str, str]] = field(default_factory=list)  # tenant name, key name, secret
    routes: list[str] = field(default_factory=list)
    curl_examples: list[str] = field(default_factory=list)
    admin_username: str = ADMIN_USERNAME
    admin_password: str | None = None  # set only when this run set it
    created: int = 0
    updated: int = 0


def _differences(obj: models.Model, wanted: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in wanted.items() if getattr(obj, name) != value}


def _policies(summary: DemoSummary) -> dict[str, CachePolicy]:
    policies = {}
    for spec in POLICIES:
        wanted = dict(spec)
        name = wanted.pop("name")
        policy = CachePolicy.objects.filter(name=name).first()
        if policy is None:
            policy = cache_policy_create(name=name, **wanted)
            summary.created += 1
        elif changes := _differences(policy, wanted):
            for attribute, value in changes.items():
                setattr(policy, attribute, value)
            policy.full_clean()
            policy.save(update_fields=[*changes, "updated_at"])
            summary.updated += 1
        policies[name] = policy
    return policies


def _tenants(summary: DemoSummary) -> dict[str, Tenant]:
    tenants = {}
    for slug, name, plan_slug in TENANTS:
        plan = Plan.objects.get(slug=plan_slug)
        tenant = Tenant.objects.select_related("plan").filter(slug=slug).first()
        if tenant is None:
            tenant = tenant_create(name=name, slug=slug, plan=plan)
            summary.created += 1
        else:
            if tenant.name != name:
                tenant.name = name
                tenant.save(update_fields=["name", "updated_at"])
                summary.updated += 1
            if tenant.plan_id != plan.pk:
                tenant_change_plan(tenant=tenant, plan=plan)
                summary.updated += 1
        tenants[slug] = tenant
    return tenants


def _keys(tenants: dict[str, Tenant], summary: DemoSummary) -> None:
    for tenant_slug, name, secret, environment, daily, monthly, rps, burst in KEYS:
        tenant = tenants[tenant_slug]
        limits = {"quota_daily": daily, "quota_monthly": monthly, "rate_limit_rps": rps, "rate_limit_burst": burst}
        api_key = ApiKey.objects.filter(key_hash=key_hash(secret)).first()
        if api_key is None:
            api_key_issue(tenant=tenant, name=name, environment=environment, secret=secret, **limits)
            summary.created += 1
        else:
            wanted = {"tenant_id": tenant.pk, "name": name, "environment": environment,
                      "status": ApiKey.Status.ACTIVE, "revoked_at": None, "grace_until": None, "expires_at": None,
                      **limits}
            if changes := _differences(api_key, wanted):
                if api_key.status != ApiKey.Status.ACTIVE:
                    ensure_key_capacity(tenant)  # bringing a revoked key back takes a slot
                for attribute, value in changes.items():
                    setattr(api_key, attribute, value)
                # save(), not QuerySet.update(): post_save republishes the data plane's snapshot.
                api_key.save(update_fields=[*changes, "updated_at"])
                summary.updated += 1
        summary.keys.append((tenant.name, name, secret))


def _routes(tenants: dict[str, Tenant], policies: dict[str, CachePolicy], upstream_url: str,
            summary: DemoSummary) -> None:
    default_timeout_ms = Route._meta.get_field("timeout_ms").get_default()
    for slug, tenant_slug, policy_name, methods, timeout in ROUTES:
        tenant = tenants[tenant_slug] if tenant_slug else None
        wanted = {"methods": methods, "timeout_ms": timeout * 1000 if timeout else default_timeout_ms,
                  "cache_policy_id": policies[policy_name].pk,
                  "upstream_targets": [{"url": upstream_url, "weight": 1}], "is_active": True}
        route = Route.objects.filter(slug=slug, tenant=tenant).first()
        if route is None:
            route_create(tenant=tenant, slug=slug, name=slug.capitalize(), **wanted)
            summary.created += 1
        elif changes := _differences(route, wanted):
            route_update(route=route, **changes)
            summary.updated += 1
        summary.routes.append(f"/g/{slug}/ ({tenant.name if tenant else 'shared'}, {' '.join(methods)})")


def _admin(password: str | None, reset: bool, summary: DemoSummary) -> None:
    user = get_user_model().objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        user = get_user_model()(username=ADMIN_USERNAME, email=ADMIN_EMAIL)
        reset = True
        summary.created += 1
    elif not (user.is_staff and user.is_superuser and user.is_active) or password or reset:
        summary.updated += 1
    else:
        return  # the password is the operator's now; leave it alone
    if password or reset:
        summary.admin_password = password or secrets.token_urlsafe(12)
        user.set_password(summary.admin_password)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()


def _curl_examples() -> list[str]:
    secret = KEYS[0][2]
    return [f"curl -H 'X-API-Key: {secret}' {GATEWAY_URL}/g/demo/items",
            f"curl -H 'X-API-Key: {secret}' {GATEWAY_URL}/g/products/items/1",
            f"curl -X POST -H 'X-API-Key: {KEYS[4][2]}' {GATEWAY_URL}/g/services/items"]


@transaction.atomic
def demo_seed(*, upstream_url: str, admin_password: str | None = None,
              reset_admin_password: bool = False) -> DemoSummary:
    """Create the demo, or bring it back to how it ships; a second run changes nothing."""
    summary = DemoSummary(curl_examples=_curl_examples())
    policies = _policies(summary)
    tenants = _tenants(summary)
    _keys(tenants, summary)
    _routes(tenants, policies, upstream_url.rstrip("/"), summary)
    _admin(admin_password, reset_admin_password, summary)
    return summary
