from __future__ import annotations

from celery import shared_task

from gateway.config_publish import publish_snapshot


@shared_task(soft_time_limit=25, time_limit=30, ignore_result=True)
def resync_config() -> int:
    """Republish the snapshot: heals a lost publish or a Redis that restarted empty."""
    return publish_snapshot()
