from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.functional import cached_property

from analytics.models import RequestLog, RequestRollup, RouteTraffic


class UncountedPaginator(Paginator):
    """Pages without COUNT(*): the request log is too big to count on every page view
    (healthchecks' approach). The page links are approximate by design."""

    @cached_property
    def count(self) -> int:
        return 10**9


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "method", "path", "status_code", "cache_status", "latency_ms", "tenant_id",
                    "api_key_id", "route_id", "client_ip", "error_code"]
    list_filter = ["cache_status", "method"]
    search_fields = ["=request_id"]
    paginator = UncountedPaginator
    show_full_result_count = False
    list_per_page = 50


@admin.register(RequestRollup)
class RequestRollupAdmin(ReadOnlyAdmin):
    list_display = ["granularity", "bucket_start", "tenant_id", "api_key_id", "route_id", "status_class",
                    "cache_status", "count", "error_count"]
    list_filter = ["granularity", "status_class", "cache_status"]
    paginator = UncountedPaginator
    show_full_result_count = False


@admin.register(RouteTraffic)
class RouteTrafficAdmin(ReadOnlyAdmin):
    list_display = ["day", "route_id", "requests", "unique_ips"]
    exclude = ["unique_ips_hll", "paths_cms"]
    readonly_fields = ["route", "day", "requests", "unique_ips", "top_paths"]
