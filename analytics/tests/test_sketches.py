"""The route sketches: accuracy of the HyperLogLog and count-min sketch, and their upkeep by
the record consumer (a replayed batch adds nothing)."""

from __future__ import annotations

import time
import uuid

import pytest

from analytics.ingest import ingest_records
from analytics.models import RouteTraffic
from analytics.sketches import CountMinSketch, HyperLogLog
from gateway.runtime.records import Record


def test_hyperloglog_counts_distinct_values_within_a_few_percent() -> None:
    hll = HyperLogLog()
    for i in range(20_000):
        hll.add(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        hll.add(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")  # repeats change nothing
    assert abs(hll.count() - 20_000) / 20_000 < 0.05


def test_hyperloglog_is_exact_enough_for_small_sets_and_survives_a_round_trip() -> None:
    hll = HyperLogLog()
    for i in range(37):
        hll.add(f"ip-{i}")
    assert HyperLogLog(bytes(hll.registers)).count() in range(35, 40)


def test_count_min_never_underestimates_and_finds_the_heavy_hitters() -> None:
    sketch = CountMinSketch()
    for i in range(5_000):
        sketch.add(f"/items/{i}")
    for _ in range(500):
        sketch.add("/items/hot")
    assert sketch.estimate("/items/hot") >= 500
    assert sketch.estimate("/items/hot") < 520
    assert sketch.estimate("/items/17") >= 1
    assert CountMinSketch(sketch.to_bytes()).estimate("/items/hot") == sketch.estimate("/items/hot")


@pytest.mark.django_db
def test_the_consumer_keeps_each_routes_daily_sketches() -> None:
    now = time.time()
    batch = [
        Record(request_id=uuid.uuid4().hex, ts=now, route_id=7, method="GET", path=path, status=200,
               latency_ms=1.0, client_ip=ip)
        for path, ip in [("/a", "1.1.1.1"), ("/a", "2.2.2.2"), ("/b", "1.1.1.1"), ("/a", "3.3.3.3")]
    ]
    ingest_records(batch)
    ingest_records(batch)  # a replay adds nothing
    traffic = RouteTraffic.objects.get(route_id=7)
    assert traffic.requests == 4
    assert traffic.unique_ips == 3
    assert traffic.top_paths[0] == ["/a", 3]
