from __future__ import annotations

import django_filters

from gateway.models import Route


class RouteFilterSet(django_filters.FilterSet):
    tenant_id = django_filters.NumberFilter(field_name="tenant_id")
    shared = django_filters.BooleanFilter(field_name="tenant", lookup_expr="isnull", label="Shared routes only")
    policy_id = django_filters.NumberFilter(field_name="cache_policy_id")

    class Meta:
        model = Route
        fields = ["tenant_id", "shared", "slug", "is_active", "policy_id"]
