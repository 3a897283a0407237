"""Wires the data plane from Django settings: used by the ASGI entry point and by the
Celery worker that runs dispatched cache refreshes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from gateway.config_publish import config_store, publish_snapshot
from gateway.runtime.app import Gateway, GatewaySettings
from gateway.runtime.cache_store import open_cache_backend
from gateway.runtime.date_header import DateHeader
from gateway.runtime.routing import PrefixRouter


async def _bootstrap_config() -> None:
    # Start-up only (the store holds no snapshot): the control plane builds one.
    await sync_to_async(publish_snapshot, thread_sensitive=False)()


async def _dispatch_refresh(job: dict[str, Any]) -> None:
    """Enqueue a cache refresh for a Celery worker, off the event loop. retry=False: a broker
    that is down fails at once, and the gateway refreshes in process instead."""
    from gateway.tasks import refresh_cache_entry

    send = functools.partial(refresh_cache_entry.apply_async, args=[job], retry=False, ignore_result=True)
    await asyncio.get_running_loop().run_in_executor(None, send)


def refresh_dispatcher() -> Callable[[dict[str, Any]], Awaitable[None]] | None:
    """Celery when a broker is configured; None (refresh in process) in embedded mode."""
    return None if settings.CELERY_TASK_ALWAYS_EAGER else _dispatch_refresh


def build_gateway(*, dispatch_refresh: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> Gateway:
    return Gateway(
        GatewaySettings(
            pepper=settings.API_KEY_PEPPER.encode(),
            trusted_proxies=settings.TRUSTED_PROXIES,
            on_store_error=settings.RATELIMIT_ON_STORE_ERROR,
            snapshot_path=settings.SNAPSHOT_PATH,
            resync_seconds=settings.SNAPSHOT_RESYNC_SECONDS,
            record_flush_interval=settings.RECORD_FLUSH_INTERVAL_SECONDS,
            spool_path=settings.RECORD_SPOOL_PATH,
            pool_size=settings.UPSTREAM_POOL_SIZE,
            dropped_cookies=frozenset({settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}),
            version=settings.GATEWAY_VERSION,
            records_enabled=settings.REQUEST_RECORDS,
            circuit_failure_threshold=settings.CIRCUIT_FAILURE_THRESHOLD,
            circuit_open_seconds=settings.CIRCUIT_OPEN_SECONDS,
        ),
        config_store(),
        bootstrap=_bootstrap_config,
        cache_backend=open_cache_backend(settings.CACHE_REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT),
        dispatch_refresh=dispatch_refresh,
    )


def http_application(gateway: Gateway, django_application: Any) -> PrefixRouter:
    """`/g/`, `/v1/` and `/ready` to the data plane, the rest to Django. The gateway dates its
    own responses on the hot path; Django's go through DateHeader."""
    return PrefixRouter(gateway, DateHeader(django_application), prefixes=("/g/", "/v1/"), exact=("/ready",))
