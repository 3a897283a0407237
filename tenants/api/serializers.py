"""Tenants and keys in the original Heliox admin API's shapes (CONTRACT.md), plus ours."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Plan
from tenants import services
from tenants.models import ApiKey, Tenant


class TenantSerializer(serializers.ModelSerializer):
    plan_id = serializers.PrimaryKeyRelatedField(source="plan", queryset=Plan.objects.all(), required=False)
    is_active = serializers.BooleanField(required=False, help_text="false suspends the tenant.")
    api_key_count = serializers.IntegerField(read_only=True)
    route_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "description", "is_active", "status", "plan_id", "created_at",
                  "updated_at", "api_key_count", "route_count"]
        read_only_fields = ["status"]
        extra_kwargs = {"slug": {"required": False}}

    def create(self, validated_data: dict[str, Any]) -> Tenant:
        is_active = validated_data.pop("is_active", True)
        tenant = services.tenant_create(**validated_data)
        if not is_active:
            services.tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED)
        return tenant

    def update(self, instance: Tenant, validated_data: dict[str, Any]) -> Tenant:
        is_active = validated_data.pop("is_active", None)
        plan = validated_data.pop("plan", None)
        tenant = services.tenant_update(tenant=instance, **validated_data)
        if is_active is not None and is_active != tenant.is_active:
            services.tenant_set_status(
                tenant=tenant, status=Tenant.Status.ACTIVE if is_active else Tenant.Status.SUSPENDED)
        if plan is not None and plan != tenant.plan:
            services.tenant_change_plan(tenant=tenant, plan=plan)
        return tenant


def key_status(api_key: ApiKey, now: dt.datetime | None = None) -> str:
    """The original's states: a rotated-out key past its grace is expired too."""
    now = now or timezone.now()
    if api_key.status == ApiKey.Status.REVOKED:
        return "revoked"
    if (api_key.expires_at and api_key.expires_at <= now) or (api_key.grace_until and api_key.grace_until <= now):
        return "expired"
    return "active"


class ApiKeySerializer(serializers.ModelSerializer):
    """`key` is the secret: present only in the answer to a create or a rotate."""

    tenant_id = serializers.PrimaryKeyRelatedField(source="tenant", queryset=Tenant.objects.all())
    key = serializers.SerializerMethodField(help_text="The secret. Shown once, in the create/rotate answer.")
    key_prefix = serializers.CharField(source="prefix", read_only=True)
    status = serializers.SerializerMethodField()
    rotated_from_id = serializers.PrimaryKeyRelatedField(read_only=True, source="rotated_from")

    class Meta:
        model = ApiKey
        fields = ["id", "tenant_id", "name", "key", "key_prefix", "last4", "status", "environment",
                  "quota_daily", "quota_monthly", "rate_limit_rps", "rate_limit_burst", "rate_limit_algorithm",
                  "scopes", "allowed_routes", "ip_allowlist", "expires_at", "grace_until", "rotated_from_id",
                  "created_at", "updated_at", "last_used_at", "revoked_at"]
        read_only_fields = ["grace_until"]
        extra_kwargs = {
            "quota_daily": {"help_text": "Empty = the plan's; 0 = unlimited."},
            "quota_monthly": {"help_text": "Empty = the plan's; 0 = unlimited."},
            "rate_limit_rps": {"min_value": 0.001},
            "rate_limit_burst": {"min_value": 1},
        }

    @extend_schema_field({"type": "string", "nullable": True})
    def get_key(self, api_key: ApiKey) -> str | None:
        return getattr(api_key, "issued_secret", None)

    @extend_schema_field({"type": "string", "enum": ["active", "revoked", "expired"]})
    def get_status(self, api_key: ApiKey) -> str:
        return key_status(api_key)

    def to_representation(self, api_key: ApiKey) -> dict[str, Any]:
        data = super().to_representation(api_key)
        if data.get("key") is None:
            data.pop("key", None)
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            tenant = attrs.pop("tenant", None)
            if tenant is not None and tenant != self.instance.tenant:
                raise serializers.ValidationError({"tenant_id": ["A key cannot move to another tenant."]})
            if "environment" in attrs and attrs["environment"] != self.instance.environment:
                raise serializers.ValidationError({"environment": ["A key's environment is fixed at issue."]})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> ApiKey:
        issued = services.api_key_issue(**validated_data)
        issued.api_key.issued_secret = issued.secret
        return issued.api_key

    def update(self, instance: ApiKey, validated_data: dict[str, Any]) -> ApiKey:
        return services.api_key_update(api_key=instance, **validated_data)


class RotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0, max_value=30 * 86_400, default=int(services.DEFAULT_ROTATION_GRACE.total_seconds()),
        help_text="How long the old secret keeps working; 0 revokes it at once.")
