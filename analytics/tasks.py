from __future__ import annotations

from celery import shared_task

from analytics.services import request_records_ingest


@shared_task(soft_time_limit=25, time_limit=30, ignore_result=True)
def ingest_request_records() -> int:
    return request_records_ingest()
