from __future__ import annotations

import math
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from abuse.models import AbuseEvent, AbuseScore, AbuseSignal, Block, BlockReason
from abuse.services import block_create, block_lift

BLOCK_FIELDS = ["api_key", "client_ip", "reason", "reason_detail", "expires_at"]


class ManualBlockForm(forms.ModelForm):
    class Meta:
        model = Block
        fields = BLOCK_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "reason" in self.fields:  # absent on the change form, where every field is read-only
            self.fields["reason"].initial = BlockReason.MANUAL

    def clean_client_ip(self) -> str | None:
        # The form field gives "" for no address, which passes the model's check constraint in
        # Python (not NULL) yet is stored as NULL: the database would then refuse the row.
        return self.cleaned_data["client_ip"] or None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("api_key") and not cleaned.get("client_ip") and "client_ip" not in self.errors:
            raise forms.ValidationError("Block a key, a client IP address, or both.")
        return cleaned

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("A block must end in the future.")
        return expires_at


@admin.register(Block)
class BlockAdmin(admin.ModelAdmin):
    form = ManualBlockForm
    list_display = ["created_at", "api_key", "client_ip", "reason", "anomaly_score", "rate_at_block",
                    "error_rate_at_block", "expires_at", "active", "lifted_by"]
    list_filter = ["reason", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["api_key__name", "api_key__prefix", "client_ip"]
    list_select_related = ["api_key", "lifted_by"]
    autocomplete_fields = ["api_key"]
    actions = ["lift"]

    @admin.display(boolean=True)
    def active(self, block: Block) -> bool:
        return block.lifted_at is None and block.expires_at > timezone.now()

    def get_readonly_fields(self, request: HttpRequest, obj: Block | None = None) -> list[str]:
        # A block is a record of what the gateways enforce from the store: editing the row
        # would not change that, so after creation it only changes by being lifted.
        if obj is None:
            return []
        return [*BLOCK_FIELDS, "anomaly_score", "rate_at_block", "error_rate_at_block", "created_at", "lifted_at",
                "lifted_by", "lift_reason"]

    def save_model(self, request: HttpRequest, obj: Block, form: Any, change: bool) -> None:
        if change:
            return  # every field is read-only once the block exists
        data = form.cleaned_data
        seconds = max(1, math.ceil((data["expires_at"] - timezone.now()).total_seconds()))
        # block_create, not save(): it also puts a key's block in the store the gateways read.
        block = block_create(api_key=data["api_key"], client_ip=data["client_ip"], reason=data["reason"],
                             detail=data["reason_detail"], seconds=seconds)
        obj.pk, obj.created_at, obj.expires_at = block.pk, block.created_at, block.expires_at

    @admin.action(description="Lift selected blocks (every gateway, at once)", permissions=["change"])
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
