"""/metrics and /metrics/prometheus: what gateways report, read back from the shared store."""

from __future__ import annotations

from pathlib import Path

from django.test import AsyncClient, Client
from prometheus_client.parser import text_string_to_metric_families

from gateway.config_publish import config_store
from gateway.tests.dataplane import Config, client_for, key_entry, make_gateway, route_entry

KEY = "hx_live_metricsmetrics00000001"
LIMITED = "hx_live_metricslimited0000002"


async def serve_requests(tmp_path: Path, upstream_url: str) -> None:
    store = config_store()
    Config(keys=[key_entry(KEY), key_entry(LIMITED, burst=1, rps=0.001)],
           routes=[route_entry("demo", upstream_url)]).publish(store)
    first = make_gateway(store, tmp_path / "a")
    second = make_gateway(store, tmp_path / "b")
    second.records.process = "second-process"
    for gateway in (first, second):
        await gateway.startup()
    async with client_for(first) as one, client_for(second) as two:
        for _ in range(3):
            assert (await one.get("/g/demo/items", headers={"X-API-Key": KEY})).status_code == 200
        assert (await two.get("/g/demo/items", headers={"X-API-Key": KEY})).status_code == 200
        assert (await two.get("/g/demo/items/404", headers={"X-API-Key": KEY})).status_code == 404
        assert (await two.get("/g/demo/items")).status_code == 401
        assert (await one.get("/g/demo/items", headers={"X-API-Key": LIMITED})).status_code == 200
        assert (await one.get("/g/demo/items", headers={"X-API-Key": LIMITED})).status_code == 429
    for gateway in (first, second):
        await gateway.records.flush()
        await gateway.shutdown()


async def test_metrics_json_sums_every_gateway_process(tmp_path: Path, upstream: object, clean_metrics: None,
                                                       async_client: AsyncClient) -> None:
    await serve_requests(tmp_path, upstream.url)  # type: ignore[attr-defined]
    body = (await async_client.get("/metrics")).json()
    assert body["requests"] == 8
    assert body["by_status"] == {"200": 5, "401": 1, "404": 1, "429": 1}
    assert body["rate_limited"] == 1
    assert body["cache"]["bypass"] == 8
    assert body["latency_ms"]["p50"] is not None
    assert set(body["degraded"]) >= {"store_errors", "ratelimit_local", "records_spooled"}


async def test_prometheus_text_parses_and_carries_the_series(tmp_path: Path, upstream: object,
                                                            clean_metrics: None, async_client: AsyncClient) -> None:
    await serve_requests(tmp_path, upstream.url)  # type: ignore[attr-defined]
    response = await async_client.get("/metrics/prometheus")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.content.decode())}
    requests = {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
                for s in families["api_gateway_requests"].samples if s.name == "api_gateway_requests_total"}
    assert requests == {("GET", "demo", "200"): 5, ("GET", "demo", "404"): 1, ("GET", "demo", "429"): 1,
                        ("GET", "-", "401"): 1}
    counts = [s for s in families["api_gateway_request_duration_seconds"].samples
              if s.name.endswith("_count") and s.labels["route"] == "demo"]
    assert counts[0].value == 7
    upstream_answers = sum(s.value for s in families["api_gateway_service_requests"].samples
                           if s.name.endswith("_total"))
    assert upstream_answers == 6  # the 401 and the 429 never reached the upstream
    assert families["heliox_cache_bypass"].samples[0].value == 8
    assert families["api_gateway_rate_limit_hits"].samples[0].value == 1
    assert families["heliox_gateway_processes"].samples[0].value == 2
    assert "api_gateway_active_requests" in families


def test_metrics_need_the_bearer_token_when_one_is_set(client: Client, settings: object) -> None:
    settings.METRICS_BEARER_TOKEN = "s3cret"  # type: ignore[attr-defined]
    for path in ("/metrics", "/metrics/prometheus"):
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized" and refused.json()["request_id"]
        assert client.get(path, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get(path, HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_metrics_answer_503_in_the_heliox_shape_when_redis_is_down(client: Client, settings: object) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # type: ignore[attr-defined]  # nothing listens there
    for path in ("/metrics", "/metrics/prometheus"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.json()["error"] == "unavailable"
        assert response["X-Request-ID"] == response.json()["request_id"]


async def test_an_open_circuit_shows_in_both_formats(tmp_path: Path, upstream: object, clean_metrics: None,
                                                     async_client: AsyncClient) -> None:
    dead = "http://127.0.0.1:9"
    store = config_store()
    Config(keys=[key_entry(KEY)], routes=[route_entry("demo", upstream.url),  # type: ignore[attr-defined]
                                          route_entry("down", dead)]).publish(store)
    gateway = make_gateway(store, tmp_path)
    async with client_for(gateway) as client:
        assert (await client.get("/g/demo/items", headers={"X-API-Key": KEY})).status_code == 200
        statuses = [(await client.get("/g/down/x", headers={"X-API-Key": KEY})).status_code for _ in range(6)]
    assert statuses == [502] * 5 + [503]
    await gateway.records.flush()
    await gateway.shutdown()
    assert (await async_client.get("/metrics")).json()["open_circuits"] == [f"down {dead}"]
    text = (await async_client.get("/metrics/prometheus")).content.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    states = {(s.labels["service"], s.labels["target"]): s.value
              for s in families["api_gateway_circuit_breaker_state"].samples}
    assert states == {("down", dead): 1.0}  # the healthy route's target never failed: no series
