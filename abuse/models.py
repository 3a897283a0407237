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


class AbuseSignal(models.Model):
    """What one subject (`k<key id>` or `ip:<address>`) did in one interval, folded in by the
    record consumer from request records (never on the request path)."""

    subject = models.CharField(max_length=64)
    bucket_start = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    errors_4xx = models.PositiveIntegerField(default=0, help_text="Client errors other than 404.")
    errors_5xx = models.PositiveIntegerField(default=0)
    not_found = models.PositiveIntegerField(default=0)
    unauthorized = models.PositiveIntegerField(default=0)
    path_hashes = models.JSONField(default=list, help_text="Distinct paths (short hashes, capped).")
    failed_keys = models.JSONField(default=list, help_text="Distinct invalid keys tried (digest prefixes).")
    scored = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "bucket_start"], name="abuse_signal_unique")]
        indexes = [models.Index(fields=["scored", "bucket_start"])]

    def __str__(self) -> str:
        return f"{self.subject} @ {self.bucket_start:%H:%M:%S}: {self.requests}"


class AbuseScore(models.Model):
    """A key's EWMA state and its recent score history (for the chart on its admin page)."""

    api_key = models.OneToOneField("tenants.ApiKey", on_delete=models.CASCADE, related_name="abuse_score")
    mean = models.FloatField(default=0)
    variance = models.FloatField(default=0)
    intervals = models.PositiveIntegerField(default=0)
    last_bucket = models.DateTimeField(null=True, blank=True)
    last_z = models.FloatField(default=0)
    history = models.JSONField(default=list, help_text="[[epoch, rate, z], …], newest last.")

    def __str__(self) -> str:
        return f"{self.api_key}: z={self.last_z:.2f}"
