"""Minute, hour and day rollups of the request log, added to in the ingest transaction.

Only rows new to the log are added (the caller passes exactly those), so a replayed batch
adds nothing. A late record lands in the bucket of its own timestamp, however late.

Two consumers may add to the same rollup at once: each first inserts the rows it lacks
(ON CONFLICT DO NOTHING, in one sorted order), then locks the rows it adds to (SELECT … FOR
UPDATE, ordered by id), so they serialise on those rows instead of losing an update or
deadlocking.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from analytics.models import RequestRollup

# Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
HISTOGRAM_SIZE = len(LATENCY_BUCKETS_MS) + 1
GRANULARITIES = (RequestRollup.Granularity.MINUTE, RequestRollup.Granularity.HOUR, RequestRollup.Granularity.DAY)

RollupKey = tuple[str, dt.datetime, int, int, int, int, str, str]


def bucket_start(moment: dt.datetime, granularity: str) -> dt.datetime:
    if granularity == RequestRollup.Granularity.MINUTE:
        return moment.replace(second=0, microsecond=0)
    if granularity == RequestRollup.Granularity.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def latency_bucket(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def is_error(status: int) -> bool:
    return status >= 400


@dataclass
class _Delta:
    count: int = 0
    error_count: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    latency_sum_ms: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)

    def add(self, row: Any) -> None:
        self.count += 1
        self.error_count += is_error(row.status_code)
        self.bytes_in += row.bytes_in
        self.bytes_out += row.bytes_out
        self.latency_sum_ms += row.latency_ms
        self.histogram[latency_bucket(row.latency_ms)] += 1


def _key_of(rollup: RequestRollup) -> RollupKey:
    return (rollup.granularity, rollup.bucket_start, rollup.tenant_id, rollup.api_key_id, rollup.route_id,
            rollup.status_class, rollup.cache_status, rollup.error_code)


def _deltas(rows: Iterable[Any]) -> dict[RollupKey, _Delta]:
    deltas: dict[RollupKey, _Delta] = {}
    for row in rows:
        dimensions = (row.tenant_id or 0, row.api_key_id or 0, row.route_id or 0, row.status_code // 100,
                      row.cache_status, row.error_code)
        for granularity in GRANULARITIES:
            key = (granularity, bucket_start(row.timestamp, granularity), *dimensions)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = _Delta()
            delta.add(row)
    return deltas


_table = connection.ops.quote_name(RequestRollup._meta.db_table)
_UPDATE_SQL = (f"UPDATE {_table} SET count = %s, error_count = %s, bytes_in = %s, bytes_out = %s, "
               f"latency_sum_ms = %s, latency_histogram = %s WHERE id = %s")
histogram_field = RequestRollup._meta.get_field("latency_histogram")


def rollups_add(rows: Sequence[Any]) -> int:
    """Add rows new to the log into their rollups; returns how many rollup rows changed.
    Runs inside the caller's transaction. (PostgreSQL's consumer aggregates in SQL instead:
    `rollups_add_from_table`; one test suite pins both to the same figures.)"""
    deltas = _deltas(rows)
    if not deltas:
        return 0
    keys = sorted(deltas)
    RequestRollup.objects.bulk_create(
        [RequestRollup(granularity=k[0], bucket_start=k[1], tenant_id=k[2], api_key_id=k[3], route_id=k[4],
                       status_class=k[5], cache_status=k[6], error_code=k[7],
                       latency_histogram=[0] * HISTOGRAM_SIZE)
         for k in keys],
        ignore_conflicts=True, batch_size=500,
    )
    # A superset of the wanted rows, narrowed per column; the exact match is made below.
    candidates = RequestRollup.objects.select_for_update().filter(
        granularity__in={k[0] for k in keys}, bucket_start__in={k[1] for k in keys},
        tenant_id__in={k[2] for k in keys}, api_key_id__in={k[3] for k in keys},
        route_id__in={k[4] for k in keys}, status_class__in={k[5] for k in keys},
        cache_status__in={k[6] for k in keys}, error_code__in={k[7] for k in keys},
    ).order_by("pk")
    changed = []
    for rollup in candidates:
        delta = deltas.get(_key_of(rollup))
        if delta is None:
            continue
        histogram = list(rollup.latency_histogram) or [0] * HISTOGRAM_SIZE
        changed.append((rollup.count + delta.count, rollup.error_count + delta.error_count,
                        rollup.bytes_in + delta.bytes_in, rollup.bytes_out + delta.bytes_out,
                        rollup.latency_sum_ms + delta.latency_sum_ms,
                        histogram_field.get_db_prep_save(
                            [a + b for a, b in zip(histogram, delta.histogram, strict=True)], connection),
                        rollup.pk))
    # One plain UPDATE per row, sent as one executemany (pipelined by psycopg 3): the ORM's
    # bulk_update builds a CASE per column and row and cost 2 ms a row here.
    with connection.cursor() as cursor:
        cursor.executemany(_UPDATE_SQL, changed)
    return len(changed)


_KEY_COLUMNS = "granularity, bucket_start, tenant_id, api_key_id, route_id, status_class, cache_status, error_code"
_SUM_COLUMNS = "count, error_count, bytes_in, bytes_out, latency_sum_ms"
# Element-wise sum of two histograms (jsonb arrays of HISTOGRAM_SIZE), spelt out per bucket:
# unnesting both arrays and aggregating was most of the upsert's time.
_HISTOGRAM_SUM = "jsonb_build_array({})".format(", ".join(
    f"COALESCE((r.latency_histogram->>{i})::bigint, 0) + COALESCE((EXCLUDED.latency_histogram->>{i})::bigint, 0)"
    for i in range(HISTOGRAM_SIZE)))


def _bucket_conditions(column: str) -> list[str]:
    """The condition for each histogram bucket, as latency_bucket() assigns them (bisect_left:
    a latency equal to a bound falls in that bound's bucket)."""
    lower = (None, *LATENCY_BUCKETS_MS)
    upper = (*LATENCY_BUCKETS_MS, None)
    conditions = []
    for low, high in zip(lower, upper, strict=True):
        parts = [f"{column} > {low}" if low is not None else "", f"{column} <= {high}" if high is not None else ""]
        conditions.append(" AND ".join(part for part in parts if part))
    return conditions


_HISTOGRAM_COLUMNS = [f"h{i}" for i in range(HISTOGRAM_SIZE)]
# Coarser buckets add up the minute buckets: aggregating every raw row once per granularity
# was most of the upsert's time.
_COARSER = [g for g in GRANULARITIES if g != RequestRollup.Granularity.MINUTE]
_SUMS = [*_SUM_COLUMNS.split(", "), *_HISTOGRAM_COLUMNS]


@functools.cache
def _rollups_sql(table: str) -> str:
    minute_histogram = ", ".join(f"count(*) FILTER (WHERE {condition}) AS h{i}"
                                 for i, condition in enumerate(_bucket_conditions("l.latency_ms")))
    coarser = ", ".join(f"('{g}')" for g in _COARSER)
    coarser_sums = ", ".join(f"sum(m.{c})::{'float8' if c == 'latency_sum_ms' else 'bigint'}" for c in _SUMS)
    updates = ", ".join(f"{c} = r.{c} + EXCLUDED.{c}" for c in _SUM_COLUMNS.split(", "))
    return f"""
        WITH minute AS (
            SELECT '{RequestRollup.Granularity.MINUTE}'::text AS granularity,
                   date_trunc('minute', l."timestamp") AS bucket_start, COALESCE(l.tenant_id, 0) AS tenant_id,
                   COALESCE(l.api_key_id, 0) AS api_key_id, COALESCE(l.route_id, 0) AS route_id,
                   l.status_code / 100 AS status_class, l.cache_status, l.error_code,
                   count(*) AS count, count(*) FILTER (WHERE l.status_code >= 400) AS error_count,
                   sum(l.bytes_in)::bigint AS bytes_in, sum(l.bytes_out)::bigint AS bytes_out,
                   sum(l.latency_ms) AS latency_sum_ms, {minute_histogram}
            FROM {table} AS l
            GROUP BY 2, 3, 4, 5, 6, 7, 8
        ), every_granularity AS (
            SELECT * FROM minute
            UNION ALL
            SELECT g.granularity, date_trunc(g.granularity, m.bucket_start), m.tenant_id, m.api_key_id, m.route_id,
                   m.status_class, m.cache_status, m.error_code, {coarser_sums}
            FROM minute AS m CROSS JOIN (VALUES {coarser}) AS g(granularity)
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        )
        INSERT INTO {_table} AS r ({_KEY_COLUMNS}, {_SUM_COLUMNS}, latency_histogram)
        SELECT {_KEY_COLUMNS}, {_SUM_COLUMNS}, jsonb_build_array({", ".join(_HISTOGRAM_COLUMNS)})
        FROM every_granularity
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT ({_KEY_COLUMNS}) DO UPDATE SET {updates}, latency_histogram = {_HISTOGRAM_SUM}
    """


def rollups_add_from_table(table: str) -> int:
    """PostgreSQL: aggregate the request-log rows held in `table` (new to the log, RequestLog's
    columns) into every granularity's rollups in one INSERT … SELECT … GROUP BY … ON CONFLICT
    DO UPDATE, so the database does the arithmetic. Rows are upserted in key order: two
    consumers lock shared rollups in the same order and cannot deadlock."""
    with connection.cursor() as cursor:
        cursor.execute(_rollups_sql(table))
        return cursor.rowcount


def histogram_percentile(histogram: Sequence[float], fraction: float,
                         bounds: Sequence[float] = LATENCY_BUCKETS_MS) -> float | None:
    """The upper bound of the bucket holding that fraction of requests (`histogram` has one
    bucket per bound and one past the last). Its error is the bucket's width: an answer of 50
    means between 25 and 50 ms. None when there are no requests, or when the fraction falls
    past the last bound, which has no upper bound to give (and JSON has no infinity)."""
    total = sum(histogram)
    if not total:
        return None
    running = 0.0
    for index, count in enumerate(histogram):
        running += count
        if running >= fraction * total:
            return float(bounds[index]) if index < len(bounds) else None
    return None
