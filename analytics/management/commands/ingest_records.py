from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from analytics.services import request_records_ingest


class Command(BaseCommand):
    help = ("Run one ingest pass: move waiting request records (Redis stream or in-process queue) into the "
            "request log and its rollups. The Celery beat schedule does this every second.")

    def handle(self, *args: Any, **options: Any) -> None:
        inserted = request_records_ingest()
        self.stdout.write(f"Ingested {inserted} new request records.")
