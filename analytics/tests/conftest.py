from __future__ import annotations

import pytest

from gateway.config_publish import config_store


@pytest.fixture
def clean_metrics() -> None:
    """No gateway's counters or process reports left in the store by an earlier test."""
    store = config_store()
    if hasattr(store, "sync"):
        store.sync.delete("hx:metrics", "hx:metrics:processes")
    else:
        store._metrics.clear()  # the embedded store: this process's own
        store._process_reports.clear()
