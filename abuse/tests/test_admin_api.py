"""/admin/api/abuse/blocked and /admin/api/abuse/unblock/<key_id>."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from abuse.models import Block, BlockReason
from abuse.services import block_create
from gateway.config_publish import config_store
from tenants.models import AuditEntry
from tenants.services import api_key_issue
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_active_blocks_are_listed_in_the_originals_shape(admin_api: APIClient,
                                                         django_capture_on_commit_callbacks: object) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        block_create(api_key=key, reason=BlockReason.ANOMALY, detail="z=9", score=9.0, rate=120.0)
        block_create(client_ip="203.0.113.9", reason=BlockReason.KEY_GUESSING)
    body = admin_api.get("/admin/api/abuse/blocked").json()
    assert isinstance(body, list) and len(body) == 2
    by_key = next(item for item in body if item["api_key_id"] == key.pk)
    assert {"id", "api_key_id", "reason", "reason_detail", "anomaly_score", "rate_at_block", "error_rate_at_block",
            "blocked_at", "blocked_until", "unblocked_at", "unblocked_by", "unblock_reason", "is_active"} <= set(by_key)
    assert (by_key["reason"], by_key["anomaly_score"], by_key["is_active"]) == ("anomaly", 9.0, True)


def test_unblocking_lifts_the_block_in_the_store_and_the_record(admin_api: APIClient,
                                                                django_capture_on_commit_callbacks: object) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        block_create(api_key=key, reason=BlockReason.MANUAL)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = admin_api.post(f"/admin/api/abuse/unblock/{key.pk}", {"reason": "false positive"}, format="json")
    assert response.status_code == 200 and response.json() == {"unblocked": True, "blocks_cleared": 1}
    block = Block.objects.get(api_key=key)
    assert block.lifted_at is not None and block.lift_reason == "false positive"
    assert config_store().clear_block(f"k{key.pk}") is False  # the unblock already removed it from the store
    assert admin_api.get("/admin/api/abuse/blocked").json() == []
    assert AuditEntry.objects.get(action="unblock").after == {"reason": "false positive", "blocks_cleared": 1}


def test_unblocking_needs_a_reason_and_a_real_key(admin_api: APIClient) -> None:
    key = api_key_issue(tenant=TenantFactory(), name="k").api_key
    no_reason = admin_api.post(f"/admin/api/abuse/unblock/{key.pk}", {}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["fields"]
    assert admin_api.post("/admin/api/abuse/unblock/99999", {"reason": "x"}, format="json").status_code == 404
