"""`/admin/api/tenants` and `/admin/api/keys`."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Count
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from heliox_site.api.viewsets import AuditedModelViewSet
from tenants import services
from tenants.api.filtersets import ApiKeyFilterSet, TenantFilterSet
from tenants.api.serializers import ApiKeySerializer, RotateSerializer, TenantSerializer
from tenants.audit import audit_snapshot
from tenants.models import ApiKey, Tenant


class TenantViewSet(AuditedModelViewSet):
    queryset = (Tenant.objects.annotate(api_key_count=Count("api_keys", distinct=True),
                                        route_count=Count("routes", distinct=True)))
    serializer_class = TenantSerializer
    filterset_class = TenantFilterSet
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["name"]

    def perform_create(self, serializer: TenantSerializer) -> None:
        super().perform_create(serializer)
        serializer.instance.api_key_count = serializer.instance.route_count = 0


class ApiKeyViewSet(AuditedModelViewSet):
    """A deleted key is revoked, not removed: its request logs and audit trail keep their name."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    filterset_class = ApiKeyFilterSet
    ordering_fields = ["id", "created_at", "name", "last_used_at"]

    def perform_destroy(self, instance: ApiKey) -> None:
        with transaction.atomic():
            before = audit_snapshot(instance)
            services.api_key_revoke(api_key=instance)
            self.audit("revoke", instance, before=before, after=audit_snapshot(instance))

    @extend_schema(request=RotateSerializer, responses={201: ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        """A new secret with the same settings; the old one works until `grace_seconds` pass."""
        api_key = self.get_object()
        query = RotateSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        with transaction.atomic():
            before = audit_snapshot(api_key)
            issued = services.api_key_rotate(
                api_key=api_key, grace=dt.timedelta(seconds=query.validated_data["grace_seconds"]))
            api_key.refresh_from_db()
            self.audit("rotate", api_key, before=before, after=audit_snapshot(api_key))
            self.audit("create", issued.api_key, after=audit_snapshot(issued.api_key))
        issued.api_key.issued_secret = issued.secret
        return Response(self.get_serializer(issued.api_key).data, status=status.HTTP_201_CREATED)
