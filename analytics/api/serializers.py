from __future__ import annotations

from rest_framework import serializers

from analytics.models import CacheStatus


class WindowQuery(serializers.Serializer):
    hours = serializers.IntegerField(min_value=1, max_value=168, default=24)
    tenant_id = serializers.IntegerField(min_value=1, required=False)


class TopQuery(WindowQuery):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)


class ServiceHealthQuery(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=1440, default=15,
                                       help_text="The traffic figures cover the minute rollups of this many minutes.")


class LogQuery(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=50)
    tenant_id = serializers.IntegerField(min_value=1, required=False)
    api_key_id = serializers.IntegerField(min_value=1, required=False)
    route_id = serializers.IntegerField(min_value=1, required=False)
    status_code = serializers.IntegerField(min_value=100, max_value=599, required=False)
    cache_status = serializers.ChoiceField(choices=CacheStatus.values, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
