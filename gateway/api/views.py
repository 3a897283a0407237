"""`/admin/api/routes`, `/admin/api/policies` and `/admin/api/cache/purge`."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.api.filtersets import RouteFilterSet
from gateway.api.serializers import (
    CachePolicySerializer,
    CachePurgeResultSerializer,
    CachePurgeSerializer,
    RouteSerializer,
)
from gateway.cache_purge import cache_purge
from gateway.models import CachePolicy, Route
from heliox_site.api.viewsets import AuditedModelViewSet
from tenants.audit import audit_record
from tenants.models import AuditEntry, Tenant


class RouteViewSet(AuditedModelViewSet):
    """Deleting a route keeps its request logs (they refer to it by id, without a constraint)."""

    queryset = Route.objects.all()
    serializer_class = RouteSerializer
    filterset_class = RouteFilterSet
    ordering_fields = ["id", "slug", "priority", "created_at"]


class CachePolicyViewSet(AuditedModelViewSet):
    queryset = CachePolicy.objects.all()
    serializer_class = CachePolicySerializer
    ordering_fields = ["id", "name", "ttl_seconds"]


class CachePurgeView(APIView):
    @extend_schema(request=CachePurgeSerializer, responses=CachePurgeResultSerializer)
    def post(self, request: Request) -> Response:
        query = CachePurgeSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = get_object_or_404(Tenant, pk=params["tenant_id"]) if "tenant_id" in params else None
        routes = None
        if "route_id" in params:
            routes = [get_object_or_404(Route, pk=params["route_id"])]
        elif "route_name" in params:
            routes = list(Route.objects.filter(slug=params["route_name"]))
            if not routes:
                return Response({"purged_count": 0, "message": f"No route is named {params['route_name']!r}."})
        purged = cache_purge(routes=routes, tenant=tenant, prefix=params.get("prefix", ""),
                             everything=routes is None)
        audit_record(actor=request.user, source=AuditEntry.Source.ADMIN_API, action="cache_purge",
                     target=routes[0] if routes and len(routes) == 1 else tenant, tenant=tenant,
                     after={**params, "purged_count": purged})
        return Response({"purged_count": purged, "message": f"Purged {purged} cached responses."})
