"""Routes and cache policies in the original admin API's shapes (CONTRACT.md), plus ours."""

from __future__ import annotations

from typing import Any

from django.utils.text import slugify
from rest_framework import serializers

from gateway import services
from gateway.models import CachePolicy, Route
from gateway.validators import validate_upstream_url
from heliox_site.api.serializers import CleanModelSerializer
from tenants.models import Tenant


class RouteSerializer(serializers.ModelSerializer):
    """`upstream_base_url` is the original's single upstream; `upstream_targets` are ours
    (several, weighted). Send either; the answer has both."""

    tenant_id = serializers.PrimaryKeyRelatedField(
        source="tenant", queryset=Tenant.objects.all(), required=False, allow_null=True,
        help_text="Empty = a shared route, served to every tenant.")
    policy_id = serializers.PrimaryKeyRelatedField(
        source="cache_policy", queryset=CachePolicy.objects.all(), required=False, allow_null=True)
    upstream_base_url = serializers.CharField(max_length=2048, required=False, validators=[validate_upstream_url])

    class Meta:
        model = Route
        fields = ["id", "tenant_id", "slug", "name", "description", "methods", "upstream_base_url",
                  "upstream_targets", "load_balancing", "timeout_ms", "connect_timeout_ms", "read_timeout_ms",
                  "retry_attempts", "retry_backoff_ms", "auth_mode", "max_body_bytes", "request_headers_add",
                  "request_headers_remove", "response_headers_add", "policy_id", "rate_limit_rps",
                  "rate_limit_burst", "rate_limit_algorithm", "priority", "is_active", "created_at", "updated_at"]
        extra_kwargs = {"slug": {"required": False}, "name": {"required": False},
                        "upstream_targets": {"required": False}}
        # The model's constraints are checked by full_clean in the services, with their messages.
        validators: list = []

    def to_representation(self, route: Route) -> dict[str, Any]:
        data = super().to_representation(route)
        data["upstream_base_url"] = route.upstream_targets[0]["url"] if route.upstream_targets else None
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        base_url = attrs.pop("upstream_base_url", None)
        if base_url is not None:
            if "upstream_targets" in attrs:
                raise serializers.ValidationError(
                    {"upstream_base_url": ["Send upstream_base_url or upstream_targets, not both."]})
            attrs["upstream_targets"] = [{"url": base_url, "weight": 1}]
        if self.instance is None:
            if "upstream_targets" not in attrs:
                raise serializers.ValidationError({"upstream_base_url": ["This field is required."]})
            if not attrs.get("slug"):
                attrs["slug"] = slugify(attrs.get("name", ""))[:64]
                if not attrs["slug"]:
                    raise serializers.ValidationError({"slug": ["Give the route a slug or a name."]})
        elif "tenant" in attrs and attrs["tenant"] != self.instance.tenant:
            raise serializers.ValidationError({"tenant_id": ["A route cannot move to another tenant."]})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Route:
        return services.route_create(tenant=validated_data.pop("tenant", None), **validated_data)

    def update(self, instance: Route, validated_data: dict[str, Any]) -> Route:
        validated_data.pop("tenant", None)
        return services.route_update(route=instance, **validated_data)


class CachePolicySerializer(CleanModelSerializer):
    """The original's names where a field is the same idea; ours for the rest."""

    stale_seconds = serializers.IntegerField(source="stale_while_revalidate_seconds", min_value=0, required=False)
    cache_no_store = serializers.BooleanField(source="no_store", required=False)
    vary_headers_json = serializers.JSONField(source="vary_headers", required=False)
    cacheable_statuses_json = serializers.JSONField(source="cacheable_statuses", required=False)

    class Meta:
        model = CachePolicy
        fields = ["id", "name", "description", "ttl_seconds", "stale_seconds", "stale_if_error_seconds",
                  "vary_headers_json", "cacheable_statuses_json", "max_body_bytes", "cache_no_store",
                  "respect_upstream", "normalize_query", "negative_cache_404", "bloom_expected_items",
                  "bloom_false_positive_rate", "created_at", "updated_at"]
        validators: list = []


class CachePurgeSerializer(serializers.Serializer):
    route_name = serializers.SlugField(required=False, help_text="The route's slug (its /g/<slug>/).")
    route_id = serializers.IntegerField(required=False, min_value=1)
    tenant_id = serializers.IntegerField(required=False, min_value=1)
    prefix = serializers.CharField(required=False, max_length=2048, help_text="A path prefix below /g/<route>.")
    all = serializers.BooleanField(default=False, help_text="Purge every route: say so explicitly.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        named = any(name in attrs for name in ("route_name", "route_id", "tenant_id"))
        if attrs["all"] == named:
            raise serializers.ValidationError(
                {"all": ["Name a route or a tenant, or send all: true; one of the two."]})
        return attrs


class CachePurgeResultSerializer(serializers.Serializer):
    purged_count = serializers.IntegerField()
    message = serializers.CharField()
