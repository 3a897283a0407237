from __future__ import annotations

import django_filters

from tenants.models import ApiKey, Tenant


class TenantFilterSet(django_filters.FilterSet):
    plan_id = django_filters.NumberFilter(field_name="plan_id")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Tenant
        fields = ["status", "plan_id", "name"]


class ApiKeyFilterSet(django_filters.FilterSet):
    tenant_id = django_filters.NumberFilter(field_name="tenant_id")

    class Meta:
        model = ApiKey
        fields = ["tenant_id", "status", "environment"]
