from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from abuse.charts import score_sparkline
from analytics.admin import ReadOnlyAdmin
from gateway.models import Route
from tenants.forms import ApiKeyAdminForm
from tenants.models import ApiKey, AuditEntry, EmailVerification, Membership, Tenant
from tenants.services import (
    DEFAULT_ROTATION_GRACE,
    IssuedKey,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    tenant_change_plan,
    tenant_create,
    tenant_set_status,
)

_ISSUED = "_heliox_issued_keys"  # request attribute: secrets live for this response only
_GRACE_HOURS = DEFAULT_ROTATION_GRACE / dt.timedelta(hours=1)


def _show_secrets(model_admin: admin.ModelAdmin, request: HttpRequest, issued: list[IssuedKey],
                  title: str) -> HttpResponse:
    """The one page that ever shows a secret. Nothing stores it: not the session, not a
    message cookie, not the log."""
    context = {**model_admin.admin_site.each_context(request), "title": title, "issued": issued,
               "opts": ApiKey._meta}
    response = TemplateResponse(request, "admin/heliox/issued_keys.html", context)
    # The page must not be kept by the browser or a proxy: its body is the only copy of the secret.
    response["Cache-Control"] = "no-store"
    return response


def _count_of(model: type[Route] | type[ApiKey]) -> Coalesce:
    # A subquery per column: two joined COUNT(DISTINCT)s would multiply keys by routes per tenant.
    rows = model.objects.filter(tenant=OuterRef("pk")).order_by().values("tenant").annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "status", "key_count", "route_count", "created_at"]
    list_filter = ["status", "plan"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["plan"]
    list_select_related = ["plan"]
    readonly_fields = ["created_at", "updated_at", "traffic"]
    inlines = [MembershipInline]
    actions = ["suspend", "reactivate"]

    @admin.display(description="traffic")
    def traffic(self, tenant: Tenant) -> str:
        if not tenant.pk:
            return "—"
        url = reverse("heliox-dashboard") + f"?tenant={tenant.pk}&embed=1"
        return format_html('<iframe src="{}" title="Traffic of {}" style="width:100%;height:1100px;border:0" '
                           'loading="lazy"></iframe><p><a href="{}">Open the dashboard</a></p>',
                           url, tenant.name, reverse("heliox-dashboard") + f"?tenant={tenant.pk}")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).annotate(_keys=_count_of(ApiKey), _routes=_count_of(Route))

    @admin.display(description="keys", ordering="_keys")
    def key_count(self, tenant: Tenant) -> int:
        return tenant._keys  # type: ignore[attr-defined]

    @admin.display(description="routes", ordering="_routes")
    def route_count(self, tenant: Tenant) -> int:
        return tenant._routes  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            if "plan" in form.changed_data:
                tenant_change_plan(tenant=obj, plan=obj.plan)  # the subscription follows the plan
            return
        # tenant_create, so that a tenant made here has its Subscription like any other.
        created = tenant_create(name=obj.name, slug=obj.slug, plan=obj.plan, description=obj.description)
        if obj.status != created.status:
            tenant_set_status(tenant=created, status=obj.status)
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Tenant], status: str, verb: str) -> None:
        changed = [tenant_set_status(tenant=tenant, status=status) for tenant in queryset.exclude(status=status)]
        self.message_user(request, f"{verb} {len(changed)} tenant(s).", messages.SUCCESS)

    @admin.action(description="Suspend selected tenants (their keys get 403 tenant_suspended)",
                  permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._set_status(request, queryset, Tenant.Status.SUSPENDED, "Suspended")

    @admin.action(description="Reactivate selected tenants", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._set_status(request, queryset, Tenant.Status.ACTIVE, "Reactivated")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]
    list_select_related = ["user", "tenant"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys as staff may see them: prefix and last four only. key_hash is in no form, list or
    readonly field; a secret appears once, on the page answering the add or rotate."""

    form = ApiKeyAdminForm
    list_display = ["name", "tenant", "masked", "environment", "status", "expires_at", "grace_until", "last_used_at"]
    list_filter = ["status", "environment", "tenant__plan"]
    search_fields = ["name", "prefix", "tenant__name"]
    autocomplete_fields = ["tenant"]
    list_select_related = ["tenant"]
    readonly_fields = ["masked", "status", "grace_until", "rotated_from", "last_used_at", "revoked_at", "created_at",
                       "abuse_scores"]
    actions = ["revoke", "rotate"]

    @admin.display(description="key")
    def masked(self, api_key: ApiKey) -> str:
        return api_key.display if api_key.pk else "shown once, after saving"

    @admin.display(description="anomaly score (last hour)")
    def abuse_scores(self, api_key: ApiKey) -> SafeString:
        score = getattr(api_key, "abuse_score", None) if api_key.pk else None
        if score is None or not score.history:
            return format_html("<span>{}</span>", "no traffic scored yet")
        return score_sparkline(score.history)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        fields = list(ApiKeyAdminForm.Meta.fields)
        return fields if obj is None else ["masked", *fields, *self.readonly_fields[1:]]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        # A key never changes hands or environment: its secret's prefix names the environment.
        return [*self.readonly_fields, "tenant", "environment"] if obj is not None else ["masked"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        fields = {name: form.cleaned_data[name] for name in ApiKeyAdminForm.Meta.fields if name != "tenant"}
        issued = api_key_issue(tenant=form.cleaned_data["tenant"], **fields)
        obj.pk, obj.prefix, obj.last4 = issued.api_key.pk, issued.api_key.prefix, issued.api_key.last4
        setattr(request, _ISSUED, [issued])

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        issued = getattr(request, _ISSUED, None)
        if issued:
            return _show_secrets(self, request, issued, "API key issued: copy the secret now")
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Revoke selected keys (401 from the next request on)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = [api_key_revoke(api_key=api_key) for api_key in queryset.filter(status=ApiKey.Status.ACTIVE)]
        self.message_user(request, f"Revoked {len(revoked)} key(s).", messages.SUCCESS)

    @admin.action(description=f"Rotate selected keys (old secret valid {_GRACE_HOURS:g} h more)",
                  permissions=["change"])
    def rotate(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        active = list(queryset.filter(status=ApiKey.Status.ACTIVE).select_related("tenant"))
        if not active:
            self.message_user(request, "Only active keys can be rotated.", messages.WARNING)
            return None
        # All or none: a successor whose secret never reaches the page is a key nobody can use.
        with transaction.atomic():
            issued = [api_key_rotate(api_key=api_key, grace=DEFAULT_ROTATION_GRACE) for api_key in active]
        return _show_secrets(self, request, issued, "Keys rotated: copy the new secrets now")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "source", "action", "target_type", "target_repr", "tenant"]
    list_filter = ["source", "action", "target_type"]
    search_fields = ["actor", "target_repr", "target_id"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    fields = ["created_at", "actor", "user", "source", "action", "target_type", "target_id", "target_repr",
              "tenant", "before", "after"]
    readonly_fields = fields


@admin.register(EmailVerification)
class EmailVerificationAdmin(ReadOnlyAdmin):
    list_display = ["user", "verified_at", "expires_at", "attempts", "created_at"]
    list_filter = [("verified_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    fields = ["user", "verified_at", "expires_at", "attempts", "created_at"]  # never the code's hash
    readonly_fields = fields
