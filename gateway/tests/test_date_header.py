"""One `Date` header on every response: the upstream's on proxied and cached answers, the
current time on the gateway's own and on Django's (Daphne adds none; uvicorn runs with
`--no-date-header`)."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest
from django.core.asgi import get_asgi_application

from gateway.runtime.date_header import DateHeader
from gateway.tests.dataplane import Config, client_for, key_entry, route_entry
from gateway.tests.test_cache import policy

KEY = "hx_live_datedatedatedatedate0001"


def _only_date(response: httpx.Response) -> float:
    (value,) = response.headers.get_list("date")
    return email.utils.parsedate_to_datetime(value).timestamp()


@pytest.fixture
async def client(store: object, upstream: object, gateway_factory: object) -> httpx.AsyncClient:
    url = upstream.url  # type: ignore[attr-defined]
    Config(keys=[key_entry(KEY)],
           routes=[route_entry("plain", url), route_entry("cached", url, cache_policy=policy())]).publish(store)
    async with client_for(await gateway_factory(store)) as client:  # type: ignore[operator]
        yield client


async def test_a_proxied_answer_carries_the_upstreams_date_once(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/plain/items", headers={"X-API-Key": KEY})
    assert response.status_code == 200
    assert abs(_only_date(response) - time.time()) < 5


async def test_a_cached_answer_keeps_the_date_it_was_fetched_with(client: httpx.AsyncClient) -> None:
    fetched = await client.get("/g/cached/items/1", headers={"X-API-Key": KEY})
    await asyncio.sleep(1.1)  # the next second: a fresh Date would differ
    hit = await client.get("/g/cached/items/1", headers={"X-API-Key": KEY})
    assert (fetched.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert _only_date(hit) == _only_date(fetched)
    assert int(hit.headers["age"]) >= 1


async def test_the_gateways_own_errors_are_dated(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/g/plain/items"), await client.get("/g/nowhere/x", headers={"X-API-Key": KEY})):
        assert response.status_code in (401, 404)
        assert abs(_only_date(response) - time.time()) < 5


@pytest.mark.django_db
async def test_djangos_pages_are_dated_once() -> None:
    transport = httpx.ASGITransport(app=DateHeader(get_asgi_application()))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert abs(_only_date(response) - time.time()) < 5
