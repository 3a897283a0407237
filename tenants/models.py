from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.models import RateLimitAlgorithm
from gateway.validators import validate_cidr_list, validate_scopes, validate_slug_list


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    plan = models.ForeignKey("billing.Plan", on_delete=models.PROTECT, related_name="tenants")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} → {self.tenant} ({self.role})"


class ApiKey(models.Model):
    """An API key. The secret is shown once at issue and stored nowhere: only its HMAC.

    Limits left empty inherit the tenant's plan; a quota of 0 means unlimited.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    class Environment(models.TextChoices):
        LIVE = "live", "Live"
        TEST = "test", "Test"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, help_text="The first characters, for recognising a key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    environment = models.CharField(max_length=10, choices=Environment.choices, default=Environment.LIVE)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=list, blank=True, validators=[validate_scopes],
                              help_text="Empty = every scope.")
    allowed_routes = models.JSONField(default=list, blank=True, validators=[validate_slug_list],
                                      help_text="Route slugs; empty = every route.")
    ip_allowlist = models.JSONField(default=list, blank=True, validators=[validate_cidr_list],
                                    help_text="CIDRs; empty = any address.")
    rate_limit_rps = models.FloatField(null=True, blank=True)
    rate_limit_burst = models.PositiveIntegerField(null=True, blank=True)
    rate_limit_algorithm = models.CharField(max_length=20, blank=True, choices=RateLimitAlgorithm.choices,
                                            help_text="Empty = the plan's algorithm.")
    quota_daily = models.PositiveBigIntegerField(null=True, blank=True)
    quota_monthly = models.PositiveBigIntegerField(null=True, blank=True)
    rotated_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="rotated_to")
    grace_until = models.DateTimeField(null=True, blank=True,
                                       help_text="A rotated-out key keeps working until then.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(rate_limit_rps__isnull=True) | models.Q(rate_limit_rps__gt=0),
                                   name="apikey_rps_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…{self.last4})"

    @property
    def display(self) -> str:
        return f"{self.prefix}…{self.last4}"

    def is_usable(self, now: timezone.datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.status != self.Status.ACTIVE:
            return False
        if self.expires_at and self.expires_at <= now:
            return False
        return not (self.grace_until and self.grace_until <= now)


class AuditEntry(models.Model):
    """One write made through an API: who, what, the object before and after, when.

    `actor` is a label that outlives the user (or admin key) it names."""

    class Source(models.TextChoices):
        ADMIN_API = "admin_api", "Admin API"
        PORTAL = "portal", "Portal"

    actor = models.CharField(max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="audit_entries")
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True, db_constraint=False,
                               related_name="+", help_text="The tenant the change was made in, if any.")
    source = models.CharField(max_length=20, choices=Source.choices)
    action = models.CharField(max_length=40)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=300)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["target_type", "target_id"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target_repr}"


class EmailVerification(models.Model):
    """The code e-mailed at signup. Only its hash is kept; it expires and works once."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="email_verification")
    code_hash = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} ({'verified' if self.verified_at else 'pending'})"
