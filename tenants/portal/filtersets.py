from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone

from gateway.models import Route
from tenants.models import ApiKey


class PortalApiKeyFilterSet(django_filters.FilterSet):
    # The status a key is shown with (tenants.api.serializers.key_status), not the stored
    # one: a rotated-out key past its grace is listed as expired, so it filters as expired.
    status = django_filters.ChoiceFilter(
        choices=[("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")], method="filter_status")

    class Meta:
        model = ApiKey
        fields = ["status", "environment"]

    def filter_status(self, queryset: QuerySet[ApiKey], name: str, value: str) -> QuerySet[ApiKey]:
        if value == "revoked":
            return queryset.filter(status=ApiKey.Status.REVOKED)
        now = timezone.now()
        lapsed = Q(expires_at__lte=now) | Q(grace_until__lte=now)
        unrevoked = queryset.filter(status=ApiKey.Status.ACTIVE)
        return unrevoked.filter(lapsed) if value == "expired" else unrevoked.exclude(lapsed)


class PortalRouteFilterSet(django_filters.FilterSet):
    shared = django_filters.BooleanFilter(field_name="tenant", lookup_expr="isnull", label="Shared routes only")

    class Meta:
        model = Route
        fields = ["shared", "slug", "is_active"]
