"""Any change to what the data plane reads republishes the config snapshot after commit."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from abuse.models import Block
from billing.models import Plan, Subscription
from gateway.config_publish import schedule_publish
from gateway.models import CachePolicy, Route
from tenants.models import ApiKey, Tenant


def _changed(sender: type, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata: nothing committed worth announcing yet
        return
    schedule_publish()


# Block: IP blocks travel in the snapshot (key blocks live in the store, read by admission).
for _model in (Plan, Subscription, Tenant, ApiKey, Route, CachePolicy, Block):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"heliox-config-save-{_model.__name__}")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"heliox-config-delete-{_model.__name__}")
