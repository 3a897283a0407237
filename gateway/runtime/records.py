"""Request records: buffered in process, flushed to the store's stream in batches.

The response never waits for a record. If the store fails, the batch is appended to a
local spool file and shipped when the store answers again; the consumer inserts by
request id with ON CONFLICT DO NOTHING, so a batch shipped twice is still counted once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.runtime import metrics
from gateway.runtime.background import stop_task
from gateway.runtime.store import Store, StoreError

log = logging.getLogger(__name__)
_SHIP_CHUNK = 500


class RecordBuffer:
    def __init__(self, store: Store, *, flush_interval: float, spool_path: Path,
                 gauges: Callable[[], dict[str, float]] = dict) -> None:
        self.store = store
        self.gauges = gauges
        self.process = metrics.process_id()
        self._metric_deltas: dict[str, float] = {}
        self._flushing: asyncio.Lock | None = None
        self.flush_interval = flush_interval
        self.spool_path = spool_path
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.spooled = 0  # records written to the spool since start (a metric)

    def add(self, record: dict[str, Any]) -> None:
        self._pending.append(record)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heliox-record-flusher")

    async def stop(self) -> None:
        await stop_task(self._task)
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:  # the flusher must outlive any one bad batch
                log.exception("record flush failed")

    async def flush(self) -> None:
        # One flush at a time: the spool is renamed, shipped and removed across awaits, and a
        # flush called while the background one ships would find it half-moved.
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        metrics.tally(batch, self._metric_deltas)
        encoded = [json.dumps(r, separators=(",", ":")).encode() for r in batch]
        if self._has_spool() and await self._ship_spool() is False:
            if encoded:
                self._write_spool(encoded)
        elif encoded:
            try:
                await self.store.append_records(encoded)
            except StoreError:
                log.warning("store unavailable; spooling %d records to %s", len(encoded), self.spool_path)
                self._write_spool(encoded)
        await self._publish_metrics()

    async def _publish_metrics(self) -> None:
        try:
            await self.store.add_metrics(self._metric_deltas, self.process, self.gauges())
        except StoreError:
            return  # kept, and sent with the next flush
        self._metric_deltas = {}

    def _has_spool(self) -> bool:
        return self.spool_path.exists() or self.spool_path.with_suffix(".shipping").exists()

    def _write_spool(self, encoded: list[bytes]) -> None:
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spool_path.open("ab") as spool:
            spool.write(b"".join(line + b"\n" for line in encoded))
            spool.flush()
            os.fsync(spool.fileno())
        self.spooled += len(encoded)

    async def _ship_spool(self) -> bool:
        """Send the spool to the store; False if the store is still down (spool kept)."""
        shipping = self.spool_path.with_suffix(".shipping")
        if not shipping.exists() and self.spool_path.exists():
            os.replace(self.spool_path, shipping)
        lines = [line for line in shipping.read_bytes().splitlines() if line.strip()]
        try:
            for start in range(0, len(lines), _SHIP_CHUNK):
                await self.store.append_records(lines[start:start + _SHIP_CHUNK])
        except StoreError:
            # Keep what is left for the next try; a chunk that did land is deduplicated later.
            if not self.spool_path.exists():
                os.replace(shipping, self.spool_path)
            else:
                with self.spool_path.open("ab") as spool:
                    spool.write(shipping.read_bytes())
                shipping.unlink()
            return False
        shipping.unlink()
        log.info("shipped %d spooled records", len(lines))
        return True
