"""`/admin/api/analytics/…`: the original Heliox admin API's analytics, read from rollups; and
`/admin/api/services/…/health`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from analytics import selectors
from analytics.api.serializers import LogQuery, ServiceHealthQuery, TopQuery, WindowQuery
from analytics.service_health import overall_status, services_health
from gateway.runtime.store import StoreError
from heliox_site.api.errors import error_response

log = logging.getLogger(__name__)


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


def _circuits_unavailable() -> HttpResponseBase:
    log.warning("service health: the store is unavailable", exc_info=True)
    return error_response(503, "unavailable", "The metrics store (Redis), which holds the circuits, is unavailable.")


class ServicesHealthView(APIView):
    """Every service (route slug): its targets' circuits and its last minutes' traffic. 200 whether
    `status` is healthy or degraded: the gateway answers either way."""

    @extend_schema(parameters=[ServiceHealthQuery], responses=OpenApiTypes.OBJECT, operation_id="services_health_list")
    def get(self, request: Request) -> HttpResponseBase:
        minutes = _query(ServiceHealthQuery, request)["minutes"]
        try:
            services = services_health(minutes=minutes)
        except StoreError:
            return _circuits_unavailable()
        return Response({"status": overall_status(services), "minutes": minutes, "services": services})


class ServiceHealthView(APIView):
    @extend_schema(parameters=[ServiceHealthQuery], responses=OpenApiTypes.OBJECT,
                   operation_id="service_health_retrieve")
    def get(self, request: Request, name: str) -> HttpResponseBase:
        minutes = _query(ServiceHealthQuery, request)["minutes"]
        try:
            found = services_health(minutes=minutes, name=name)
        except StoreError:
            return _circuits_unavailable()
        if not found:
            raise NotFound()
        return Response({**found[0], "minutes": minutes})
