"""The ASGI entry point: `/g/`, `/v1/` and `/ready` go to the data plane, the rest to Django.

Daphne (the Procfile) and uvicorn both serve `heliox_site.asgi:application`.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heliox_site.settings")

import django

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from gateway.config_publish import config_store, publish_snapshot  # noqa: E402
from gateway.runtime.app import Gateway, GatewaySettings  # noqa: E402
from gateway.runtime.cache_store import open_cache_backend  # noqa: E402
from gateway.runtime.routing import PrefixRouter  # noqa: E402

django_application = get_asgi_application()


async def _bootstrap_config() -> None:
    # Start-up only (the store holds no snapshot): the control plane builds one.
    await sync_to_async(publish_snapshot, thread_sensitive=False)()


gateway = Gateway(
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
    ),
    config_store(),
    bootstrap=_bootstrap_config,
    cache_backend=open_cache_backend(settings.CACHE_REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT),
)

if settings.EMBEDDED:
    from gateway.embedded_jobs import start_embedded_jobs

    start_embedded_jobs()

application = ProtocolTypeRouter({
    "http": PrefixRouter(gateway, django_application, prefixes=("/g/", "/v1/"), exact=("/ready",)),
    "lifespan": gateway,
})
