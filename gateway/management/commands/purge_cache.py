from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.cache_purge import cache_purge
from gateway.models import Route
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Remove cached responses of a route (optionally one tenant's, or under a path prefix), or all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--route", help="route slug (every route with that slug, shared and per-tenant)")
        parser.add_argument("--prefix", default="", help="only paths below /g/<route> starting with this")
        parser.add_argument("--tenant", help="tenant slug: only that tenant's entries")
        parser.add_argument("--all", action="store_true", help="every route")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["route"] and not options["all"]:
            raise CommandError("Say --route SLUG or --all.")
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        routes = None
        if options["route"]:
            routes = list(Route.objects.filter(slug=options["route"]))
            if not routes:
                raise CommandError(f"No route with slug {options['route']!r}.")
        try:
            purged = cache_purge(routes=routes, tenant=tenant, prefix=options["prefix"], everything=options["all"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"Purged {purged} cached responses.")
