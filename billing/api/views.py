"""`/admin/api/plans` and `/admin/api/subscriptions`."""

from __future__ import annotations

from billing.api.serializers import PlanSerializer, SubscriptionSerializer
from billing.models import Plan, Subscription
from heliox_site.api.viewsets import AuditedModelViewSet


class PlanViewSet(AuditedModelViewSet):
    """A plan some tenant is on cannot be deleted (409)."""

    queryset = Plan.objects.all()
    serializer_class = PlanSerializer
    filterset_fields = ["is_public", "slug"]
    ordering_fields = ["id", "price_monthly", "name"]


class SubscriptionViewSet(AuditedModelViewSet):
    queryset = Subscription.objects.all()
    serializer_class = SubscriptionSerializer
    filterset_fields = ["tenant_id", "plan_id", "status"]
    ordering = ["id"]
    ordering_fields = ["id", "created_at", "current_period_end"]
