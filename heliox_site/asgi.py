"""The ASGI entry point: `/g/`, `/v1/` and `/ready` go to the data plane, the rest to Django.

Daphne (the Procfile) and uvicorn both serve `heliox_site.asgi:application`.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heliox_site.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from gateway.data_plane import build_gateway, http_application, refresh_dispatcher  # noqa: E402

django_application = get_asgi_application()
gateway = build_gateway(dispatch_refresh=refresh_dispatcher())

if settings.EMBEDDED:
    from gateway.embedded_jobs import start_embedded_jobs

    start_embedded_jobs()

application = ProtocolTypeRouter({
    "http": http_application(gateway, django_application),
    "lifespan": gateway,
})
