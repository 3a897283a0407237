"""Retention: raw request logs for REQUEST_LOG_RETENTION_DAYS, rollups longer.

Deletes run in bounded batches (by primary key), so a first prune of a large table never
holds one huge transaction or lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from analytics.models import RequestLog, RequestRollup

PRUNE_BATCH = 5000


@dataclass(frozen=True)
class PruneResult:
    request_logs: int
    minute_rollups: int
    rollups: int


def _delete_in_batches(queryset: QuerySet, batch: int) -> int:
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]


def analytics_prune(*, now: dt.datetime | None = None, batch: int = PRUNE_BATCH) -> PruneResult:
    now = now or timezone.now()
    days = dt.timedelta(days=1)
    minute = RequestRollup.Granularity.MINUTE
    return PruneResult(
        request_logs=_delete_in_batches(
            RequestLog.objects.filter(timestamp__lt=now - settings.REQUEST_LOG_RETENTION_DAYS * days), batch),
        minute_rollups=_delete_in_batches(RequestRollup.objects.filter(
            granularity=minute, bucket_start__lt=now - settings.ROLLUP_MINUTE_RETENTION_DAYS * days), batch),
        rollups=_delete_in_batches(RequestRollup.objects.exclude(granularity=minute).filter(
            bucket_start__lt=now - settings.ROLLUP_RETENTION_DAYS * days), batch),
    )
