from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.demo import DemoSummary, demo_seed


class Command(BaseCommand):
    help = "Create (or bring back) the original Heliox Proxy's demo: tenants, keys, policies, routes, an admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--upstream-url", default=settings.EXAMPLE_UPSTREAM_URL,
                            help="where the demo routes point (default: EXAMPLE_UPSTREAM_URL)")
        parser.add_argument("--admin-password", help="set the admin's password to this (for scripts)")
        parser.add_argument("--reset-admin-password", action="store_true",
                            help="generate a new admin password and print it")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = demo_seed(upstream_url=options["upstream_url"], admin_password=options["admin_password"],
                                reset_admin_password=options["reset_admin_password"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self._print(summary)

    def _print(self, summary: DemoSummary) -> None:
        write = self.stdout.write
        write(self.style.SUCCESS(f"Demo ready: {summary.created} created, {summary.updated} updated."))
        write("\nAPI keys (demo only, never use them in production):")
        for tenant, name, secret in summary.keys:
            write(f"  {tenant:<20} {name:<22} {secret}")
        write("\nRoutes:")
        for route in summary.routes:
            write(f"  {route}")
        if summary.admin_password:
            write(f"\nAdmin: /admin/  user {summary.admin_username}  password {summary.admin_password}")
        else:
            write(f"\nAdmin: /admin/  user {summary.admin_username}  (password unchanged; "
                  "--reset-admin-password prints a new one)")
        write("\nTry:")
        for line in summary.curl_examples:
            write(f"  {line}")
