from __future__ import annotations

from django.db import models


def _loose_fk(model: str) -> models.ForeignKey:
    # No database constraint and no cascade: deleting a key, route or tenant keeps its
    # history, and the hot insert path never waits on a foreign-key check. No index of its
    # own either: the (column, timestamp) indexes below serve every lookup by it.
    return models.ForeignKey(model, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                             null=True, blank=True, related_name="+")


class CacheStatus(models.TextChoices):
    HIT = "HIT"
    MISS = "MISS"
    STALE = "STALE"
    BYPASS = "BYPASS"


class RequestLog(models.Model):
    """One row per request the gateway answered, written by the record consumer."""

    request_id = models.CharField(max_length=64)
    timestamp = models.DateTimeField()
    tenant = _loose_fk("tenants.Tenant")
    api_key = _loose_fk("tenants.ApiKey")
    route = _loose_fk("gateway.Route")
    method = models.CharField(max_length=10)
    path = models.TextField()
    status_code = models.PositiveSmallIntegerField()
    cache_status = models.CharField(max_length=6, choices=CacheStatus.choices, default=CacheStatus.BYPASS)
    upstream_latency_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField()
    bytes_in = models.PositiveBigIntegerField(default=0)
    bytes_out = models.PositiveBigIntegerField(default=0)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    error_code = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [
            models.Index(fields=["timestamp"]),
            models.Index(fields=["tenant", "timestamp"]),
            models.Index(fields=["api_key", "timestamp"]),
            models.Index(fields=["route", "timestamp"]),
        ]
        # A constraint rather than unique=True: on PostgreSQL that would add a second
        # (LIKE-pattern) index to every insert. ON CONFLICT (request_id) uses this one.
        constraints = [models.UniqueConstraint(fields=["request_id"], name="requestlog_unique_request_id")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status_code}"


class RequestRollup(models.Model):
    """Counts per time bucket and dimension. Dimension ids are 0 (not NULL) when absent,
    so the unique constraint holds and upserts hit it."""

    class Granularity(models.TextChoices):
        MINUTE = "minute"
        HOUR = "hour"
        DAY = "day"

    granularity = models.CharField(max_length=6, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    tenant_id = models.BigIntegerField(default=0)
    api_key_id = models.BigIntegerField(default=0)
    route_id = models.BigIntegerField(default=0)
    status_class = models.PositiveSmallIntegerField(help_text="2 for 2xx, 4 for 4xx, …")
    cache_status = models.CharField(max_length=6, choices=CacheStatus.choices)
    error_code = models.CharField(max_length=40, blank=True, default="",
                                  help_text="The gateway's own error code (rate_limited, blocked, …); blank otherwise.")
    count = models.PositiveBigIntegerField(default=0)
    error_count = models.PositiveBigIntegerField(default=0)
    bytes_in = models.PositiveBigIntegerField(default=0)
    bytes_out = models.PositiveBigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0)
    latency_histogram = models.JSONField(default=list, help_text="Counts per bucket of analytics.LATENCY_BUCKETS_MS.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "bucket_start", "tenant_id", "api_key_id", "route_id",
                        "status_class", "cache_status", "error_code"],
                name="rollup_unique_bucket",
            )
        ]
        # Lookups by (granularity, bucket_start) use the unique constraint's index, which
        # starts with both.
        indexes = [models.Index(fields=["granularity", "tenant_id", "bucket_start"])]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:%M}: {self.count}"


class RouteTraffic(models.Model):
    """Per route and UTC day: unique client IPs (HyperLogLog) and the hottest paths
    (count-min sketch + a short top list), maintained by the record consumer."""

    route = _loose_fk("gateway.Route")
    day = models.DateField()
    requests = models.PositiveBigIntegerField(default=0)
    unique_ips_hll = models.BinaryField(default=b"")
    paths_cms = models.BinaryField(default=b"")
    top_paths = models.JSONField(default=list, help_text="[[path, estimated requests], …] heaviest first.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["route", "day"], name="route_traffic_unique_day")]
        verbose_name_plural = "route traffic"

    def __str__(self) -> str:
        return f"route {self.route_id} on {self.day}"

    @property
    def unique_ips(self) -> int:
        from analytics.sketches import HyperLogLog

        return HyperLogLog(bytes(self.unique_ips_hll)).count()
