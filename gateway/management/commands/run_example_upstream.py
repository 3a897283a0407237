from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gateway.example_upstream import serve_forever


class Command(BaseCommand):
    help = "Run the bundled example upstream (the demo's, the tests' and the benchmark's)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)

    def handle(self, *args: Any, **options: Any) -> None:
        serve_forever(options["host"], options["port"])
