"""`/portal/…`: a signed-in customer's own tenant, keys, routes, usage, plans and subscription.

Every view is a portal view (JWT, a membership, writes by owner/admin); every write is audited
with source "portal"; another tenant's object is a 404, never a 403."""

from __future__ import annotations

from django.db import models, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Subscription
from gateway.models import Route
from heliox_site.api.viewsets import PortalAPIMixin, TenantScopedViewSet
from tenants.api.serializers import RotateSerializer
from tenants.api.views import ApiKeyViewSet
from tenants.audit import audit_snapshot
from tenants.models import ApiKey, Membership, Tenant
from tenants.portal import selectors, services
from tenants.portal.filtersets import PortalApiKeyFilterSet, PortalRouteFilterSet
from tenants.portal.schema import PortalAutoSchema
from tenants.portal.serializers import (
    PortalApiKeySerializer,
    PortalPlanSerializer,
    PortalRouteSerializer,
    PortalSubscriptionSerializer,
    PortalTenantSerializer,
    PortalUsageSerializer,
    SubscriptionChangeSerializer,
    UsageQuery,
)

TAGS = ["portal"]


@extend_schema_view(retrieve=extend_schema(tags=TAGS, summary="The caller's tenant"),
                    partial_update=extend_schema(tags=TAGS, summary="Rename or describe the tenant"))
class PortalTenantViewSet(TenantScopedViewSet):
    """`/portal/tenant`: no id in the path, since there is one. A `plan`, `status` or `slug`
    sent is ignored; the plan changes through /portal/subscription."""

    queryset = Tenant.objects.all()
    serializer_class = PortalTenantSerializer
    tenant_field = "pk"
    schema = PortalAutoSchema()

    def get_object(self) -> Tenant:
        tenant = self.request.tenant  # loaded with its plan by IsTenantMember: no second query
        self.check_object_permissions(self.request, tenant)
        return tenant


@extend_schema_view(
    list=extend_schema(tags=TAGS), retrieve=extend_schema(tags=TAGS), partial_update=extend_schema(tags=TAGS),
    create=extend_schema(tags=TAGS, description="Issues a key; `key`, the secret, is in this answer only. "
                                                "Past the plan's key cap: 400 validation_error."),
    destroy=extend_schema(tags=TAGS, description="Revokes the key: it stops working at once, and stays listed "
                                                 "as revoked so its logs keep their name."),
    rotate=extend_schema(tags=TAGS, request=RotateSerializer, responses={201: PortalApiKeySerializer}),
)
class PortalApiKeyViewSet(TenantScopedViewSet, ApiKeyViewSet):
    """The admin API's keys (revoke on DELETE, rotate with a grace) in the caller's tenant.

    TenantScopedViewSet comes first, so the portal's authentication, permission, queryset
    narrowing, created_in and audit source win over the admin ones."""

    queryset = ApiKey.objects.all()
    serializer_class = PortalApiKeySerializer
    filterset_class = PortalApiKeyFilterSet
    schema = PortalAutoSchema()


@extend_schema_view(
    list=extend_schema(tags=TAGS, description="The tenant's own routes and the shared ones (`shared: true`)."),
    retrieve=extend_schema(tags=TAGS),
    create=extend_schema(tags=TAGS, description="Within the plan's route cap (else 400 validation_error)."),
    partial_update=extend_schema(tags=TAGS, description="Own routes only: a shared route is a 404 here."),
    destroy=extend_schema(tags=TAGS, description="Own routes only: a shared route is a 404 here."),
)
class PortalRouteViewSet(TenantScopedViewSet):
    queryset = Route.objects.all()
    serializer_class = PortalRouteSerializer
    filterset_class = PortalRouteFilterSet
    ordering_fields = ["id", "slug", "priority", "created_at"]
    schema = PortalAutoSchema()

    def get_queryset(self) -> models.QuerySet[Route]:
        if self.request.method in permissions.SAFE_METHODS:
            return selectors.route_list_visible(tenant=self.request.tenant)
        return super().get_queryset()  # writes see only the tenant's own: a shared route is a 404


@extend_schema_view(list=extend_schema(tags=TAGS, summary="The plans a tenant can move to"))
class PortalPlanViewSet(PortalAPIMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = PortalPlanSerializer
    ordering_fields = ["price_monthly", "name"]
    schema = PortalAutoSchema()

    def get_queryset(self) -> models.QuerySet:
        return selectors.plan_list_public()


@extend_schema_view(retrieve=extend_schema(tags=TAGS, summary="The tenant's subscription"))
class PortalSubscriptionViewSet(TenantScopedViewSet):
    """`/portal/subscription`: read by every member, the plan changed by the owner only."""

    queryset = Subscription.objects.select_related("plan")
    serializer_class = PortalSubscriptionSerializer
    write_roles = frozenset({Membership.Role.OWNER})
    may_be_missing = True  # a tenant made without the service has no subscription: 404
    schema = PortalAutoSchema()

    def get_object(self) -> Subscription:
        subscription = get_object_or_404(self.get_queryset())
        self.check_object_permissions(self.request, subscription)
        return subscription

    @extend_schema(tags=TAGS, summary="Change plan", operation_id="portal_subscription_change_plan",
                   request=SubscriptionChangeSerializer,
                   responses={200: PortalSubscriptionSerializer})
    def change_plan(self, request: Request) -> Response:
        """Moves the tenant to a public plan. A plan the tenant has outgrown (more active keys or
        routes than its caps, or a key or route limit above its limits) is refused with
        `fields.plan_id` saying what to remove or lower first."""
        change = SubscriptionChangeSerializer(data=request.data)
        change.is_valid(raise_exception=True)
        subscription = self.get_object()
        with transaction.atomic():
            before = audit_snapshot(subscription)
            subscription = services.subscription_change_plan(tenant=request.tenant,
                                                             plan=change.validated_data["plan_id"])
            self.audit("change_plan", subscription, before=before, after=audit_snapshot(subscription))
        return Response(self.get_serializer(subscription).data)


class PortalUsageView(PortalAPIMixin, APIView):
    query_class = UsageQuery
    schema = PortalAutoSchema()

    @extend_schema(tags=TAGS, summary="Usage against quota, by day, key and route", parameters=[UsageQuery],
                   responses=PortalUsageSerializer)
    def get(self, request: Request) -> Response:
        query = UsageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        usage = selectors.portal_usage(tenant=request.tenant, days=query.validated_data["days"])
        return Response(PortalUsageSerializer(usage).data)
