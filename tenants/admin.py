from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from abuse.charts import score_sparkline
from tenants.forms import ApiKeyAdminForm
from tenants.models import ApiKey, Membership, Tenant
from tenants.services import (
    IssuedKey,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    tenant_create,
    tenant_set_status,
)

_ISSUED = "_heliox_issued_keys"  # request attribute: secrets live for this response only


def _show_secrets(request: HttpRequest, issued: list[IssuedKey], title: str) -> HttpResponse:
    """The one page that ever shows a secret. Nothing stores it: not the session, not a
    message cookie, not the log."""
    response = TemplateResponse(request, "admin/heliox/issued_keys.html", {
        "title": title, "issued": issued, "site_header": admin.site.site_header,
        "has_permission": True, "opts": ApiKey._meta,
    })
    response["Cache-Control"] = "no-store"
    return response


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
    inlines = [MembershipInline]
    actions = ["suspend", "reactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).annotate(
            _keys=Count("api_keys", distinct=True), _routes=Count("routes", distinct=True))

    @admin.display(description="keys", ordering="_keys")
    def key_count(self, tenant: Tenant) -> int:
        return tenant._keys  # type: ignore[attr-defined]

    @admin.display(description="routes", ordering="_routes")
    def route_count(self, tenant: Tenant) -> int:
        return tenant._routes  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = tenant_create(name=obj.name, slug=obj.slug, plan=obj.plan, description=obj.description)
        obj.pk, obj.created_at = created.pk, created.created_at
        obj.status = created.status

    @admin.action(description="Suspend selected tenants (their keys get 403 tenant_suspended)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED)
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).", messages.SUCCESS)

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(tenant=tenant, status=Tenant.Status.ACTIVE)
        self.message_user(request, f"Reactivated {queryset.count()} tenant(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]
    list_select_related = ["user", "tenant"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
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
        return [*self.readonly_fields, "tenant", "environment"] if obj is not None else ["masked"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        fields = {name: form.cleaned_data[name] for name in ApiKeyAdminForm.Meta.fields if name != "tenant"}
        issued = api_key_issue(tenant=form.cleaned_data["tenant"], **fields)
        obj.pk = issued.api_key.pk
        setattr(request, _ISSUED, [issued])

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        issued = getattr(request, _ISSUED, None)
        if issued:
            return _show_secrets(request, issued, "API key issued: copy the secret now")
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Revoke selected keys (401 from the next request on)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset.filter(status=ApiKey.Status.ACTIVE):
            api_key_revoke(api_key=api_key)
        self.message_user(request, "Revoked the selected keys.", messages.SUCCESS)

    @admin.action(description="Rotate selected keys (old secret valid 24 h more)")
    def rotate(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        active = list(queryset.filter(status=ApiKey.Status.ACTIVE))
        if not active:
            self.message_user(request, "Only active keys can be rotated.", messages.WARNING)
            return None
        issued = [api_key_rotate(api_key=api_key, grace=dt.timedelta(hours=24)) for api_key in active]
        return _show_secrets(request, issued, "Keys rotated: copy the new secrets now")
