from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from analytics.models import RouteTraffic
from gateway.cache_purge import cache_purge
from gateway.forms import RouteAdminForm
from gateway.models import CachePolicy, Route


@admin.register(CachePolicy)
class CachePolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "no_store", "ttl_seconds", "stale_while_revalidate_seconds", "stale_if_error_seconds",
                    "respect_upstream", "negative_cache_404"]
    list_filter = ["no_store", "respect_upstream", "negative_cache_404"]
    search_fields = ["name"]


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    form = RouteAdminForm
    list_display = ["slug", "name", "tenant", "method_list", "upstream", "cache_policy", "timeout_ms", "is_active"]
    list_filter = ["is_active", "auth_mode", "cache_policy", "load_balancing"]
    search_fields = ["slug", "name", "tenant__name"]
    autocomplete_fields = ["tenant", "cache_policy"]
    list_select_related = ["tenant", "cache_policy"]
    readonly_fields = ["traffic_today"]
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

    @admin.action(description="Purge the cache of selected routes")
    def purge_cache(self, request: HttpRequest, queryset: QuerySet[Route]) -> None:
        purged = cache_purge(routes=list(queryset))
        self.message_user(request, f"Purged {purged} cached responses.", messages.SUCCESS)
