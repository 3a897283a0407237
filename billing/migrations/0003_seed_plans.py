"""The original Heliox Proxy's plan table: Free, Pro, Enterprise (0 = unlimited)."""

from __future__ import annotations

from decimal import Decimal

from django.db import migrations

PLANS = [
    {"slug": "free", "name": "Free", "rps": 10, "burst": 20, "quota_daily": 1_000, "quota_monthly": 10_000,
     "max_keys": 2, "max_routes": 5, "price_monthly": Decimal("0"),
     "features": {"caching": True, "analytics": "basic", "support": "community"}},
    {"slug": "pro", "name": "Pro", "rps": 100, "burst": 200, "quota_daily": 50_000, "quota_monthly": 500_000,
     "max_keys": 10, "max_routes": 25, "price_monthly": Decimal("49.00"),
     "features": {"caching": True, "analytics": "advanced", "support": "email"}},
    # "Custom" RPS: this is the default a sales contract starts from; edit per customer.
    {"slug": "enterprise", "name": "Enterprise", "rps": 1000, "burst": 2000, "quota_daily": 0,
     "quota_monthly": 0, "max_keys": 0, "max_routes": 0, "price_monthly": Decimal("499.00"),
     "exempt_from_auto_block": True,
     "features": {"caching": True, "analytics": "advanced", "support": "priority"}},
]


def seed(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    plan_model = apps.get_model("billing", "Plan")
    for plan in PLANS:
        fields = dict(plan)
        plan_model.objects.update_or_create(slug=fields.pop("slug"), defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
