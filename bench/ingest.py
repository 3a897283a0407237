"""Ingest throughput: records/s from the consumer's batches into the request log and rollups.

    DATABASE_URL=postgres://… .venv/bin/python bench/ingest.py [--records 50000] [--batch 2000] [--consumers 1]

Uses the database named by DATABASE_URL (its request log and rollups are emptied first).
Records spread over --keys keys (20) and --routes routes (5), mixed statuses and cache outcomes,
within one minute: with the defaults nearly every record lands in rollup rows of its own.
--consumers N runs N consumer processes at once (as N Celery worker processes would), each
ingesting its share of the batches; the figure is over the wall time of all of them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
import uuid

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=20, help="distinct API keys (rollup rows grow with them)")
    parser.add_argument("--routes", type=int, default=5)
    parser.add_argument("--consumers", type=int, default=1, help="consumer processes at once")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heliox_site.settings")
    os.environ.setdefault("DEBUG", "true")
    django.setup()
    from django.db import connection
    from django.db.models import Sum

    from analytics.ingest import ingest_records
    from analytics.models import RequestLog, RequestRollup

    RequestLog.objects.all().delete()
    RequestRollup.objects.all().delete()
    now = time.time()
    records = [{"request_id": uuid.uuid4().hex, "ts": now + random.random() * 50, "tenant_id": 1,
                "api_key_id": random.randint(1, args.keys), "route_id": random.randint(1, args.routes), "method": "GET",
                "path": f"/items/{random.randint(1, 500)}", "status": random.choice([200, 200, 200, 404, 429, 502]),
                "cache": random.choice(["HIT", "MISS", "BYPASS"]), "upstream_ms": 2.0,
                "latency_ms": random.expovariate(1 / 5), "bytes_in": 0, "bytes_out": 1024,
                "client_ip": f"203.0.113.{random.randint(1, 254)}", "user_agent": "bench", "error": ""}
               for _ in range(args.records)]
    batches = [records[start:start + args.batch] for start in range(0, len(records), args.batch)]
    connection.close()
    if hasattr(connection, "close_pool"):
        connection.close_pool()  # each consumer process opens its own connections
    start_gate = multiprocessing.Barrier(args.consumers + 1)

    def consume(share: list[list[dict]]) -> None:
        start_gate.wait()
        for batch in share:
            ingest_records(batch)
        connection.close()

    consumers = [multiprocessing.get_context("fork").Process(target=consume, args=(batches[n::args.consumers],))
                 for n in range(args.consumers)]
    for consumer in consumers:
        consumer.start()
    start_gate.wait()
    started = time.perf_counter()
    for consumer in consumers:
        consumer.join()
    elapsed = time.perf_counter() - started
    assert all(consumer.exitcode == 0 for consumer in consumers)
    assert RequestLog.objects.count() == args.records
    assert RequestRollup.objects.filter(granularity="day").aggregate(n=Sum("count"))["n"] == args.records
    print(f"{connection.vendor}, {args.keys} keys x {args.routes} routes, {args.consumers} consumer(s): "
          f"{args.records} records in {elapsed:.2f} s = {args.records / elapsed:,.0f} records/s "
          f"(batches of {args.batch}; raw rows + minute/hour/day rollups + sketches + abuse signals)")


if __name__ == "__main__":
    main()
