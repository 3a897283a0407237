from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heliox_site.settings")

app = Celery("heliox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Schedules live in code (not the database) so every deployment runs the same beat.
app.conf.beat_schedule = {
    "ingest-request-records": {"task": "analytics.tasks.ingest_request_records", "schedule": 1.0},
    "resync-config": {"task": "gateway.tasks.resync_config", "schedule": 30.0},
    "score-abuse-intervals": {"task": "abuse.tasks.score_abuse_intervals", "schedule": 10.0},
    "prune-analytics": {"task": "analytics.tasks.prune_analytics", "schedule": 3600.0},
}
