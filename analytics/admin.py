from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from analytics.models import RequestLog, RequestRollup, RouteTraffic
from gateway.validators import HTTP_METHODS

STATUS_CLASSES = [(2, "2xx"), (3, "3xx"), (4, "4xx"), (5, "5xx")]


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


# Fixed choices, not the field's own filter: a plain field's filter lists its values with
# SELECT DISTINCT over the whole table on every changelist view.
class MethodFilter(admin.SimpleListFilter):
    title = "method"
    parameter_name = "method"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(method, method) for method in HTTP_METHODS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        return queryset.filter(method=self.value()) if self.value() else queryset


class StatusClassFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_class"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[int, str]]:
        return STATUS_CLASSES

    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> QuerySet[RequestLog]:
        if not self.value() or not self.value().isdigit():
            return queryset
        low = int(self.value()) * 100
        return queryset.filter(status_code__gte=low, status_code__lt=low + 100)


class RollupStatusClassFilter(StatusClassFilter):
    def queryset(self, request: HttpRequest, queryset: QuerySet[RequestRollup]) -> QuerySet[RequestRollup]:
        if not self.value() or not self.value().isdigit():
            return queryset
        return queryset.filter(status_class=int(self.value()))


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdmin):
    # Raw ids, not the related objects: fifty rows must not mean fifty lookups per column.
    list_display = ["timestamp", "method", "path", "status_code", "cache_status", "latency_ms", "tenant_id",
                    "api_key_id", "route_id", "client_ip", "error_code"]
    list_filter = ["cache_status", MethodFilter, StatusClassFilter]
    search_fields = ["=request_id"]  # exact: the unique index answers it
    paginator = UncountedPaginator
    show_full_result_count = False
    list_per_page = 50


@admin.register(RequestRollup)
class RequestRollupAdmin(ReadOnlyAdmin):
    list_display = ["granularity", "bucket_start", "tenant_id", "api_key_id", "route_id", "status_class",
                    "cache_status", "count", "error_count"]
    list_filter = ["granularity", RollupStatusClassFilter, "cache_status"]
    paginator = UncountedPaginator
    show_full_result_count = False


@admin.register(RouteTraffic)
class RouteTrafficAdmin(ReadOnlyAdmin):
    list_display = ["day", "route_id", "requests", "unique_ips"]
    list_filter = ["day"]
    exclude = ["unique_ips_hll", "paths_cms"]
    readonly_fields = ["route", "day", "requests", "unique_ips", "top_paths"]
