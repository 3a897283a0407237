"""The base ViewSets of both APIs. Every write made through them lands in the audit log; the
portal's narrows every queryset to the caller's tenant in one place (NetBox-style), so
another tenant's object is a 404 and a subclass declares only what it serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from rest_framework import permissions, viewsets
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer
from rest_framework_simplejwt.authentication import JWTAuthentication

from tenants.audit import audit_record, audit_snapshot
from tenants.models import AuditEntry, Membership, Tenant

if TYPE_CHECKING:
    from rest_framework.views import APIView

PORTAL_UNAUTHORIZED_MESSAGE = "A valid access token is required: Authorization: Bearer <access token>."
MANAGING_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})


class AuditedModelViewSet(viewsets.ModelViewSet):
    """list, create (201), retrieve, PATCH, delete. No PUT: a partial update says what changes."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    audit_source = AuditEntry.Source.ADMIN_API

    def audit(self, action: str, target: models.Model, *, before: dict[str, Any] | None = None,
              after: dict[str, Any] | None = None) -> AuditEntry:
        return audit_record(actor=self.request.user, source=self.audit_source, action=action, target=target,
                            before=before, after=after, tenant=self.audit_tenant(target))

    def audit_tenant(self, target: models.Model) -> Tenant | None:
        if isinstance(target, Tenant):
            return target
        tenant_id = getattr(target, "tenant_id", None)
        return Tenant(pk=tenant_id) if tenant_id else None

    def created_in(self) -> dict[str, Any]:
        """Values a new object takes from the request rather than the body."""
        return {}

    def perform_create(self, serializer: BaseSerializer) -> None:
        with transaction.atomic():
            instance = serializer.save(**self.created_in())
            self.audit("create", instance, after=audit_snapshot(instance))

    def perform_update(self, serializer: BaseSerializer) -> None:
        with transaction.atomic():
            before = audit_snapshot(serializer.instance)
            instance = serializer.save()
            self.audit("update", instance, before=before, after=audit_snapshot(instance))

    def perform_destroy(self, instance: models.Model) -> None:
        with transaction.atomic():
            self.audit("delete", instance, before=audit_snapshot(instance))  # while it still has its pk
            instance.delete()


class IsTenantMember(permissions.BasePermission):
    """A signed-in user with a membership; writes need a role the view names (owner/admin)."""

    message = "Your role in this tenant cannot make this change."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        membership = (Membership.objects.select_related("tenant__plan")
                      .filter(user=request.user).order_by("created_at", "pk").first())
        if membership is None:
            self.message = "This account belongs to no tenant."
            return False
        request.membership = membership
        request.tenant = membership.tenant
        if request.method in permissions.SAFE_METHODS:
            return True
        return membership.role in getattr(view, "write_roles", MANAGING_ROLES)


class PortalAPIMixin:
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsTenantMember]
    unauthorized_message = PORTAL_UNAUTHORIZED_MESSAGE
    write_roles = MANAGING_ROLES


class TenantScopedViewSet(PortalAPIMixin, AuditedModelViewSet):
    """The portal's resources: only the caller's tenant's rows exist, and a row is created in it.

    `tenant_field` is the lookup from the model to its tenant. The tenant comes from the
    membership, never from the body, so a `tenant` (or `plan`, `credits`) sent is ignored."""

    audit_source = AuditEntry.Source.PORTAL
    tenant_field = "tenant"

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(**{self.tenant_field: self.request.tenant})

    def created_in(self) -> dict[str, Any]:
        return {"tenant": self.request.tenant}
