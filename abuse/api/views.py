"""`/admin/api/abuse/blocked` and `/admin/api/abuse/unblock/<key_id>`."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from abuse.api.serializers import BlockSerializer, UnblockResultSerializer, UnblockSerializer
from abuse.services import api_key_unblock, blocks_active
from tenants.audit import audit_record
from tenants.models import ApiKey, AuditEntry, Tenant


class BlockedListView(ListAPIView):
    """Active blocks, newest first: the original answers a plain list, so no pages."""

    serializer_class = BlockSerializer
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self) -> list:
        return blocks_active()


class UnblockView(APIView):
    @extend_schema(request=UnblockSerializer, responses=UnblockResultSerializer)
    def post(self, request: Request, key_id: int) -> Response:
        api_key = get_object_or_404(ApiKey, pk=key_id)
        body = UnblockSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = request.user if isinstance(request.user, AbstractBaseUser) else None  # not an admin key
        with transaction.atomic():
            cleared = api_key_unblock(api_key=api_key, by=user, reason=body.validated_data["reason"])
            audit_record(actor=request.user, source=AuditEntry.Source.ADMIN_API, action="unblock", target=api_key,
                         tenant=Tenant(pk=api_key.tenant_id), after={"reason": body.validated_data["reason"],
                                                       "blocks_cleared": cleared})
        return Response({"unblocked": True, "blocks_cleared": cleared})
