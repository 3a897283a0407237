from __future__ import annotations

import asyncio
from typing import Any

from celery import shared_task

from gateway.config_publish import publish_snapshot


@shared_task(soft_time_limit=25, time_limit=30, ignore_result=True)
def resync_config() -> int:
    """Republish the snapshot: heals a lost publish or a Redis that restarted empty."""
    return publish_snapshot()


@shared_task(soft_time_limit=50, time_limit=60, ignore_result=True, acks_late=False)
def refresh_cache_entry(job: dict[str, Any]) -> bool:
    """Refresh one stale cache entry (dispatched by a gateway on a stale-while-revalidate hit),
    under the same single-refresh lock the gateways use."""
    return asyncio.run(_refresh(job))


async def _refresh(job: dict[str, Any]) -> bool:
    from gateway.data_plane import build_gateway

    gateway = build_gateway()
    try:
        if not await gateway.watcher.load_once():
            return False
        return await gateway.caching.refresh_now(job)
    finally:
        await gateway.forwarder.close()
        # Clients are bound to this task's event loop, which asyncio.run is about to close.
        for resource in (gateway.store, gateway.caching.cache.backend):
            close = getattr(resource, "close", None)
            if close is not None:
                await close()
