"""The portal's bodies. Keys, routes and plans are the admin API's serializers narrowed to what a
tenant may see and set: nothing names a tenant (the caller's is implied), and a tenant's own
limits stay within its plan (tenants/portal/validators.py)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from billing.api.serializers import PlanSerializer
from billing.models import Plan, Subscription
from gateway.api.serializers import RouteSerializer
from gateway.models import Route
from gateway.validators import validate_upstream_url
from tenants import services
from tenants.api.serializers import ApiKeySerializer
from tenants.models import Tenant
from tenants.portal.validators import ensure_within_plan, validate_public_upstream_url


def _caller_plan(serializer: serializers.Serializer) -> Plan:
    return serializer.context["request"].tenant.plan  # set by IsTenantMember


class PlanSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = ["id", "slug", "name"]
        read_only_fields = fields


class PortalTenantSerializer(serializers.ModelSerializer):
    """Only `name` and `description` can change; the plan changes through /portal/subscription."""

    plan = PlanSummarySerializer(read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "description", "status", "plan", "created_at"]
        read_only_fields = ["slug", "status", "created_at"]

    def update(self, instance: Tenant, validated_data: dict[str, Any]) -> Tenant:
        return services.tenant_update(tenant=instance, **validated_data)


class PortalApiKeySerializer(ApiKeySerializer):
    tenant_id = serializers.PrimaryKeyRelatedField(source="tenant", read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        ensure_within_plan(plan=_caller_plan(self), limits=attrs)
        return attrs


class PortalRouteSerializer(RouteSerializer):
    """`shared` routes are staff-made and serve every tenant: readable here, never writable."""

    tenant_id = serializers.PrimaryKeyRelatedField(
        source="tenant", read_only=True, allow_null=True, help_text="Empty for a shared route.")
    upstream_base_url = serializers.CharField(
        max_length=2048, required=False, validators=[validate_upstream_url, validate_public_upstream_url])
    shared = serializers.SerializerMethodField()

    class Meta(RouteSerializer.Meta):
        fields = [*RouteSerializer.Meta.fields, "shared"]

    def get_shared(self, route: Route) -> bool:
        return route.tenant_id is None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        targets = attrs.get("upstream_targets")
        if isinstance(targets, list):  # the shape itself is the model's to check (validate_targets)
            urls = [t["url"] for t in targets if isinstance(t, dict) and isinstance(t.get("url"), str)]
            try:
                for url in urls:
                    validate_public_upstream_url(url)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"upstream_targets": exc.messages}) from exc
        attrs = super().validate(attrs)
        ensure_within_plan(plan=_caller_plan(self), limits=attrs)
        return attrs


class PortalPlanSerializer(PlanSerializer):
    class Meta(PlanSerializer.Meta):
        # Whether abuse detection may block a plan's keys is ours to know, not an abuser's.
        fields = [name for name in PlanSerializer.Meta.fields if name != "exempt_from_auto_block"]
        read_only_fields = fields


class PortalSubscriptionSerializer(serializers.ModelSerializer):
    plan = PlanSummarySerializer(read_only=True)

    class Meta:
        model = Subscription
        fields = ["id", "plan", "status", "current_period_start", "current_period_end", "trial_ends_at"]
        read_only_fields = fields


class SubscriptionChangeSerializer(serializers.Serializer):
    # An unknown and a non-public plan get the same answer: a hidden plan is not advertised.
    plan_id = serializers.PrimaryKeyRelatedField(
        queryset=Plan.objects.filter(is_public=True), help_text="A plan from /portal/plans.")


class UsageQuery(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=90, default=30, help_text="How many days `by_day` covers.")


# The usage answer's shape, for the schema and so nothing undocumented reaches the client.

class RequestCountSerializer(serializers.Serializer):
    requests = serializers.IntegerField()


class QuotaPeriodSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    quota = serializers.IntegerField(allow_null=True, help_text="Empty: unlimited.")
    remaining = serializers.IntegerField(allow_null=True, help_text="Empty: unlimited.")


class KeyUsageSerializer(serializers.Serializer):
    api_key_id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    today = QuotaPeriodSerializer()
    this_month = QuotaPeriodSerializer()


class DayUsageSerializer(serializers.Serializer):
    day = serializers.DateField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    cache_hit_rate = serializers.FloatField()


class RouteUsageSerializer(serializers.Serializer):
    route_id = serializers.IntegerField()
    route_name = serializers.CharField(allow_null=True, help_text="The route's slug; empty if it was deleted.")
    request_count = serializers.IntegerField()
    avg_latency_ms = serializers.FloatField()
    cache_hit_rate = serializers.FloatField()
    error_rate = serializers.FloatField()


class PeriodSerializer(serializers.Serializer):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()


class RoutesUsageSerializer(PeriodSerializer):
    items = RouteUsageSerializer(many=True)
    total_requests = serializers.IntegerField()


class CacheOutcomesSerializer(serializers.Serializer):
    hit_rate = serializers.FloatField(help_text="(HIT + STALE) / (HIT + STALE + MISS).")
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    stale_hits = serializers.IntegerField()


class RouteCacheSerializer(CacheOutcomesSerializer):
    route_id = serializers.IntegerField()
    route_name = serializers.CharField(allow_null=True)


class HourCacheSerializer(CacheOutcomesSerializer):
    hour = serializers.DateTimeField()


class CacheUsageSerializer(PeriodSerializer):
    overall_hit_rate = serializers.FloatField()
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    stale_hits = serializers.IntegerField()
    by_route = RouteCacheSerializer(many=True)
    by_hour = HourCacheSerializer(many=True)


class PortalUsageSerializer(serializers.Serializer):
    tenant_id = serializers.IntegerField()
    plan = serializers.CharField(help_text="The plan's slug. Quotas are per key: see `keys`.")
    days = serializers.IntegerField()
    today = RequestCountSerializer(help_text="Requests admitted today (UTC), every key.")
    this_month = RequestCountSerializer(help_text="Requests admitted this month (UTC), every key.")
    keys = KeyUsageSerializer(many=True)
    by_day = DayUsageSerializer(many=True)
    by_route = RoutesUsageSerializer(help_text="The last `days` days, read from the hour rollups past 7 days.")
    cache = CacheUsageSerializer(help_text="The same window as `by_route`.")
