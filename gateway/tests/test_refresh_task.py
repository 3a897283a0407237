"""The Celery side of stale-while-revalidate: a job a gateway enqueued, run by the task as a
worker runs it (in its own thread and event loop), refreshes the entry the gateway serves."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from billing.models import Plan
from gateway.config_publish import publish_snapshot
from gateway.data_plane import build_gateway, refresh_dispatcher
from gateway.services import cache_policy_create, route_create
from gateway.tasks import refresh_cache_entry
from gateway.tests.dataplane import client_for
from tenants.services import api_key_issue, tenant_create

# serialized_rollback: the flush after a transactional test would drop the migration-seeded plans.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _world(upstream_url: str) -> str:
    policy = cache_policy_create(name="Always stale", ttl_seconds=0, stale_while_revalidate_seconds=600)
    tenant = tenant_create(name="Refresh Co", plan=Plan.objects.get(slug="pro"))
    route_create(tenant=tenant, slug="fresh", upstream_url=upstream_url, methods=["GET"], cache_policy=policy)
    secret = api_key_issue(tenant=tenant, name="k").secret
    publish_snapshot()
    connection.close()
    return secret


async def test_the_worker_task_refreshes_what_the_gateway_serves(upstream: Any) -> None:
    secret = await sync_to_async(_world)(upstream.url)
    jobs: list[dict[str, Any]] = []

    async def enqueue(job: dict[str, Any]) -> None:
        jobs.append(job)

    gateway = build_gateway(dispatch_refresh=enqueue)
    await gateway.startup()
    async with client_for(gateway) as client:
        first = await client.get("/g/fresh/cache/public", headers={"X-API-Key": secret})
        stale = await client.get("/g/fresh/cache/public", headers={"X-API-Key": secret})
        await asyncio.sleep(0.1)
        assert stale.headers["x-cache"] == "STALE"
        assert stale.json()["counter"] == first.json()["counter"]
        assert len(jobs) == 1
        assert await asyncio.to_thread(refresh_cache_entry, jobs[0]) is True
        after = await client.get("/g/fresh/cache/public", headers={"X-API-Key": secret})
    assert after.json()["counter"] > first.json()["counter"]
    await gateway.shutdown()


def test_gateways_enqueue_to_celery_only_when_there_is_a_broker() -> None:
    from django.conf import settings

    assert (refresh_dispatcher() is None) == settings.CELERY_TASK_ALWAYS_EAGER
