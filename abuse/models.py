from __future__ import annotations

from django.conf import settings
from django.db import models


class BlockReason(models.TextChoices):
    ANOMALY = "anomaly", "Traffic anomaly (Z-score)"
    ERROR_STORM = "error_storm", "Error storm"
    KEY_GUESSING = "key_guessing", "Key guessing"
    MANUAL = "manual", "Manual"


class Block(models.Model):
    """A block on a key (or, for key guessing, a client IP). Enforced from Redis with a TTL;
    this row is the record of it."""

    api_key = models.ForeignKey("tenants.ApiKey", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="blocks")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    reason = models.CharField(max_length=20, choices=BlockReason.choices)
    reason_detail = models.TextField(blank=True)
    anomaly_score = models.FloatField(null=True, blank=True)
    rate_at_block = models.FloatField(null=True, blank=True)
    error_rate_at_block = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+")
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["api_key", "expires_at"]), models.Index(fields=["expires_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(api_key__isnull=False) | models.Q(client_ip__isnull=False),
                                   name="block_has_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} on {self.api_key or self.client_ip}"


class AbuseEvent(models.Model):
    """Every decision the scorer makes (flag, soft limit, block, unblock)."""

    class Action(models.TextChoices):
        FLAGGED = "flagged"
        SOFT_LIMIT = "soft_limit"
        BLOCKED = "blocked"
        UNBLOCKED = "unblocked"

    api_key = models.ForeignKey("tenants.ApiKey", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="abuse_events")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=BlockReason.choices)
    action = models.CharField(max_length=20, choices=Action.choices)
    score = models.FloatField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["api_key", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.kind}"
