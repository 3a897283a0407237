"""The periodic jobs Celery beat runs in production, run by a thread in embedded mode."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections

log = logging.getLogger(__name__)
_started = False
_lock = threading.Lock()


def _jobs() -> list[tuple[float, Callable[[], object]]]:
    from abuse.services import abuse_score_intervals
    from analytics.retention import analytics_prune
    from analytics.services import request_records_ingest
    from gateway.config_publish import publish_snapshot

    return [(0.5, request_records_ingest), (10.0, abuse_score_intervals), (60.0, publish_snapshot),
            (3600.0, analytics_prune)]


def _run(jobs: list[tuple[float, Callable[[], object]]]) -> None:
    due = [0.0] * len(jobs)
    while True:
        now = time.monotonic()
        for index, (every, job) in enumerate(jobs):
            if now >= due[index]:
                due[index] = now + every
                try:
                    job()
                except Exception:
                    log.exception("embedded job %s failed", getattr(job, "__name__", job))
                finally:
                    close_old_connections()
        time.sleep(0.1)


def start_embedded_jobs() -> None:
    global _started
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_run, args=(_jobs(),), name="heliox-embedded-jobs", daemon=True).start()
