from __future__ import annotations

from django.apps import AppConfig


class AbuseConfig(AppConfig):
    name = "abuse"
