from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models


class RateLimitAlgorithm(models.TextChoices):
    TOKEN_BUCKET = "token_bucket", "Token bucket"
    SLIDING_WINDOW = "sliding_window", "Sliding window"
    LEAKY_BUCKET = "leaky_bucket", "Leaky bucket (GCRA)"


class Plan(models.Model):
    """Limits a tenant buys. A quota or cap of 0 means unlimited."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    rps = models.FloatField(validators=[MinValueValidator(0.001)], help_text="Sustained requests per second.")
    burst = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    algorithm = models.CharField(
        max_length=20, choices=RateLimitAlgorithm.choices, default=RateLimitAlgorithm.TOKEN_BUCKET
    )
    quota_daily = models.PositiveBigIntegerField(default=0, help_text="0 = unlimited")
    quota_monthly = models.PositiveBigIntegerField(default=0, help_text="0 = unlimited")
    max_keys = models.PositiveIntegerField(default=0, help_text="0 = unlimited")
    max_routes = models.PositiveIntegerField(default=0, help_text="0 = unlimited")
    price_monthly = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    features = models.JSONField(default=dict, blank=True)
    exempt_from_auto_block = models.BooleanField(
        default=False, help_text="Abuse detection only tightens limits, never blocks."
    )
    is_public = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["price_monthly", "name"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    class Status(models.TextChoices):
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(current_period_end__gt=models.F("current_period_start")),
                name="subscription_period_ordered",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan}"


class CreditBalance(models.Model):
    """AI spend balance; changed only through CreditLedger entries (billing.services)."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="credit_balance")
    balance = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant}: {self.balance}"


class CreditLedger(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="credit_entries")
    amount = models.DecimalField(max_digits=14, decimal_places=6)
    reason = models.CharField(max_length=200)
    # One entry per request: a replayed charge is refused by the database, not by luck.
    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"])]
        verbose_name_plural = "credit ledger entries"

    def __str__(self) -> str:
        return f"{self.amount} {self.reason}"
