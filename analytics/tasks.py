from __future__ import annotations

from celery import shared_task

from analytics.retention import analytics_prune
from analytics.services import request_records_ingest


@shared_task(soft_time_limit=25, time_limit=30, ignore_result=True)
def ingest_request_records() -> int:
    return request_records_ingest()


@shared_task(soft_time_limit=540, time_limit=600, ignore_result=True)
def prune_analytics() -> int:
    result = analytics_prune()
    return result.request_logs + result.minute_rollups + result.rollups
