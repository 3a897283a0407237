"""One `Date` header on every response: the upstream's on proxied and cached answers, the
current time on the gateway's own and on Django's (Daphne adds none; uvicorn runs with
`--no-date-header`)."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from django.core.asgi import get_asgi_application
from django.core.exceptions import ValidationError

from gateway.data_plane import http_application
from gateway.runtime.date_header import DateHeader
from gateway.services import route_create
from gateway.tests.dataplane import Config, client_for, key_entry, route_entry
from gateway.tests.test_cache import policy
from tenants.tests.factories import TenantFactory

KEY = "hx_live_datedatedatedatedate0001"
UPSTREAM_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"  # long past: a Date the gateway made would differ


def _only_date(response: httpx.Response) -> str:
    (value,) = response.headers.get_list("date")
    return value


def _is_now(value: str) -> bool:
    return abs(email.utils.parsedate_to_datetime(value).timestamp() - time.time()) < 5


@pytest.fixture
async def dated_upstream() -> AsyncIterator[str]:
    """An upstream whose every answer is dated long ago, as a clock-skewed one would be."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(f"HTTP/1.1 200 OK\r\nDate: {UPSTREAM_DATE}\r\nContent-Type: text/plain\r\n"
                             "Cache-Control: max-age=60\r\nContent-Length: 2\r\n\r\nok".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


@pytest.fixture
async def gateway(store: object, dated_upstream: str, gateway_factory: Any) -> Any:
    Config(keys=[key_entry(KEY)], routes=[
        route_entry("plain", dated_upstream),
        route_entry("cached", dated_upstream, cache_policy=policy()),
        # Saved before routes were refused a Date of their own: the snapshot leaves it out.
        route_entry("redated", dated_upstream, response_headers_add={"Date": "Mon, 01 Jan 2001 00:00:00 GMT"}),
    ]).publish(store)
    return await gateway_factory(store)


async def test_a_proxied_answer_carries_the_upstreams_date_once(gateway: Any) -> None:
    async with client_for(gateway) as client:
        for route in ("plain", "redated"):
            response = await client.get(f"/g/{route}/items", headers={"X-API-Key": KEY})
            assert response.status_code == 200
            assert _only_date(response) == UPSTREAM_DATE


async def test_a_cached_answer_keeps_the_date_it_was_fetched_with(gateway: Any) -> None:
    async with client_for(gateway) as client:
        fetched = await client.get("/g/cached/items/1", headers={"X-API-Key": KEY})
        hit = await client.get("/g/cached/items/1", headers={"X-API-Key": KEY})
    assert (fetched.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert _only_date(fetched) == _only_date(hit) == UPSTREAM_DATE


async def test_the_gateways_own_answers_are_dated_now(gateway: Any) -> None:
    async with client_for(gateway) as client:
        responses = [await client.get("/g/plain/items"), await client.get("/g/nowhere/x", headers={"X-API-Key": KEY}),
                     await client.get("/ready")]
    assert [response.status_code for response in responses] == [401, 404, 200]
    assert all(_is_now(_only_date(response)) for response in responses)


@pytest.mark.django_db
async def test_djangos_pages_are_dated_once_behind_the_entry_points_router(gateway: Any) -> None:
    transport = httpx.ASGITransport(app=http_application(gateway, get_asgi_application()))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/health")
        proxied = await client.get("/g/plain/items", headers={"X-API-Key": KEY})
    assert page.status_code == 200 and _is_now(_only_date(page))
    assert proxied.status_code == 200 and _only_date(proxied) == UPSTREAM_DATE


async def test_a_date_an_application_sets_in_any_case_is_kept() -> None:
    async def dated_view(scope: Any, receive: Any, send: Any) -> None:  # as a Django view setting response["Date"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"Date", UPSTREAM_DATE.encode())]})
        await send({"type": "http.response.body", "body": b""})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=DateHeader(dated_view)),
                                 base_url="http://testserver") as client:
        assert _only_date(await client.get("/")) == UPSTREAM_DATE


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["response_headers_add", "request_headers_add"])
@pytest.mark.parametrize("name", ["Date", "content-length", "Transfer-Encoding", "Connection", "Host",
                                  "X-Request-ID", "Proxy-Authorization"])
def test_a_route_cannot_add_a_header_the_gateway_sets_itself(field: str, name: str) -> None:
    with pytest.raises(ValidationError) as refused:
        route_create(tenant=TenantFactory(), slug="orders", upstream_url="http://127.0.0.1:8001",
                     **{field: {name: "1"}})
    assert field in refused.value.message_dict
    assert name in " ".join(refused.value.message_dict[field])
