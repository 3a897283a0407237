"""Loads request records into RequestLog and its rollups, idempotently.

Insert by request id with ON CONFLICT DO NOTHING, add only the rows actually inserted to the
rollups in the same transaction, then acknowledge: a batch replayed after a crash between
insert and ack changes nothing.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from abuse.signals_ingest import signals_ingest
from analytics.models import RequestLog, RouteTraffic
from analytics.rollups import rollups_add, rollups_add_from_table
from analytics.sketches import CountMinSketch, HyperLogLog, merge_top
from gateway.runtime.memory_store import MemoryStore
from gateway.runtime.records import Record, decode_batch
from gateway.runtime.redis_store import RedisStore
from gateway.runtime.store import LEGACY_LINES_FIELD, LEGACY_RECORD_FIELD, RECORD_BATCH_FIELD, RECORD_STREAM
from tenants.models import ApiKey

log = logging.getLogger(__name__)
GROUP = "ingest"
# A consumer that died holding entries: after this long they are claimed by another.
RECLAIM_IDLE_MS = 60_000
# Records per transaction, at most: a pass takes whole stream entries (a gateway's flush each)
# until it has this many. Larger batches share rollup rows (one upsert serves every record
# of a key, route and minute in it); the bound keeps one transaction's locks short.
RECORDS_PER_TRANSACTION = 10_000
# Stream entries per read: a gateway process at 2,000 requests/s flushes about 200 records
# every 0.1 s, so this is about one transaction's worth. A larger read would leave nothing
# for a second consumer to take while the first works through it.
ENTRIES_PER_READ = 50
# A pass stops reading after this long, well inside the Celery task's soft time limit (25 s):
# a pass cut off by the limit rolls back its transaction and leaves its entries pending
# until they are reclaimed. Beat starts the next pass a second later.
PASS_SECONDS = 10.0


_LOG_FIELDS = [f for f in RequestLog._meta.concrete_fields if not f.primary_key]


class LogRow(NamedTuple):
    """A request-log row as the consumer handles it: a model instance cost 20 µs to build."""

    request_id: str
    timestamp: dt.datetime
    tenant_id: int | None
    api_key_id: int | None
    route_id: int | None
    method: str
    path: str
    status_code: int
    cache_status: str
    upstream_latency_ms: float | None
    latency_ms: float
    bytes_in: int
    bytes_out: int
    client_ip: str | None
    user_agent: str
    error_code: str


assert list(LogRow._fields) == [f.attname for f in _LOG_FIELDS], "LogRow must follow RequestLog's columns"


def _row(record: Record) -> LogRow:
    return LogRow(
        record.request_id, dt.datetime.fromtimestamp(record.ts, dt.UTC), record.tenant_id, record.api_key_id,
        record.route_id, record.method[:10], record.path, record.status, record.cache or "BYPASS",
        record.upstream_ms, record.latency_ms, record.bytes_in or 0, record.bytes_out or 0, record.client_ip,
        (record.user_agent or "")[:512], record.error or "",
    )


def ingest_records(records: Iterable[Record]) -> int:
    """Store records; returns how many rows were new. Only new rows feed the rollups,
    last_used_at, the route sketches and the abuse signals, so a replayed batch changes nothing."""
    by_id = {record.request_id: record for record in records}
    if not by_id:
        return 0
    rows = [_row(r) for r in by_id.values()]
    with transaction.atomic():
        fresh = _store_new(rows)
        # What other consumers write too comes after the log's own rows, and the rollups, the
        # rows most shared, last: a consumer waiting on a row another holds then waits for the
        # end of one statement, not of a whole batch.
        _touch_last_used(fresh)
        _update_route_sketches(fresh)
        signals_ingest(by_id[r.request_id] for r in fresh)
        _rollups_add(fresh)
    return len(fresh)


_INSERT_CHUNK = 500
_INCOMING = "hx_incoming_logs"


def _store_new(rows: list[LogRow]) -> list[LogRow]:
    """Insert the rows the log lacks; returns them.

    INSERT … ON CONFLICT (request_id) DO NOTHING RETURNING request_id: the database says
    which rows were new, so two consumers inserting one record at once count it once (a
    read-then-insert would let both think it new)."""
    inserted = _copy_new(rows) if connection.vendor == "postgresql" else _insert_new(rows)
    return [row for row in rows if row.request_id in inserted]


def _rollups_add(fresh: list[LogRow]) -> None:
    if connection.vendor != "postgresql":
        rollups_add(fresh)
        return
    rollups_add_from_table(_INCOMING)  # the new rows, as _copy_new left them
    with connection.cursor() as cursor:
        # Dropped now, not at commit: a caller's outer transaction may ingest again.
        cursor.execute(f"DROP TABLE {_INCOMING}")


def _log_table_and_columns() -> tuple[str, str]:
    table = connection.ops.quote_name(RequestLog._meta.db_table)
    return table, ", ".join(connection.ops.quote_name(f.column) for f in _LOG_FIELDS)


def _insert_new(rows: list[LogRow]) -> set[str]:
    table, columns = _log_table_and_columns()
    row_placeholder = "(" + ", ".join(["%s"] * len(_LOG_FIELDS)) + ")"
    inserted: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start:start + _INSERT_CHUNK]
            params = [f.get_db_prep_save(getattr(row, f.attname), connection) for row in chunk for f in _LOG_FIELDS]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_placeholder] * len(chunk))} "
                f"ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                params,
            )
            inserted.update(request_id for (request_id,) in cursor.fetchall())
    return inserted


def _copy_new(rows: list[LogRow]) -> set[str]:
    """PostgreSQL: COPY the batch into a temporary table (a tenth of the cost of a
    parameterised VALUES list), insert what the log lacks and keep only those rows there,
    for `_rollups_add` to aggregate in SQL."""
    table, columns = _log_table_and_columns()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {_INCOMING} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
        cursor.execute(f"SELECT {columns} FROM {_INCOMING} LIMIT 0")
        types = [column.type_code for column in cursor.description]
        with cursor.cursor.copy(f"COPY {_INCOMING} ({columns}) FROM STDIN") as copy:
            copy.set_types(types)  # the columns' own types: no dumper looked up per value
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_INCOMING} "
                       "ON CONFLICT (request_id) DO NOTHING RETURNING request_id")
        inserted = {request_id for (request_id,) in cursor.fetchall()}
        if len(inserted) < len(rows):  # a replay: what the log had is not added again
            cursor.execute(f"DELETE FROM {_INCOMING} WHERE NOT (request_id = ANY(%s))", [list(inserted)])
    return inserted


def _touch_last_used(rows: list[LogRow]) -> None:
    """last_used_at moves at most once a minute per key: one UPDATE per key per batch, and
    only when the stored value is older than the interval."""
    latest: dict[int, dt.datetime] = {}
    for row in rows:
        if row.api_key_id and (row.api_key_id not in latest or row.timestamp > latest[row.api_key_id]):
            latest[row.api_key_id] = row.timestamp
    interval = dt.timedelta(seconds=settings.LAST_USED_WRITE_INTERVAL_SECONDS)
    for key_id, seen in sorted(latest.items()):  # in key order: two consumers cannot deadlock
        ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=seen - interval), pk=key_id).update(
            last_used_at=seen
        )


def _update_route_sketches(rows: list[LogRow]) -> None:
    """Fold only rows new to the log into each route's daily sketches (replays add nothing)."""
    groups: dict[tuple[int, dt.date], list[LogRow]] = {}
    for row in rows:
        if row.route_id:
            groups.setdefault((row.route_id, row.timestamp.date()), []).append(row)
    for (route_id, day), group in sorted(groups.items()):  # in key order, as every consumer locks them
        traffic, _ = RouteTraffic.objects.select_for_update().get_or_create(route_id=route_id, day=day)
        hll = HyperLogLog(bytes(traffic.unique_ips_hll))
        cms = CountMinSketch(bytes(traffic.paths_cms))
        # Each distinct value once: adding an address twice changes no register, and a
        # path's count is added in one go.
        for client_ip in {row.client_ip for row in group if row.client_ip}:
            hll.add(client_ip)
        estimates = {path: cms.add(path, count) for path, count in Counter(row.path for row in group).items()}
        traffic.requests += len(group)
        traffic.unique_ips_hll = bytes(hll.registers)
        traffic.paths_cms = cms.to_bytes()
        traffic.top_paths = merge_top(traffic.top_paths, cms, estimates)
        traffic.save()


def records_of(batches: Iterable[bytes]) -> list[Record]:
    """The records in encoded batches; an unreadable batch is logged and dropped."""
    records: list[Record] = []
    for batch in batches:
        try:
            records.extend(decode_batch(batch))
        except (TypeError, ValueError):
            log.error("dropping an unreadable record batch")
    return records


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during a pass. The records it holds (tens of thousands of
    young objects, none in a cycle) made the collector walk the heap again and again: 4 % of
    the consumer's time. What cycles a pass leaves are collected after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def drain_memory_store(store: MemoryStore, *, batch: int = 100) -> int:
    """Embedded mode: ingest the in-process queue, `batch` flushed batches per transaction.

    The collector is not paused here: the drain runs inside the web server's process, where
    pausing it would pause it for the gateway too."""
    total = 0
    while batches := store.take_records(batch):
        total += ingest_records(records_of(batches))
        store.ack_records(len(batches))
    return total


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def consume_redis_stream(store: RedisStore, *, batch: int = ENTRIES_PER_READ, block_ms: int = 0,
                         max_batches: int = 1000, max_seconds: float = PASS_SECONDS,
                         reclaim_idle_ms: int = RECLAIM_IDLE_MS,
                         records_per_transaction: int = RECORDS_PER_TRANSACTION) -> int:
    """One pass: reclaim a dead consumer's pending entries, then read new ones, `batch`
    entries per read, up to `max_batches` reads and no new read after `max_seconds`."""
    stop_reading_at = time.monotonic() + max_seconds
    client = store.sync
    try:
        client.xgroup_create(RECORD_STREAM, GROUP, id="0", mkstream=True)
    except Exception as exc:  # BUSYGROUP: it exists
        if "BUSYGROUP" not in str(exc):
            raise
    me = consumer_name()
    total = 0
    with _collector_paused():
        _, claimed, _ = client.xautoclaim(RECORD_STREAM, GROUP, me, reclaim_idle_ms, start_id="0-0", count=batch)
        if claimed:
            total += _ingest_entries(client, claimed, records_per_transaction)
        for _ in range(max_batches):
            if time.monotonic() > stop_reading_at:
                break
            response = client.xreadgroup(GROUP, me, {RECORD_STREAM: ">"}, count=batch, block=block_ms or None)
            if not response or not response[0][1]:
                break
            total += _ingest_entries(client, response[0][1], records_per_transaction)
    return total


def _ingest_entries(client: Any, entries: list[tuple[bytes, dict[bytes, bytes]]], limit: int) -> int:
    inserted = 0
    for group, records in _transactions(entries, limit):
        inserted += ingest_records(records)
        client.xack(RECORD_STREAM, GROUP, *group)
    return inserted


def _transactions(entries: list[tuple[bytes, dict[bytes, bytes]]],
                  limit: int) -> Iterator[tuple[list[bytes], list[Record]]]:
    """Whole entries, grouped until a group holds `limit` records."""
    ids: list[bytes] = []
    records: list[Record] = []
    for entry_id, fields in entries:
        ids.append(entry_id)
        records.extend(entry_records(fields))
        if len(records) >= limit:
            yield ids, records
            ids, records = [], []
    if ids:
        yield ids, records


def entry_records(fields: dict[bytes, bytes]) -> list[Record]:
    """The records of one stream entry: a gateway's batch, or an older gateway's entry."""
    if RECORD_BATCH_FIELD in fields:
        return records_of([fields[RECORD_BATCH_FIELD]])
    if LEGACY_LINES_FIELD in fields:
        return records_of(fields[LEGACY_LINES_FIELD].split(b"\n"))
    if LEGACY_RECORD_FIELD in fields:
        return records_of([fields[LEGACY_RECORD_FIELD]])
    return []
