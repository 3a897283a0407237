"""The example upstream, over real sockets: httpx for the ordinary endpoints, raw bytes for framing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.example_upstream import CATALOGUE, start_server


@pytest.fixture(autouse=True, scope="session")
def _clean_configured_redis() -> None:
    """Shadow the root conftest's Redis cleanup: these tests need neither Django settings nor Redis."""


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = await start_server("127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def client(port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        yield client


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One Content-Length-framed response off a raw connection."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).decode("latin-1")
    status_line, *lines = head[:-4].split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 2)
    return int(status_line.split()[1]), headers, body


async def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, return everything the server says until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 2)
    finally:
        writer.close()


# --- the endpoints -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/health", "/items", "/items/1", "/nope", "/status/418", "/bytes"])
async def test_every_response_is_marked_and_framed(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.headers["x-upstream"] == "heliox-example"
    assert response.headers["content-type"]
    assert int(response.headers["content-length"]) == len(response.content)


async def test_index_lists_endpoints(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).json()
    assert body["service"] == "heliox-example-upstream"
    assert "GET /health" in body["endpoints"]


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "healthy"}


async def test_items_lists_the_fixed_catalogue(client: httpx.AsyncClient) -> None:
    body = (await client.get("/items")).json()
    assert [item["id"] for item in body["items"]] == [1, 2, 3, 5, 10]
    assert (body["page"], body["page_size"], body["total"]) == (1, 10, 5)
    assert set(body["items"][0]) == {"id", "name", "price", "description"}


async def test_items_paginate_and_cap_page_size(client: httpx.AsyncClient) -> None:
    second = (await client.get("/items", params={"page": 2, "page_size": 2})).json()
    assert [item["id"] for item in second["items"]] == [3, 5]
    assert (await client.get("/items", params={"page_size": 500})).json()["page_size"] == 100
    assert (await client.get("/items", params={"page": 9})).json()["items"] == []


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page_size=0", "page_size=-3", "page=1.5"])
async def test_bad_page_params_are_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/items?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize("item_id", sorted(CATALOGUE))
async def test_each_catalogue_item(client: httpx.AsyncClient, item_id: int) -> None:
    response = await client.get(f"/items/{item_id}")
    assert response.status_code == 200
    assert response.json() == CATALOGUE[item_id]


@pytest.mark.parametrize("item_id", ["4", "0", "11", "abc", "-1", "1.0"])
async def test_other_items_are_404(client: httpx.AsyncClient, item_id: str) -> None:
    response = await client.get(f"/items/{item_id}")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": f"item {item_id} not found"}


async def test_post_item_echoes_with_a_new_id(client: httpx.AsyncClient) -> None:
    first = await client.post("/items", json={"name": "widget", "price": 2})
    second = await client.post("/items", json={"name": "other"})
    assert first.status_code == 201
    assert first.json()["name"] == "widget"
    assert first.json()["price"] == 2
    assert first.json()["id"] not in CATALOGUE
    assert second.json()["id"] == first.json()["id"] + 1


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b""])
async def test_post_item_bad_json_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/items", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


async def test_slow_waits(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await client.get("/slow", params={"delay": "0.05"})
    assert time.monotonic() - started >= 0.05
    assert response.json() == {"delayed": 0.05}
    assert (await client.get("/slow", params={"delay": "nan"})).status_code == 400


async def test_flaky_follows_its_failure_rate(client: httpx.AsyncClient) -> None:
    failing = await client.get("/flaky", params={"failure_rate": 1})
    assert failing.status_code == 500
    assert failing.json() == {"error": "flaky_failure"}
    assert (await client.get("/flaky", params={"failure_rate": 0})).status_code == 200


async def test_headers_echo_the_request(client: httpx.AsyncClient) -> None:
    response = await client.put("/headers?b=2&a=1&empty=", content=b"12345",
                                headers=[("X-Twice", "one"), ("X-Twice", "two"), ("X-Case", "KeEp")])
    body = response.json()
    assert (body["method"], body["path"], body["query"]) == ("PUT", "/headers", "b=2&a=1&empty=")
    assert body["headers"]["x-twice"] == "one, two"
    assert body["headers"]["x-case"] == "KeEp"
    assert body["body_length"] == 5


async def test_headers_survive_non_utf8_bytes(port: int) -> None:
    raw = await exchange(port, b"GET /headers HTTP/1.1\r\nX-Odd: \xff\xfe\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["headers"]["x-odd"] == "\xff\xfe"


async def test_vary(client: httpx.AsyncClient) -> None:
    response = await client.get("/vary", params={"variant": "b"},
                                headers={"Accept": "text/plain", "Accept-Language": "fr"})
    assert response.headers["vary"] == "Accept, Accept-Language"
    assert response.json() == {"variant": "b", "accept": "text/plain", "accept_language": "fr"}


async def test_large_is_exactly_the_size_asked(client: httpx.AsyncClient) -> None:
    assert len((await client.get("/large", params={"size_kb": 3})).content) == 3 * 1024
    assert len((await client.get("/large")).content) == 100 * 1024


@pytest.mark.parametrize(("query", "size"), [("", 1024), ("?size=1024", 1024), ("?size=0", 0), ("?size=70000", 70000)])
async def test_bytes_is_exactly_the_size_asked(client: httpx.AsyncClient, query: str, size: int) -> None:
    response = await client.get(f"/bytes{query}")
    assert response.headers["content-type"] == "application/octet-stream"
    assert len(response.content) == size


async def test_stats_count_by_path_and_reset(client: httpx.AsyncClient) -> None:
    for path in ("/items", "/items?page=2", "/items/1", "/health", "/nope"):
        await client.get(path)
    await client.get("/stats")
    stats = (await client.get("/stats")).json()
    assert stats == {"total_requests": 5, "by_path": {"/items": 2, "/items/1": 1, "/health": 1, "/nope": 1}}
    assert (await client.post("/stats/reset")).json() == {"reset": True}
    assert (await client.get("/stats")).json() == {"total_requests": 0, "by_path": {}}


@pytest.mark.parametrize(("path", "directive"), [
    ("/cache/max-age=60", "max-age=60"),
    ("/cache/no-store", "no-store"),
    ("/cache/public,%20max-age=10", "public, max-age=10"),
])
async def test_cache_sets_the_directive_verbatim(client: httpx.AsyncClient, path: str, directive: str) -> None:
    response = await client.get(path)
    assert response.headers["cache-control"] == directive
    assert response.json()["directive"] == directive


async def test_cache_counter_tells_fetches_apart(client: httpx.AsyncClient) -> None:
    first = (await client.get("/cache/no-cache")).json()
    second = (await client.get("/cache/no-cache")).json()
    assert second["counter"] > first["counter"]
    assert second["served_at"] >= first["served_at"]


async def test_cache_refuses_header_injection(client: httpx.AsyncClient) -> None:
    assert (await client.get("/cache/max-age=1%0d%0aSet-Cookie:%20x=1")).status_code == 400


@pytest.mark.parametrize("code", [200, 404, 418, 503, 599])
async def test_status_with_body(client: httpx.AsyncClient, code: int) -> None:
    response = await client.get(f"/status/{code}")
    assert response.status_code == code
    assert response.json() == {"status": code}


@pytest.mark.parametrize("code", [204, 304])
async def test_status_without_body(port: int, code: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /status/{code} HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n".encode())
    status, headers, body = await read_response(reader)
    assert (status, body) == (code, b"")
    assert "content-length" not in headers
    # The next response follows at once: no stray body bytes in between.
    assert (await read_response(reader))[0] == 200
    writer.close()


@pytest.mark.parametrize("code", ["100", "199", "600", "99", "abc"])
async def test_status_out_of_range_is_400(client: httpx.AsyncClient, code: str) -> None:
    assert (await client.get(f"/status/{code}")).status_code == 400


async def test_sse_sends_n_events(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/sse", params={"n": 4, "interval": "0.01"}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["transfer-encoding"] == "chunked"
        text = "".join([chunk async for chunk in response.aiter_text()])
    assert [json.loads(line[len("data: "):])["n"] for line in text.split("\n\n") if line] == [0, 1, 2, 3]


async def test_drip_trickles_the_declared_length(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await client.get("/drip", params={"bytes": 3, "interval": "0.02"})
    assert time.monotonic() - started >= 0.06
    assert response.headers["content-length"] == "3"
    assert response.content == b"xxx"


async def test_hang_never_answers(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hang HTTP/1.1\r\n\r\n")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)
    writer.close()


async def test_close_mid_body_ends_early(port: int, client: httpx.AsyncClient) -> None:
    raw = await exchange(port, b"GET /close-mid-body HTTP/1.1\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head
    assert len(body) == 100
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/close-mid-body")


async def test_redirect(client: httpx.AsyncClient) -> None:
    response = await client.get("/redirect", params={"to": "https://example.com/x?y=1"})
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/x?y=1"
    assert (await client.get("/redirect")).status_code == 400


async def test_set_cookie(client: httpx.AsyncClient) -> None:
    response = await client.get("/set-cookie")
    assert response.headers["set-cookie"] == "session=abc; Path=/"


async def test_v1_models(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/models")).json()["data"][0]["object"] == "model"


async def test_chat_completion_echoes_the_last_user_message(client: httpx.AsyncClient) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"},
                {"role": "assistant", "content": "hi"}, {"role": "user", "content": "say it back"}]
    body = (await client.post("/v1/chat/completions", json={"model": "m", "messages": messages})).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "say it back"}
    usage = body["usage"]
    assert usage["completion_tokens"] == len("say it back") // 4 + 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_chat_completion_streams(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={
        "stream": True, "messages": [{"role": "user", "content": "stream me please"}]})
    assert response.headers["content-type"] == "text/event-stream"
    events = [line[len("data: "):] for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) == 3
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks) == "stream me please"


async def test_anthropic_messages(client: httpx.AsyncClient) -> None:
    body = (await client.post("/v1/messages", json={"messages": [
        {"role": "user", "content": [{"type": "text", "text": "hello"}]}]})).json()
    assert body["type"] == "message"
    assert body["content"] == [{"type": "text", "text": "hello"}]
    assert body["usage"] == {"input_tokens": 2, "output_tokens": 2}
    assert (await client.post("/v1/messages", content=b"nope")).status_code == 400


async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/headers/%ff%fe")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.post("/health")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/items", "/bytes?size=2048", "/sse?n=2", "/set-cookie"])
async def test_head_has_the_headers_but_no_body(port: int, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\n\r\nHEAD {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    head = raw.rpartition(b"HTTP/1.1 200 OK\r\n")[2]
    assert head.endswith(b"\r\n\r\n")  # nothing after the HEAD response's blank line
    assert b"X-Upstream: heliox-example" in head
    if "sse" not in path:
        get_length = raw.split(b"Content-Length: ")[1].split(b"\r\n")[0]
        assert b"Content-Length: " + get_length in head


# --- the connection ------------------------------------------------------------------------------------


async def test_keep_alive_serves_many_requests_on_one_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for path in ("/health", "/items/2", "/bytes?size=10", "/nope"):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, _ = await read_response(reader)
        assert status in (200, 404)
        assert "connection" not in headers
    writer.close()


async def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow?delay=0.02 HTTP/1.1\r\n\r\nGET /items/3 HTTP/1.1\r\n\r\n"
                 b"POST /items HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /status/404 HTTP/1.1\r\n\r\n")
    answers = [await read_response(reader) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 201, 404]
    assert json.loads(answers[1][2])["id"] == 3
    writer.close()


async def test_connection_close_is_honoured(port: int) -> None:
    raw = await exchange(port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200") == 1
    assert b"Connection: close" in raw


async def test_http_10_closes_unless_asked_to_keep_alive(port: int) -> None:
    assert b"Connection: close" in await exchange(port, b"GET /health HTTP/1.0\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert (await read_response(reader))[1]["connection"] == "keep-alive"
    writer.close()


async def test_chunked_request_body(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5;ext=1\r\n{\"nam\r\n")
    await writer.drain()
    await asyncio.sleep(0.01)  # the body arriving in pieces must not matter
    writer.write(b"a\r\ne\": \"bolt\"\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n")
    status, _, body = await read_response(reader)
    assert status == 201
    assert json.loads(body)["name"] == "bolt"
    writer.close()


async def test_expect_100_continue(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /headers HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"abc")
    assert json.loads((await read_response(reader))[2])["body_length"] == 3
    writer.close()


@pytest.mark.parametrize("data", [
    b"BOGUS\r\n\r\n",
    b"GET /health\r\n\r\n",
    b"GET /health HTTP/9.9\r\n\r\n",
    b"GET  /health HTTP/1.1\r\n\r\n",
    b"GET health HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"POST /items HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /items HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST /items HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /items HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST /items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
])
async def test_malformed_requests_get_400_and_a_closed_connection(port: int, data: bytes) -> None:
    raw = await exchange(port, data)
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in raw
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"] == "bad_request"


async def test_oversized_head_is_431_and_the_server_survives(port: int, client: httpx.AsyncClient) -> None:
    raw = await exchange(port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 431 ")
    assert (await client.get("/health")).status_code == 200
