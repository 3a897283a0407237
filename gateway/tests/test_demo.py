"""seed_demo: the original's demo, idempotent, its keys authenticate and are stored nowhere."""

from __future__ import annotations

import io

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from gateway.demo import KEYS, demo_seed
from gateway.models import CachePolicy, Route
from tenants.models import ApiKey, Tenant
from tenants.services import key_hash

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, ...]:
    return (Tenant.objects.count(), ApiKey.objects.count(), CachePolicy.objects.count(), Route.objects.count(),
            get_user_model().objects.count())


def test_the_demo_is_created_once_however_often_it_runs() -> None:
    out = io.StringIO()
    call_command("seed_demo", "--upstream-url", "http://127.0.0.1:8001", stdout=out)
    assert _counts() == (3, 5, 4, 7, 1)
    hashes = sorted(ApiKey.objects.values_list("key_hash", flat=True))
    assert "hx_prod_acme_7k9m2n4p5q8r1s3t6u0v" in out.getvalue()
    assert "password" in out.getvalue()
    second = io.StringIO()
    call_command("seed_demo", stdout=second)
    assert _counts() == (3, 5, 4, 7, 1)
    assert sorted(ApiKey.objects.values_list("key_hash", flat=True)) == hashes
    assert "password unchanged" in second.getvalue()


def test_each_demo_key_authenticates_and_its_secret_is_stored_nowhere() -> None:
    demo_seed(upstream_url="http://127.0.0.1:8001")
    with connection.cursor() as cursor:
        dump = []
        for model in apps.get_models():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(model._meta.db_table)}")
            dump.append(repr(cursor.fetchall()))
    everything = "\n".join(dump)
    for tenant, name, secret, _, daily, monthly, rps, burst in KEYS:
        key = ApiKey.objects.get(key_hash=key_hash(secret))
        assert (key.tenant.slug, key.name) == (tenant, name)
        assert (key.quota_daily, key.quota_monthly, key.rate_limit_rps, key.rate_limit_burst) == (
            daily, monthly, rps, burst)
        assert secret not in everything


def test_the_demo_routes_match_the_original() -> None:
    demo_seed(upstream_url="http://127.0.0.1:8001")
    demo = Route.objects.get(slug="demo")
    assert demo.tenant is None
    assert demo.methods == ["GET", "POST"]
    webhooks = Route.objects.get(slug="webhooks")
    assert (webhooks.cache_policy.name, webhooks.timeout_ms) == ("No Cache", 5000)
    assert webhooks.cache_policy.no_store
