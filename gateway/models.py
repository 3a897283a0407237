from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from billing.models import RateLimitAlgorithm
from gateway.validators import (
    validate_header_map,
    validate_header_names,
    validate_methods,
    validate_status_list,
    validate_targets,
)

# Ceilings for what a route may ask of the gateway processes every tenant shares: a request body
# is read into memory (up to max_body_bytes) and a connection is held for up to the timeouts.
MAX_ROUTE_BODY_BYTES = 100 * 1024 * 1024
MAX_CONNECT_TIMEOUT_MS = 60_000
MAX_UPSTREAM_TIMEOUT_MS = 600_000  # long enough for a streamed model answer
MAX_RETRY_BACKOFF_MS = 10_000


def default_cacheable_statuses() -> list[int]:
    return [200, 203, 204, 300, 301, 404, 410]


def default_methods() -> list[str]:
    return ["GET"]


class CachePolicy(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    no_store = models.BooleanField(default=False, help_text="Never cache (the 'No Cache' policy).")
    ttl_seconds = models.PositiveIntegerField(default=300)
    stale_while_revalidate_seconds = models.PositiveIntegerField(default=60)
    stale_if_error_seconds = models.PositiveIntegerField(default=300)
    respect_upstream = models.BooleanField(
        default=False, help_text="Take freshness from the upstream's Cache-Control / Expires."
    )
    vary_headers = models.JSONField(default=list, blank=True, validators=[validate_header_names])
    normalize_query = models.BooleanField(default=True, help_text="Sort query parameters in the cache key.")
    cacheable_statuses = models.JSONField(default=default_cacheable_statuses, validators=[validate_status_list])
    max_body_bytes = models.PositiveIntegerField(default=10 * 1024 * 1024)
    negative_cache_404 = models.BooleanField(default=True)
    bloom_expected_items = models.PositiveIntegerField(default=100_000, validators=[MinValueValidator(100)])
    bloom_false_positive_rate = models.FloatField(
        default=0.01, validators=[MinValueValidator(0.0001), MaxValueValidator(0.2)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "cache policies"

    def __str__(self) -> str:
        return self.name


class Route(models.Model):
    """`/g/<slug>/…` → the upstream. A tenant's own route wins over a shared one (tenant empty)."""

    class LoadBalancing(models.TextChoices):
        ROUND_ROBIN = "round_robin", "Round robin"
        WEIGHTED = "weighted", "Weighted"
        LEAST_CONNECTIONS = "least_connections", "Least connections"
        RANDOM = "random", "Random"
        CONSISTENT_HASH = "consistent_hash", "Consistent hash"

    class AuthMode(models.TextChoices):
        API_KEY = "api_key", "API key"
        JWT = "jwt", "JWT"
        NONE = "none", "None (public)"

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="routes",
        help_text="Empty = shared by every tenant.",
    )
    slug = models.SlugField(max_length=64, help_text="The path segment: /g/<slug>/…")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    upstream_targets = models.JSONField(validators=[validate_targets],
                                        help_text='[{"url": "https://api.example.com/v1", "weight": 1}]')
    load_balancing = models.CharField(max_length=20, choices=LoadBalancing.choices, default=LoadBalancing.ROUND_ROBIN)
    connect_timeout_ms = models.PositiveIntegerField(
        default=2_000, validators=[MinValueValidator(10), MaxValueValidator(MAX_CONNECT_TIMEOUT_MS)])
    read_timeout_ms = models.PositiveIntegerField(
        default=30_000, validators=[MinValueValidator(10), MaxValueValidator(MAX_UPSTREAM_TIMEOUT_MS)])
    timeout_ms = models.PositiveIntegerField(
        default=30_000, validators=[MinValueValidator(10), MaxValueValidator(MAX_UPSTREAM_TIMEOUT_MS)],
        help_text="Total deadline for the upstream exchange.")
    retry_attempts = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(5)])
    retry_backoff_ms = models.PositiveIntegerField(default=100, validators=[MaxValueValidator(MAX_RETRY_BACKOFF_MS)])
    auth_mode = models.CharField(max_length=10, choices=AuthMode.choices, default=AuthMode.API_KEY)
    methods = models.JSONField(default=default_methods, validators=[validate_methods])
    max_body_bytes = models.PositiveIntegerField(
        default=10 * 1024 * 1024, validators=[MaxValueValidator(MAX_ROUTE_BODY_BYTES)],
        help_text="The largest request body accepted (it is read into memory).")
    rate_limit_rps = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.001)])
    rate_limit_burst = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    rate_limit_algorithm = models.CharField(max_length=20, blank=True, choices=RateLimitAlgorithm.choices)
    cache_policy = models.ForeignKey(CachePolicy, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="routes")
    request_headers_add = models.JSONField(default=dict, blank=True, validators=[validate_header_map])
    request_headers_remove = models.JSONField(default=list, blank=True, validators=[validate_header_names])
    response_headers_add = models.JSONField(default=dict, blank=True, validators=[validate_header_map])
    priority = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="route_unique_slug_per_tenant"),
            models.UniqueConstraint(fields=["slug"], condition=models.Q(tenant__isnull=True),
                                    name="route_unique_shared_slug",
                                    violation_error_message="A shared route with this slug already exists."),
            models.CheckConstraint(condition=models.Q(timeout_ms__gte=10), name="route_timeout_positive"),
        ]

    def __str__(self) -> str:
        return f"/g/{self.slug}/ ({self.tenant or 'shared'})"
