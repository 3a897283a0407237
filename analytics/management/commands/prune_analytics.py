from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.retention import PRUNE_BATCH, analytics_prune


class Command(BaseCommand):
    help = (f"Delete request logs older than REQUEST_LOG_RETENTION_DAYS ({settings.REQUEST_LOG_RETENTION_DAYS}) "
            "and rollups past their retention, in bounded batches.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=PRUNE_BATCH, help=f"rows per delete (default {PRUNE_BATCH})")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        result = analytics_prune(batch=options["batch"])
        self.stdout.write(f"Deleted {result.request_logs} request logs, {result.minute_rollups} minute rollups "
                          f"and {result.rollups} hour/day rollups.")
