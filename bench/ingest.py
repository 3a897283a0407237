"""Ingest throughput: records/s through the consumer's pass, from the record stream into the
request log and rollups.

    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python -m bench.ingest \
        [--records 50000] [--per-entry 200] [--batch 10000] [--consumers 1]

Uses the database named by DATABASE_URL (its request log, rollups, route sketches and abuse
signals are truncated first) and the Redis named by REDIS_URL (its record stream is replaced).
The stream is loaded untimed, as gateways write it: each entry one flushed batch of
--per-entry encoded records (a process at 2,000 requests/s flushing every 0.1 s writes about
200). The timed part is what the Celery consumer does: `consume_redis_stream` passes (read,
decode, insert, rollups, sketches, abuse signals, ack) until the stream is drained, --batch
records per transaction.

Records spread over --keys keys (20) and --routes routes (5), mixed statuses and cache outcomes,
at random times within 50 s (so one or two minutes). With the defaults a 10,000-record
transaction upserts about 3,000 rollup rows and touches every abuse interval of the run: more
than time-ordered traffic would, where a transaction spans about half a second.
--consumers N runs N consumer processes at once (as N Celery worker processes would); the figure
is over the wall time of all of them.
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
    parser.add_argument("--per-entry", type=int, default=200, help="records per stream entry (a gateway flush)")
    parser.add_argument("--batch", type=int, default=None,
                        help="records per transaction, at most (default: the consumer's RECORDS_PER_TRANSACTION)")
    parser.add_argument("--keys", type=int, default=20, help="distinct API keys (rollup rows grow with them)")
    parser.add_argument("--routes", type=int, default=5)
    parser.add_argument("--consumers", type=int, default=1, help="consumer processes at once")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        parser.error("set REDIS_URL: the benchmark reads the record stream as the consumer does")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heliox_site.settings")
    os.environ.setdefault("DEBUG", "true")
    django.setup()
    from django.db import connection
    from django.db.models import Sum

    from abuse.models import AbuseSignal
    from analytics.ingest import RECORDS_PER_TRANSACTION, consume_redis_stream
    from analytics.models import RequestLog, RequestRollup, RouteTraffic
    from gateway.runtime.records import Record, encode_batch
    from gateway.runtime.redis_store import RedisStore
    from gateway.runtime.store import RECORD_BATCH_FIELD, RECORD_STREAM

    per_transaction = args.batch or RECORDS_PER_TRANSACTION
    # Every run starts empty: a run after another would find its sketches and abuse signals
    # (their path lists already full) and its rollup rows there, and be measured on less work.
    written = [RequestLog, RequestRollup, RouteTraffic, AbuseSignal]
    if connection.vendor == "postgresql":  # not DELETE: each run would leave the last one's dead rows
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(model._meta.db_table for model in written)}")
    else:
        for model in written:
            model.objects.all().delete()
    now = time.time()
    records = [Record(uuid.uuid4().hex, now + random.random() * 50, 1, random.randint(1, args.keys),
                      random.randint(1, args.routes), "bench", "GET", f"/items/{random.randint(1, 500)}",
                      random.choice([200, 200, 200, 404, 429, 502]), random.choice(["HIT", "MISS", "BYPASS"]),
                      2.0, random.expovariate(1 / 5), 0, 1024, f"203.0.113.{random.randint(1, 254)}", "bench")
               for _ in range(args.records)]
    stream = RedisStore(os.environ["REDIS_URL"]).sync
    stream.delete(RECORD_STREAM)
    pipe = stream.pipeline(transaction=False)
    for start in range(0, len(records), args.per_entry):
        pipe.xadd(RECORD_STREAM, {RECORD_BATCH_FIELD: encode_batch(records[start:start + args.per_entry])})
    pipe.execute()
    connection.close()
    if hasattr(connection, "close_pool"):
        connection.close_pool()  # each consumer process opens its own connections
    start_gate = multiprocessing.Barrier(args.consumers + 1)

    def consume() -> None:
        store = RedisStore(os.environ["REDIS_URL"])  # after the fork: a connection of its own
        start_gate.wait()
        while consume_redis_stream(store, records_per_transaction=per_transaction) > 0:
            pass
        connection.close()

    consumers = [multiprocessing.get_context("fork").Process(target=consume) for _ in range(args.consumers)]
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
          f"({args.per_entry} per stream entry, up to {per_transaction} per transaction; raw rows + "
          f"minute/hour/day rollups + sketches + abuse signals)")


if __name__ == "__main__":
    main()
