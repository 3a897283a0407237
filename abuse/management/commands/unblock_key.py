from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from abuse.services import api_key_unblock
from tenants.models import ApiKey


class Command(BaseCommand):
    help = "Lift every active abuse block on an API key (takes effect on every gateway at once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id", type=int)
        parser.add_argument("--reason", required=True, help="recorded on the block and in the audit trail")

    def handle(self, *args: Any, **options: Any) -> None:
        api_key = ApiKey.objects.filter(pk=options["key_id"]).first()
        if api_key is None:
            raise CommandError(f"No API key with id {options['key_id']}.")
        lifted = api_key_unblock(api_key=api_key, by=None, reason=options["reason"])
        self.stdout.write(f"Lifted {lifted} block(s) on {api_key}.")
