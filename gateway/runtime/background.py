"""Stopping the data plane's background tasks reliably."""

from __future__ import annotations

import asyncio


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel until the task is really done.

    On Python 3.11 a cancel that lands as an `asyncio.timeout` inside redis-py expires is
    turned into TimeoutError (fixed in 3.12), and a loop that survives store errors would
    swallow it; so cancel again until the task ends, rather than wait forever.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
