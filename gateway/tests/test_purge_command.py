"""`manage.py purge_cache` really removes what a running gateway cached, and says how many."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from billing.models import Plan
from gateway.cache_purge import cache_backend
from gateway.config_publish import config_store, publish_snapshot
from gateway.services import cache_policy_create, route_create
from gateway.tests.dataplane import client_for, make_gateway
from tenants.services import api_key_issue, tenant_create

# serialized_rollback: the flush after a transactional test would drop the migration-seeded plans.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _world(upstream_url: str) -> str:
    policy = cache_policy_create(name="Purge test", ttl_seconds=300)
    tenant = tenant_create(name="Purge Co", plan=Plan.objects.get(slug="pro"))
    route_create(tenant=tenant, slug="purgeable", upstream_url=upstream_url, methods=["GET"], cache_policy=policy)
    secret = api_key_issue(tenant=tenant, name="k").secret
    publish_snapshot()
    return secret


def _purge(*args: str) -> str:
    out = io.StringIO()
    call_command("purge_cache", *args, stdout=out)
    connection.close()
    return out.getvalue()


async def test_purge_cache_removes_entries_a_gateway_stored(tmp_path: Path, upstream: object) -> None:
    secret = await sync_to_async(_world)(upstream.url)  # type: ignore[attr-defined]
    gateway = make_gateway(config_store(), tmp_path, cache_backend=cache_backend(),
                           pepper=settings.API_KEY_PEPPER.encode())
    await gateway.startup()
    async with client_for(gateway) as client:
        for path in ("/g/purgeable/items/1", "/g/purgeable/items/2", "/g/purgeable/health"):
            await client.get(path, headers={"X-API-Key": secret})
        assert (await client.get("/g/purgeable/items/1", headers={"X-API-Key": secret})).headers["x-cache"] == "HIT"
        assert "Purged 2 cached responses." in await sync_to_async(_purge)("--route", "purgeable", "--prefix", "/items")
        assert (await client.get("/g/purgeable/items/1", headers={"X-API-Key": secret})).headers["x-cache"] == "MISS"
        assert "Purged 0 cached responses." in await sync_to_async(_purge)("--route", "purgeable", "--prefix", "/none")
        assert "Purged 2 cached responses." in await sync_to_async(_purge)("--all")
    await gateway.shutdown()


def test_purge_cache_refuses_an_unknown_route_or_no_selection() -> None:
    with pytest.raises(CommandError, match="No route"):
        call_command("purge_cache", "--route", "nope")
    with pytest.raises(CommandError, match="--route SLUG or --all"):
        call_command("purge_cache")
