from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.example_upstream import serve_forever


class Command(BaseCommand):
    help = "Run the bundled example upstream (the demo's, the tests' and the benchmark's) until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8001, help="port to listen on (default 8001; 0 = any)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["port"] <= 65535:
            raise CommandError(f"--port {options['port']} is not a TCP port (0-65535).")
        try:
            serve_forever(options["host"], options["port"])
        except OSError as exc:  # address in use, unknown host
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from exc
