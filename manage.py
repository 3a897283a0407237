#!/usr/bin/env python
from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heliox_site.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - a bad setting stops here with its own message
    except ImproperlyConfigured as exc:
        sys.exit(f"heliox: configuration error: {exc}")

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
