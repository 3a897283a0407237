"""`/admin/api/analytics/…`: the original Heliox admin API's analytics, read from rollups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from analytics import selectors
from analytics.api.serializers import LogQuery, TopQuery, WindowQuery


def _query(serializer_class: type[Serializer], request: Request) -> dict[str, Any]:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


class _WindowView(APIView):
    query_class: type[Serializer] = WindowQuery
    selector: Callable[..., dict[str, Any]]

    def get(self, request: Request) -> Response:
        query = _query(self.query_class, request)
        window = selectors.Window.last(query.pop("hours"))
        return Response(type(self).selector(window=window, **query))


@extend_schema(parameters=[WindowQuery], responses=OpenApiTypes.OBJECT)
class SummaryView(_WindowView):
    selector = staticmethod(selectors.analytics_summary)


@extend_schema(parameters=[TopQuery], responses=OpenApiTypes.OBJECT)
class TopKeysView(_WindowView):
    query_class = TopQuery
    selector = staticmethod(selectors.analytics_top_keys)


@extend_schema(parameters=[TopQuery], responses=OpenApiTypes.OBJECT)
class TopRoutesView(_WindowView):
    query_class = TopQuery
    selector = staticmethod(selectors.analytics_top_routes)


@extend_schema(parameters=[WindowQuery], responses=OpenApiTypes.OBJECT)
class CacheHitRateView(_WindowView):
    selector = staticmethod(selectors.analytics_cache_hit_rate)


@extend_schema(parameters=[LogQuery], responses=OpenApiTypes.OBJECT)
class LogsView(APIView):
    def get(self, request: Request) -> Response:
        query = _query(LogQuery, request)
        page, page_size = query.pop("page"), query.pop("page_size")
        return Response(selectors.request_log_page(filters=query, page=page, page_size=page_size))
