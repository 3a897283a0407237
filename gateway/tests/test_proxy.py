"""The proxy path end to end, in process, against both stores and a real upstream."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gateway.runtime.app import Gateway
from gateway.runtime.records import Record, decode_batch
from gateway.tests.dataplane import Config, client_for, key_entry, raw_request, route_entry, tenant_entry

ACME = "hx_live_acmeacmeacmeacmeacme0001"
BETA = "hx_live_betabetabetabetabeta0002"


@pytest.fixture
def config(upstream: object) -> Config:
    url = upstream.url  # type: ignore[attr-defined]
    return Config(
        keys=[key_entry(ACME, tenant_id=1), key_entry(BETA, tenant_id=2)],
        routes=[
            route_entry("demo", url),
            route_entry("items", url, tenant_id=1),
            route_entry("private", url, tenant_id=2),
            route_entry("readonly", url, methods=("GET",)),
        ],
    )


@pytest.fixture
async def gateway(store: object, config: Config, gateway_factory: object) -> Gateway:
    config.publish(store)  # type: ignore[arg-type]
    return await gateway_factory(store)  # type: ignore[operator]


@pytest.fixture
async def client(gateway: Gateway) -> httpx.AsyncClient:
    async with client_for(gateway) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_proxied_get_returns_the_upstream_answer_with_gateway_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/items/1", headers={"X-API-Key": ACME})
    assert response.status_code == 200
    assert response.json()["id"] == 1
    assert response.headers["x-cache"] == "BYPASS"
    assert len(response.headers["x-request-id"]) == 32
    assert float(response.headers["x-gateway-overhead-ms"]) >= 0
    assert int(response.headers["x-ratelimit-limit"]) == 1000
    assert response.headers["ratelimit-policy"].startswith('"default";q=1000')


async def test_upstream_errors_pass_through_unchanged(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/items/4", headers={"X-API-Key": ACME})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "item 4 not found"}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "   "}])
async def test_missing_or_empty_key_is_401_missing(client: httpx.AsyncClient, headers: dict) -> None:
    assert_error(await client.get("/g/demo/items", headers=headers), 401, "missing_api_key")


@pytest.mark.parametrize("key", ["hx_live_unknown_key_000000000000", "short", "k" * 10_000])
async def test_unknown_malformed_and_huge_keys_get_the_same_401(client: httpx.AsyncClient, key: str) -> None:
    assert_error(await client.get("/g/demo/items", headers={"X-API-Key": key}), 401, "invalid_api_key")


async def test_non_ascii_key_is_invalid_not_an_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/items", headers=[(b"X-API-Key", "hx_clé_ünïcode".encode())])
    assert_error(response, 401, "invalid_api_key")


async def test_key_in_query_string_is_never_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/g/demo/items?api_key={ACME}&X-API-Key={ACME}")
    assert_error(response, 401, "missing_api_key")


async def test_unknown_and_foreign_routes_are_the_same_404(client: httpx.AsyncClient) -> None:
    unknown = assert_error(await client.get("/g/nope/x", headers={"X-API-Key": ACME}), 404, "route_not_found")
    foreign = assert_error(await client.get("/g/private/x", headers={"X-API-Key": ACME}), 404, "route_not_found")
    assert unknown["message"] == foreign["message"]


async def test_method_not_allowed_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.post("/g/readonly/items", headers={"X-API-Key": ACME}, json={})
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD"


async def test_post_body_reaches_the_upstream(client: httpx.AsyncClient) -> None:
    response = await client.post("/g/demo/items", headers={"X-API-Key": ACME}, json={"name": "widget"})
    assert response.status_code == 201
    assert response.json()["name"] == "widget"


@pytest.mark.parametrize("path", [
    b"/g/demo/../../admin", b"/g/demo/%2e%2e/admin", b"/g/demo/a/%2E%2E%2Fadmin", b"/g/demo/a%2fb",
    b"/g/demo//evil.example/x", b"/g/demo/a%5cb", b"/g/demo/%zz", b"/g/demo/./x",
])
async def test_path_traversal_is_400(gateway: Gateway, path: bytes) -> None:
    response = await raw_request(gateway, path, [(b"x-api-key", ACME.encode())])
    assert response.status == 400
    assert response.json()["error"] == "bad_request"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_invalid_utf8_in_path_and_headers_is_not_an_error(client: httpx.AsyncClient) -> None:
    request = client.build_request("GET", "http://gateway.test/", headers=[
        (b"X-API-Key", ACME.encode()), (b"X-Odd", b"\xff\xfe\xc3\x28")])
    request.url = request.url.copy_with(raw_path=b"/g/demo/headers/%ff%fe")
    response = await client.send(request)
    assert response.status_code == 404  # the upstream's own answer for that path
    assert response.json() == {"error": "not_found"}


async def test_twenty_kb_of_headers_is_431(client: httpx.AsyncClient) -> None:
    headers = {"X-API-Key": ACME, **{f"X-Filler-{i}": "x" * 1000 for i in range(20)}}
    assert_error(await client.get("/g/demo/items", headers=headers), 431, "headers_too_large")


async def test_body_over_the_limit_by_content_length_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/g/demo/items", headers={"X-API-Key": ACME}, content=b"x" * (1024 * 1024 + 1))
    assert_error(response, 413, "payload_too_large")


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> object:
        for _ in range(33):
            yield b"y" * 32768

    response = await client.post("/g/demo/items", headers={"X-API-Key": ACME}, content=chunks())
    assert_error(response, 413, "payload_too_large")


async def test_hop_by_hop_and_gateway_headers_never_reach_the_upstream(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/headers", headers={
        "X-API-Key": ACME, "Connection": "keep-alive, X-Tenant", "X-Tenant": "other", "Keep-Alive": "300",
        "Proxy-Authorization": "Basic eA==", "Cookie": "sessionid=abc; theirs=1; csrftoken=zz",
        "X-Forwarded-For": "6.6.6.6", "Authorization": "Bearer end-user", "TE": "trailers",
    })
    seen = response.json()["headers"]
    for name in ("x-api-key", "x-tenant", "keep-alive", "proxy-authorization", "te"):
        assert name not in seen, name
    assert seen["cookie"] == "theirs=1"
    assert seen["authorization"] == "Bearer end-user"
    # The client is not a trusted proxy: its X-Forwarded-For is replaced, not extended.
    assert seen["x-forwarded-for"] == "203.0.113.7"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "gateway.test"
    assert seen["via"].endswith("heliox")
    assert seen["x-request-id"] == response.headers["x-request-id"]


async def test_upstream_hop_by_hop_headers_are_stripped_from_the_response(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/set-cookie", headers={"X-API-Key": ACME})
    assert response.headers["set-cookie"] == "session=abc; Path=/"
    assert "keep-alive" not in response.headers
    assert "connection" not in response.headers


async def test_redirects_are_passed_to_the_client(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/redirect?to=https://example.com/x", headers={"X-API-Key": ACME})
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/x"


async def test_query_string_reaches_the_upstream(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/headers?b=2&a=1&empty=", headers={"X-API-Key": ACME})
    assert response.json()["query"] == "b=2&a=1&empty="


async def test_large_bodies_stream_through_byte_exact(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/large?size_kb=2048", headers={"X-API-Key": ACME})
    assert response.status_code == 200
    assert len(response.content) == 2048 * 1024


async def test_sse_passes_through(client: httpx.AsyncClient) -> None:
    response = await client.get("/g/demo/sse?n=3&interval=0.01", headers={"X-API-Key": ACME})
    assert response.text.count("data: ") == 3


async def test_v1_answers_501_in_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/models", headers={"X-API-Key": ACME}), 501, "not_implemented")


async def test_ready_reports_the_loaded_snapshot(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["ready"] is True


class TestUpstreamFailures:
    @pytest.fixture
    def config(self, upstream: object) -> Config:
        url = upstream.url  # type: ignore[attr-defined]
        return Config(keys=[key_entry(ACME)], routes=[
            route_entry("fast", url, timeout_ms=400, read_timeout_ms=5000),
            route_entry("down", "http://127.0.0.1:9"),
        ])

    async def test_an_upstream_that_never_answers_is_504_within_the_deadline(self, client: httpx.AsyncClient) -> None:
        started = time.monotonic()
        assert_error(await client.get("/g/fast/hang", headers={"X-API-Key": ACME}), 504, "upstream_timeout")
        assert time.monotonic() - started < 2

    async def test_an_upstream_that_drips_is_cut_at_the_deadline(self, client: httpx.AsyncClient) -> None:
        started = time.monotonic()
        assert_error(await client.get("/g/fast/drip?bytes=50&interval=0.1", headers={"X-API-Key": ACME}),
                     504, "upstream_timeout")
        assert time.monotonic() - started < 2

    async def test_connection_refused_is_502(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/g/down/x", headers={"X-API-Key": ACME}), 502, "upstream_error")

    async def test_an_upstream_closing_mid_body_is_502_not_a_hang(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/g/fast/close-mid-body", headers={"X-API-Key": ACME}), 502, "upstream_error")


class TestKeyStates:
    @pytest.fixture
    def config(self, upstream: object) -> Config:
        url = upstream.url  # type: ignore[attr-defined]
        now = time.time()
        return Config(
            tenants=[tenant_entry(1), tenant_entry(3, active=False)],
            keys=[
                key_entry("hx_live_expired_000000000000001", expires_at=now - 1),
                key_entry("hx_live_graceover_00000000000001", grace_until=now - 1),
                key_entry("hx_live_ingrace_000000000000001", grace_until=now + 3600),
                key_entry("hx_live_suspended_0000000000001", tenant_id=3),
                key_entry("hx_live_readonly_00000000000001", scopes=["proxy:read"]),
                key_entry("hx_live_onlyother_0000000000001", allowed_routes=["other"]),
                key_entry("hx_live_iplocked_00000000000001", ip_allowlist=["10.0.0.0/8"]),
                key_entry("hx_live_ipopen_000000000000001", ip_allowlist=["203.0.113.0/24"]),
            ],
            routes=[route_entry("demo", url)],
        )

    async def test_expired_and_rotated_out_keys_are_the_same_401(self, client: httpx.AsyncClient) -> None:
        for key in ("hx_live_expired_000000000000001", "hx_live_graceover_00000000000001"):
            assert_error(await client.get("/g/demo/items", headers={"X-API-Key": key}), 401, "invalid_api_key")

    async def test_a_rotated_key_works_during_its_grace(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/g/demo/items", headers={"X-API-Key": "hx_live_ingrace_000000000000001"})
        assert response.status_code == 200

    async def test_suspended_tenant_is_403(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/g/demo/items", headers={"X-API-Key": "hx_live_suspended_0000000000001"})
        assert_error(response, 403, "tenant_suspended")

    async def test_scope_route_and_ip_restrictions_are_403(self, client: httpx.AsyncClient) -> None:
        read_only = {"X-API-Key": "hx_live_readonly_00000000000001"}
        assert (await client.get("/g/demo/items", headers=read_only)).status_code == 200
        assert_error(await client.post("/g/demo/items", headers=read_only, json={}), 403, "forbidden")
        other = {"X-API-Key": "hx_live_onlyother_0000000000001"}
        assert_error(await client.get("/g/demo/items", headers=other), 403, "forbidden")
        locked = {"X-API-Key": "hx_live_iplocked_00000000000001"}
        assert_error(await client.get("/g/demo/items", headers=locked), 403, "forbidden")
        open_key = {"X-API-Key": "hx_live_ipopen_000000000000001"}
        assert (await client.get("/g/demo/items", headers=open_key)).status_code == 200


class TestRouteMatch:
    @pytest.fixture
    def config(self, upstream: object) -> Config:
        url = upstream.url  # type: ignore[attr-defined]
        return Config(keys=[key_entry(ACME, tenant_id=1), key_entry(BETA, tenant_id=2)], routes=[
            route_entry("shared", url, request_headers_add={"X-Which": "shared"}),
            route_entry("shared", url, tenant_id=1, request_headers_add={"X-Which": "acme"}),
        ])

    async def test_a_tenants_own_route_wins_over_the_shared_one(self, client: httpx.AsyncClient) -> None:
        acme = await client.get("/g/shared/headers", headers={"X-API-Key": ACME})
        beta = await client.get("/g/shared/headers", headers={"X-API-Key": BETA})
        assert acme.json()["headers"]["x-which"] == "acme"
        assert beta.json()["headers"]["x-which"] == "shared"


async def test_records_reach_the_store_once_per_request(store: object, config: Config,
                                                         gateway_factory: object) -> None:
    config.publish(store)  # type: ignore[arg-type]
    gateway = await gateway_factory(store)  # type: ignore[operator]
    async with client_for(gateway) as client:
        statuses = [
            (await client.get("/g/demo/items", headers={"X-API-Key": ACME})).status_code,
            (await client.get("/g/demo/items")).status_code,
            (await client.get("/g/nope/items", headers={"X-API-Key": ACME})).status_code,
        ]
        ids = [r.headers["x-request-id"] for r in [await client.get("/g/demo/items/2", headers={"X-API-Key": ACME})]]
    assert statuses == [200, 401, 404]
    await gateway.records.flush()
    records = await _stored_records(store)
    assert len(records) == 4
    assert len({r.request_id for r in records}) == 4
    assert ids[0] in {r.request_id for r in records}
    assert sorted(r.status for r in records) == [200, 200, 401, 404]
    assert all("api_key" not in r.path for r in records)


async def _stored_records(store: object) -> list[Record]:
    from gateway.runtime.memory_store import MemoryStore
    from gateway.runtime.store import RECORD_BATCH_FIELD, RECORD_STREAM

    if isinstance(store, MemoryStore):
        return [r for batch in store.records for r in decode_batch(batch)]
    entries = await store.client().xrange(RECORD_STREAM)  # type: ignore[attr-defined]
    return [r for _, fields in entries for r in decode_batch(fields[RECORD_BATCH_FIELD])]


async def test_concurrent_requests_are_all_answered(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*[
        client.get(f"/g/demo/items/{i % 3 + 1}", headers={"X-API-Key": ACME}) for i in range(60)
    ])
    assert [r.status_code for r in responses] == [200] * 60


async def test_a_flood_of_random_keys_is_refused_from_the_snapshot(client: httpx.AsyncClient) -> None:
    # No django_db mark: a database look-up per unknown key would fail this test outright.
    import secrets

    responses = await asyncio.gather(*[
        client.get("/g/demo/items", headers={"X-API-Key": "hx_live_" + secrets.token_hex(16)}) for _ in range(200)
    ])
    assert {r.status_code for r in responses} == {401}


async def test_a_blocked_address_is_refused_before_its_key_is_looked_at(store: object, config: Config,
                                                                         gateway_factory: object) -> None:
    config.blocked_ips = [{"ip": "203.0.113.7", "until": time.time() + 60}]
    config.publish(store)  # type: ignore[arg-type]
    gateway = await gateway_factory(store)  # type: ignore[operator]
    async with client_for(gateway) as client, client_for(gateway, client_ip="198.51.100.1") as elsewhere:
        refused = await client.get("/g/demo/items", headers={"X-API-Key": ACME})
        allowed = await elsewhere.get("/g/demo/items", headers={"X-API-Key": ACME})
    assert refused.status_code == 429
    assert refused.json()["error"] == "blocked"
    assert 59 <= int(refused.headers["retry-after"]) <= 60
    assert allowed.status_code == 200
