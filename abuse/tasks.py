from __future__ import annotations

from celery import shared_task

from abuse.services import abuse_score_intervals


@shared_task(soft_time_limit=8, time_limit=10, ignore_result=True)
def score_abuse_intervals() -> int:
    return len(abuse_score_intervals())
