"""Control plane → data plane: a change made through the services reaches a running gateway
within 2 seconds (the same path django-admin takes: save, commit, publish, reload)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from billing.models import Plan
from gateway.config_publish import config_store
from gateway.runtime.app import Gateway, GatewaySettings
from gateway.services import route_create, route_update
from gateway.tests.dataplane import client_for
from tenants.services import api_key_issue, api_key_revoke, tenant_create, tenant_set_status

# serialized_rollback: the flush after a transactional test would drop the migration-seeded plans.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _world(upstream_url: str) -> tuple[object, object, str]:
    tenant = tenant_create(name="Propagation Co", plan=Plan.objects.get(slug="pro"))
    issued = api_key_issue(tenant=tenant, name="main")
    route = route_create(tenant=tenant, slug="prop", upstream_url=upstream_url, methods=["GET"])
    return tenant, route, issued


def _close_connection() -> None:
    connection.close()


async def _gateway(tmp_path: Path) -> Gateway:
    gateway = Gateway(GatewaySettings(
        pepper=settings.API_KEY_PEPPER.encode(), trusted_proxies=[], on_store_error="local",
        snapshot_path=tmp_path / "snapshot.json", resync_seconds=0.5, record_flush_interval=0.05,
        spool_path=tmp_path / "spool", pool_size=8,
    ), config_store())
    await gateway.startup()
    return gateway


async def _status_within(client: object, key: str, expected: int, seconds: float = 2.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = await client.get("/g/prop/items", headers={"X-API-Key": key})  # type: ignore[attr-defined]
        if response.status_code == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"status {expected} not seen within {seconds} s")


async def test_revoke_suspend_and_route_changes_reach_a_running_gateway(tmp_path: Path, upstream: object) -> None:
    tenant, route, issued = await sync_to_async(_world)(upstream.url)  # type: ignore[attr-defined]
    gateway = await _gateway(tmp_path)
    async with client_for(gateway) as client:
        await _status_within(client, issued.secret, 200)

        await sync_to_async(route_update)(route=route, methods=["POST"])
        await _status_within(client, issued.secret, 405)
        await sync_to_async(route_update)(route=route, methods=["GET"])
        await _status_within(client, issued.secret, 200)

        await sync_to_async(tenant_set_status)(tenant=tenant, status="suspended")
        await _status_within(client, issued.secret, 403)
        await sync_to_async(tenant_set_status)(tenant=tenant, status="active")
        await _status_within(client, issued.secret, 200)

        await sync_to_async(api_key_revoke)(api_key=issued.api_key)
        await _status_within(client, issued.secret, 401)
    await gateway.shutdown()
    # The ORM ran in sync_to_async's thread: give its connection back, or the test
    # database cannot be dropped at the end of the run.
    await sync_to_async(_close_connection)()
