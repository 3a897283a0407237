from __future__ import annotations

from typing import Any

from rest_framework import serializers

from billing.models import Plan, Subscription
from heliox_site.api.serializers import CleanModelSerializer
from tenants.models import Tenant
from tenants.services import tenant_change_plan


class PlanSerializer(CleanModelSerializer):
    class Meta:
        model = Plan
        fields = ["id", "name", "slug", "rps", "burst", "algorithm", "quota_daily", "quota_monthly", "max_keys",
                  "max_routes", "price_monthly", "features", "exempt_from_auto_block", "is_public", "created_at",
                  "updated_at"]
        extra_kwargs = {"rps": {"min_value": 0.001}, "burst": {"min_value": 1}}
        validators: list = []


class SubscriptionSerializer(CleanModelSerializer):
    """A tenant has one subscription (made with the tenant). Changing its plan changes the
    tenant's plan too, through the same service as django-admin."""

    tenant_id = serializers.PrimaryKeyRelatedField(source="tenant", queryset=Tenant.objects.all())
    plan_id = serializers.PrimaryKeyRelatedField(source="plan", queryset=Plan.objects.all())

    class Meta:
        model = Subscription
        fields = ["id", "tenant_id", "plan_id", "status", "current_period_start", "current_period_end",
                  "trial_ends_at", "created_at", "updated_at"]
        validators: list = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "tenant" in attrs and attrs["tenant"] != self.instance.tenant:
            raise serializers.ValidationError({"tenant_id": ["A subscription cannot move to another tenant."]})
        return attrs

    def update(self, instance: Subscription, validated_data: dict[str, Any]) -> Subscription:
        plan = validated_data.pop("plan", None)
        subscription = super().update(instance, validated_data)
        if plan is not None and plan != subscription.tenant.plan:
            tenant_change_plan(tenant=subscription.tenant, plan=plan)
            subscription.refresh_from_db()
        return subscription
