from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from abuse.models import AbuseEvent, AbuseScore, AbuseSignal, Block
from abuse.services import block_lift


@admin.register(Block)
class BlockAdmin(admin.ModelAdmin):
    list_display = ["created_at", "api_key", "client_ip", "reason", "anomaly_score", "rate_at_block",
                    "error_rate_at_block", "expires_at", "active", "lifted_by"]
    list_filter = ["reason", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["api_key__name", "api_key__prefix", "client_ip"]
    list_select_related = ["api_key", "lifted_by"]
    autocomplete_fields = ["api_key"]
    readonly_fields = ["created_at", "lifted_at", "lifted_by", "lift_reason"]
    actions = ["lift"]

    @admin.display(boolean=True)
    def active(self, block: Block) -> bool:
        return block.lifted_at is None and block.expires_at > timezone.now()

    @admin.action(description="Lift selected blocks (every gateway, at once)")
    def lift(self, request: HttpRequest, queryset: QuerySet[Block]) -> None:
        lifted = [block_lift(block=block, by=request.user, reason="lifted in django-admin")
                  for block in queryset.filter(lifted_at__isnull=True)]
        self.message_user(request, f"Lifted {len(lifted)} block(s).", messages.SUCCESS)


@admin.register(AbuseEvent)
class AbuseEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "kind", "api_key", "client_ip", "score"]
    list_filter = ["action", "kind"]
    search_fields = ["api_key__name", "client_ip"]
    list_select_related = ["api_key"]
    readonly_fields = ["created_at", "action", "kind", "api_key", "client_ip", "score", "detail"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AbuseScore)
class AbuseScoreAdmin(admin.ModelAdmin):
    list_display = ["api_key", "mean", "intervals", "last_z", "last_bucket"]
    list_select_related = ["api_key"]
    search_fields = ["api_key__name"]
    readonly_fields = ["api_key", "mean", "variance", "intervals", "last_bucket", "last_z", "history"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AbuseSignal)
class AbuseSignalAdmin(admin.ModelAdmin):
    list_display = ["bucket_start", "subject", "requests", "errors_4xx", "errors_5xx", "not_found", "unauthorized",
                    "scored"]
    list_filter = ["scored"]
    search_fields = ["=subject"]
    readonly_fields = ["subject", "bucket_start", "requests", "errors_4xx", "errors_5xx", "not_found",
                       "unauthorized", "path_hashes", "failed_keys", "scored"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
