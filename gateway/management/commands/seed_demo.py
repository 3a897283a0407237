from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from gateway.demo import demo_seed


class Command(BaseCommand):
    help = "Create (or bring back) the original Heliox Proxy's demo: tenants, keys, policies, routes, an admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--upstream-url", default=settings.EXAMPLE_UPSTREAM_URL,
                            help="where the demo routes point (default: EXAMPLE_UPSTREAM_URL)")
        parser.add_argument("--admin-password", help="set the admin's password to this")
        parser.add_argument("--reset-admin-password", action="store_true", help="generate and print a new one")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = demo_seed(upstream_url=options["upstream_url"], admin_password=options["admin_password"],
                            reset_admin_password=options["reset_admin_password"])
        write = self.stdout.write
        write(self.style.SUCCESS(f"Demo ready ({summary.created} objects created)."))
        write("\nAPI keys (demo only):")
        for tenant, name, secret in summary.keys:
            write(f"  {tenant:<20} {name:<22} {secret}")
        write("\nRoutes: " + ", ".join(summary.routes))
        if summary.admin_password:
            write(f"\nAdmin: /admin/  user {summary.admin_username}  password {summary.admin_password}")
        else:
            write(f"\nAdmin: /admin/  user {summary.admin_username}  (password unchanged; "
                  "--reset-admin-password prints a new one)")
        write("\nTry:")
        write("  curl -i -H 'X-API-Key: hx_prod_acme_7k9m2n4p5q8r1s3t6u0v' http://localhost:8000/g/demo/items")
        write("  curl -i -H 'X-API-Key: hx_prod_acme_7k9m2n4p5q8r1s3t6u0v' http://localhost:8000/g/products/items/1")
