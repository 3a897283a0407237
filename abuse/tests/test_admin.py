"""django-admin for blocks and abuse records: pages render, lifting records who, a manual
block goes through block_create, and a block without a subject or end is a form error."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import models
from django.test import Client
from django.utils import timezone

from abuse.models import AbuseEvent, AbuseScore, AbuseSignal, Block
from abuse.services import block_create
from analytics.ingest import ingest_records
from gateway.runtime.records import Record
from tenants.models import ApiKey
from tenants.tests.factories import (
    ApiKeyFactory,
    admin_url,
    assert_admin_pages_render,
    registered_models,
    staff_with_every_permission,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_key() -> ApiKey:
    api_key = ApiKeyFactory()
    ingest_records([Record(request_id=uuid.uuid4().hex, ts=time.time(), tenant_id=api_key.tenant_id,
                           api_key_id=api_key.pk, method="GET", path="/items", status=401, latency_ms=1.0,
                           client_ip="203.0.113.9")])
    block_create(api_key=api_key, reason="anomaly", detail="test", score=7.5, rate=100, error_rate=0)
    AbuseScore.objects.create(api_key=api_key, mean=20, variance=4, intervals=30, last_z=7.5,
                              history=[[time.time(), 100, 7.5]])
    return api_key


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(staff_with_every_permission())
    return client


def _block_form(**extra: Any) -> dict[str, Any]:
    ends = timezone.now() + dt.timedelta(hours=1)
    return {"api_key": "", "client_ip": "", "reason": "manual", "reason_detail": "abuse report #12",
            "expires_at_0": ends.strftime("%Y-%m-%d"), "expires_at_1": ends.strftime("%H:%M:%S"), **extra}


@pytest.mark.parametrize("model", registered_models("abuse"), ids=lambda m: m._meta.label)
def test_every_abuse_page_renders_for_a_superuser(admin_client: Client, api_key: ApiKey,
                                                  model: type[models.Model]) -> None:
    assert_admin_pages_render(admin_client, model)


@pytest.mark.parametrize("model", registered_models("abuse"), ids=lambda m: m._meta.label)
def test_every_abuse_page_renders_for_staff_with_every_permission(staff_client: Client, api_key: ApiKey,
                                                                  model: type[models.Model]) -> None:
    assert_admin_pages_render(staff_client, model)


def test_lifting_a_block_records_who_and_why(admin_client: Client, api_key: ApiKey,
                                             admin_user: AbstractBaseUser) -> None:
    block = Block.objects.get(api_key=api_key)

    response = admin_client.post(admin_url(Block, "changelist"), {"action": "lift", "_selected_action": [block.pk]})

    assert response.status_code == 302
    block.refresh_from_db()
    assert block.lifted_at is not None
    assert block.lifted_by == admin_user
    assert block.lift_reason
    assert AbuseEvent.objects.filter(action=AbuseEvent.Action.UNBLOCKED, api_key=api_key).exists()


def test_lifting_leaves_unselected_blocks_alone(admin_client: Client, api_key: ApiKey) -> None:
    other = block_create(client_ip="198.51.100.7", reason="key_guessing")
    block = Block.objects.get(api_key=api_key)

    admin_client.post(admin_url(Block, "changelist"), {"action": "lift", "_selected_action": [block.pk]})

    other.refresh_from_db()
    assert other.lifted_at is None


def test_a_manual_block_is_made_by_block_create(admin_client: Client, api_key: ApiKey) -> None:
    response = admin_client.post(admin_url(Block, "add"), _block_form(client_ip="198.51.100.20"))

    assert response.status_code == 302
    block = Block.objects.get(client_ip="198.51.100.20")
    assert block.reason == "manual" and block.reason_detail == "abuse report #12"
    assert timezone.now() + dt.timedelta(minutes=58) < block.expires_at <= timezone.now() + dt.timedelta(hours=1)
    assert AbuseEvent.objects.filter(action=AbuseEvent.Action.BLOCKED, client_ip="198.51.100.20").exists()


@pytest.mark.parametrize("extra, field", [
    ({}, None),  # neither a key nor an address: the block_has_subject constraint
    ({"client_ip": "not-an-ip"}, "client_ip"),
    ({"client_ip": "198.51.100.20", "expires_at_0": "2000-01-01"}, "expires_at"),
    ({"client_ip": "198.51.100.20", "reason": "because"}, "reason"),
])
def test_a_bad_manual_block_is_a_form_error(admin_client: Client, api_key: ApiKey, extra: dict[str, str],
                                            field: str | None) -> None:
    before = Block.objects.count()

    response = admin_client.post(admin_url(Block, "add"), _block_form(**extra))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors.get(field) if field else form.non_field_errors()
    assert Block.objects.count() == before


def test_a_block_cannot_be_edited_only_lifted(admin_client: Client, api_key: ApiKey) -> None:
    block = Block.objects.get(api_key=api_key)
    expires_at = block.expires_at

    admin_client.post(admin_url(Block, "change", block.pk), _block_form(client_ip="198.51.100.1"))

    block.refresh_from_db()
    assert (block.expires_at, block.client_ip, block.reason) == (expires_at, None, "anomaly")


def test_abuse_records_cannot_be_forged(staff_client: Client, api_key: ApiKey) -> None:
    event = AbuseEvent.objects.filter(api_key=api_key).first()

    assert staff_client.get(admin_url(AbuseEvent, "add")).status_code == 403
    assert staff_client.get(admin_url(AbuseScore, "add")).status_code == 403
    assert staff_client.get(admin_url(AbuseSignal, "add")).status_code == 403
    assert staff_client.post(admin_url(AbuseEvent, "change", event.pk), {"action": "flagged"}).status_code == 403
