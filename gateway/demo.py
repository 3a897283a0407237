"""The original Heliox Proxy's demo (DESIGN.md §5), so the same curl scripts run against us.

The demo keys are fixed on purpose and exist only here: nothing else hard-codes a key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction

from billing.models import Plan
from gateway.models import CachePolicy, Route
from gateway.services import cache_policy_create, route_create, route_update
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_issue, key_hash, tenant_change_plan, tenant_create

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
# (slug, tenant or None for shared, policy, methods, timeout seconds)
ROUTES = [
    ("products", "acme", "Standard API Cache", ["GET"], 30),
    ("inventory", "acme", "High-Frequency Data", ["GET"], 10),
    ("analytics", "techflow", "Standard API Cache", ["GET"], 30),
    ("reports", "techflow", "Static Content", ["GET"], 60),
    ("services", "cloudbridge", "Standard API Cache", ["GET", "POST"], 30),
    ("webhooks", "cloudbridge", "No Cache", ["GET", "POST"], 5),
    ("demo", None, "Standard API Cache", ["GET", "POST"], 30),
]
ADMIN_USERNAME = "admin"


@dataclass
class DemoSummary:
    keys: list[tuple[str, str, str]] = field(default_factory=list)  # tenant, key name, secret
    routes: list[str] = field(default_factory=list)
    admin_username: str = ADMIN_USERNAME
    admin_password: str | None = None  # set only when it was (re)set by this run
    created: int = 0


def _policies() -> dict[str, CachePolicy]:
    policies = {}
    for spec in POLICIES:
        fields = dict(spec)
        name = fields.pop("name")
        policy = CachePolicy.objects.filter(name=name).first()
        if policy is None:
            policy = cache_policy_create(name=name, **fields)
        else:
            for attribute, value in fields.items():
                setattr(policy, attribute, value)
            policy.save()
        policies[name] = policy
    return policies


def _tenants(summary: DemoSummary) -> dict[str, Tenant]:
    tenants = {}
    for slug, name, plan_slug in TENANTS:
        plan = Plan.objects.get(slug=plan_slug)
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            tenant = tenant_create(name=name, slug=slug, plan=plan)
            summary.created += 1
        elif tenant.plan_id != plan.pk:
            tenant_change_plan(tenant=tenant, plan=plan)
        tenants[slug] = tenant
    return tenants


def _keys(tenants: dict[str, Tenant], summary: DemoSummary) -> None:
    for tenant_slug, name, secret, environment, daily, monthly, rps, burst in KEYS:
        limits = {"quota_daily": daily, "quota_monthly": monthly, "rate_limit_rps": rps, "rate_limit_burst": burst}
        existing = ApiKey.objects.filter(key_hash=key_hash(secret)).first()
        if existing is None:
            api_key_issue(tenant=tenants[tenant_slug], name=name, environment=environment, secret=secret, **limits)
            summary.created += 1
        else:
            ApiKey.objects.filter(pk=existing.pk).update(name=name, status=ApiKey.Status.ACTIVE, revoked_at=None,
                                                         grace_until=None, **limits)
        summary.keys.append((tenants[tenant_slug].name, name, secret))


def _routes(tenants: dict[str, Tenant], policies: dict[str, CachePolicy], upstream_url: str,
            summary: DemoSummary) -> None:
    for slug, tenant_slug, policy_name, methods, timeout in ROUTES:
        tenant = tenants[tenant_slug] if tenant_slug else None
        fields = {"methods": methods, "timeout_ms": timeout * 1000, "cache_policy": policies[policy_name],
                  "upstream_targets": [{"url": upstream_url, "weight": 1}], "is_active": True}
        route = Route.objects.filter(slug=slug, tenant=tenant).first()
        if route is None:
            route_create(tenant=tenant, slug=slug, name=slug.capitalize(), **fields)
            summary.created += 1
        else:
            route_update(route=route, **fields)
        summary.routes.append(f"/g/{slug}/ ({tenant.name if tenant else 'shared'})")


def _admin(password: str | None, reset: bool, summary: DemoSummary) -> None:
    users = get_user_model()
    user = users.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        user = users(username=ADMIN_USERNAME, email="admin@example.com", is_staff=True, is_superuser=True)
        reset = True
    if password or reset:
        summary.admin_password = password or secrets.token_urlsafe(12)
        user.set_password(summary.admin_password)
    user.is_staff = user.is_superuser = True
    user.save()


@transaction.atomic
def demo_seed(*, upstream_url: str, admin_password: str | None = None,
              reset_admin_password: bool = False) -> DemoSummary:
    """Create or update the demo; running it again changes nothing."""
    summary = DemoSummary()
    policies = _policies()
    tenants = _tenants(summary)
    _keys(tenants, summary)
    _routes(tenants, policies, upstream_url.rstrip("/"), summary)
    _admin(admin_password, reset_admin_password, summary)
    return summary
