"""Keeps this process's snapshot current: load at start, reload on a new version.

Sources, in order: the store (what the control plane published), the local file (so a
gateway restarts and serves while PostgreSQL or Redis is down), then `bootstrap` (the
control plane builds and publishes one; used when the store is empty, e.g. after a Redis
restart). Changes arrive by pub/sub, with a periodic version check as the backstop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.runtime.background import stop_task
from gateway.runtime.snapshot import Snapshot, load_snapshot_file, parse_snapshot, save_snapshot_file
from gateway.runtime.store import Store, StoreError

log = logging.getLogger(__name__)
_BOOTSTRAP_EVERY = 5.0


class ConfigWatcher:
    def __init__(self, store: Store, *, snapshot_path: Path, resync_seconds: float,
                 bootstrap: Callable[[], Awaitable[None]] | None) -> None:
        self.store = store
        self.snapshot_path = snapshot_path
        self.resync_seconds = resync_seconds
        self.bootstrap = bootstrap
        self.snapshot: Snapshot | None = None
        self.source = "none"
        self._task: asyncio.Task[None] | None = None
        self._last_bootstrap = 0.0

    async def start(self) -> None:
        if not await self._load_from_store():
            snapshot = await asyncio.to_thread(load_snapshot_file, self.snapshot_path)
            if snapshot is not None:
                self.snapshot, self.source = snapshot, "file"
                log.warning("serving config v%s from %s (store had none)", snapshot.version, self.snapshot_path)
            await self._bootstrap()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="heliox-config-watcher")

    async def load_once(self) -> bool:
        """Load the current snapshot without watching (a worker's one-off job)."""
        if await self._load_from_store():
            return True
        snapshot = await asyncio.to_thread(load_snapshot_file, self.snapshot_path)
        if snapshot is not None:
            self.snapshot, self.source = snapshot, "file"
        return snapshot is not None

    async def stop(self) -> None:
        await stop_task(self._task)

    async def _bootstrap(self) -> None:
        if self.bootstrap is None or time.monotonic() - self._last_bootstrap < _BOOTSTRAP_EVERY:
            return
        self._last_bootstrap = time.monotonic()
        try:
            await self.bootstrap()
        except Exception as exc:  # the database may be down: keep serving what we have
            log.warning("config bootstrap failed: %s", exc)
            return
        await self._load_from_store()

    async def _load_from_store(self) -> bool:
        try:
            published = await self.store.get_config()
        except StoreError as exc:
            log.warning("store unavailable while loading config: %s", exc)
            return False
        if published is None:
            return False
        version, blob = published
        if self.snapshot is not None and self.snapshot.version == version and self.source == "store":
            return True
        try:
            snapshot = parse_snapshot(json.loads(blob))
        except (ValueError, KeyError, TypeError):
            log.exception("published config v%s is unreadable; keeping v%s", version,
                          self.snapshot.version if self.snapshot else None)
            return False
        self.snapshot, self.source = snapshot, "store"
        log.info("loaded config snapshot v%s", version)
        await asyncio.to_thread(save_snapshot_file, self.snapshot_path, blob)
        return True

    async def _watch(self) -> None:
        while True:
            try:
                await self.store.wait_for_config_change(self.resync_seconds)
                version = await self.store.config_version()
                if version == 0:
                    await self._bootstrap()
                elif self.snapshot is None or version != self.snapshot.version or self.source != "store":
                    # != rather than >: a Redis that lost its data restarts the count.
                    await self._load_from_store()
            except asyncio.CancelledError:
                raise
            except StoreError:
                await asyncio.sleep(self.resync_seconds)
            except Exception:
                log.exception("config watcher error")
                await asyncio.sleep(self.resync_seconds)
