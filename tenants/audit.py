"""The audit log of API writes: a JSON snapshot of the object before and after each one."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from tenants.models import AuditEntry, Tenant

# Never copied into the log: a secret's hash is still a secret.
REDACTED_FIELDS = frozenset({"key_hash", "password", "code_hash"})


def audit_snapshot(instance: models.Model) -> dict[str, Any]:
    """The object's concrete fields as JSON values (foreign keys by id)."""
    values = {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
              if field.attname not in REDACTED_FIELDS}
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def audit_record(*, actor: Any, source: str, action: str, target: models.Model | None,
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                 tenant: Tenant | None = None) -> AuditEntry:
    """`actor` is a user or an admin-key principal (anything with a `username`); `target` is
    None for a write to no one object (purging the whole cache)."""
    user = actor if isinstance(actor, AbstractBaseUser) else None
    return AuditEntry.objects.create(
        actor=str(getattr(actor, "username", actor))[:200], user=user, tenant=tenant, source=source,
        action=action, target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "everything", before=before, after=after,
    )
