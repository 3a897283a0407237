from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from analytics.models import RouteTraffic
from gateway.cache_purge import cache_purge
from gateway.forms import RouteAdminForm
from gateway.models import CachePolicy, Route
from gateway.services import route_create


@admin.register(CachePolicy)
class CachePolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "no_store", "ttl_seconds", "stale_while_revalidate_seconds", "stale_if_error_seconds",
                    "respect_upstream", "negative_cache_404"]
    list_filter = ["no_store", "respect_upstream", "negative_cache_404"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    form = RouteAdminForm
    list_display = ["slug", "name", "tenant", "method_list", "upstream", "cache_policy", "timeout_ms", "is_active"]
    list_filter = ["is_active", "auth_mode", "cache_policy", "load_balancing"]
    search_fields = ["slug", "name", "tenant__name"]
    autocomplete_fields = ["tenant", "cache_policy"]
    list_select_related = ["tenant", "cache_policy"]
    readonly_fields = ["traffic_today", "created_at", "updated_at"]
    actions = ["purge_cache"]

    @admin.display(description="methods")
    def method_list(self, route: Route) -> str:
        return ", ".join(route.methods)

    @admin.display(description="upstream")
    def upstream(self, route: Route) -> str:
        targets = route.upstream_targets or []
        first = targets[0]["url"] if targets else "—"
        return first if len(targets) < 2 else f"{first} (+{len(targets) - 1})"

    @admin.display(description="traffic (latest day: unique client IPs, hottest paths)")
    def traffic_today(self, route: Route) -> SafeString | str:
        traffic = RouteTraffic.objects.filter(route_id=route.pk).order_by("-day").first() if route.pk else None
        if traffic is None:
            return "no traffic recorded yet"
        summary = f"{traffic.day}: {traffic.requests} requests, ~{traffic.unique_ips} unique client IPs"
        rows = format_html_join("", "<li><code>{}</code>: ~{}</li>", traffic.top_paths[:10])
        return format_html("{}<ul>{}</ul>", summary, rows)

    def save_model(self, request: HttpRequest, obj: Route, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # route_create holds the tenant's row while it counts, so two staff adding at once
        # cannot both take the plan's last route (the form's check alone is advisory).
        fields = dict(form.cleaned_data)
        route = route_create(tenant=fields.pop("tenant"), slug=fields.pop("slug"), **fields)
        obj.pk, obj.created_at, obj.updated_at = route.pk, route.created_at, route.updated_at

    @admin.action(description="Purge the cache of selected routes", permissions=["change"])
    def purge_cache(self, request: HttpRequest, queryset: QuerySet[Route]) -> None:
        purged = cache_purge(routes=list(queryset))
        self.message_user(request, f"Purged {purged} cached responses.", messages.SUCCESS)
