from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from billing.models import CreditBalance, CreditLedger, Plan, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "rps", "burst", "algorithm", "quota_daily", "quota_monthly", "max_keys", "max_routes",
                    "price_monthly", "exempt_from_auto_block", "is_public"]
    list_filter = ["algorithm", "is_public", "exempt_from_auto_block"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["tenant", "plan", "status", "current_period_end", "trial_ends_at"]
    list_filter = ["status", "plan"]
    search_fields = ["tenant__name"]
    list_select_related = ["tenant", "plan"]
    # tenant_create makes the one subscription a tenant has, and the plan is changed on the
    # tenant (tenant_change_plan keeps both in step): here they are only shown.
    readonly_fields = ["tenant", "plan", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CreditBalance)
class CreditBalanceAdmin(admin.ModelAdmin):
    list_display = ["tenant", "balance", "updated_at"]
    search_fields = ["tenant__name"]
    autocomplete_fields = ["tenant"]
    list_select_related = ["tenant"]
    # The balance moves only through ledger entries, never by hand.
    readonly_fields = ["balance", "updated_at"]


@admin.register(CreditLedger)
class CreditLedgerAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "amount", "reason", "request_id"]
    search_fields = ["tenant__name", "=request_id", "reason"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "amount", "reason", "request_id", "created_at"]

    # The ledger is what the balance is summed from: an entry is never added, edited or
    # removed by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
