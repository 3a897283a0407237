"""seed_demo: the original's demo, idempotent, its keys authenticate and are stored nowhere."""

from __future__ import annotations

import io
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from gateway.demo import KEYS, demo_seed
from gateway.models import CachePolicy, Route
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_revoke, key_hash
from tenants.tests.factories import stored_text

pytestmark = pytest.mark.django_db
UPSTREAM = "http://127.0.0.1:8001"
SECRETS = [secret for _, _, secret, *_ in KEYS]


def _seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--upstream-url", UPSTREAM, *args, stdout=out)
    return out.getvalue()


def _counts() -> tuple[int, ...]:
    return (Tenant.objects.count(), ApiKey.objects.count(), CachePolicy.objects.count(), Route.objects.count(),
            get_user_model().objects.count())


def _printed_password(output: str) -> str:
    match = re.search(r"password (\S+)", output)
    assert match, output
    return match.group(1)


def test_seed_demo_creates_3_tenants_5_keys_4_policies_7_routes_and_the_admin() -> None:
    _seed()
    assert _counts() == (3, 5, 4, 7, 1)
    admin = get_user_model().objects.get()
    assert (admin.username, admin.email, admin.is_staff, admin.is_superuser) == (
        "admin", "admin@example.com", True, True)


@pytest.mark.parametrize("slug, name, plan", [
    ("acme", "Acme Corporation", "enterprise"),
    ("techflow", "TechFlow Solutions", "pro"),
    ("cloudbridge", "CloudBridge Inc", "enterprise"),
])
def test_the_demo_tenants_are_on_their_plans(slug: str, name: str, plan: str) -> None:
    demo_seed(upstream_url=UPSTREAM)
    tenant = Tenant.objects.get(slug=slug)
    assert (tenant.name, tenant.plan.slug, tenant.subscription.plan.slug) == (name, plan, plan)


def test_a_second_run_changes_no_counts_and_no_key_hashes() -> None:
    _seed()
    hashes = sorted(ApiKey.objects.values_list("key_hash", flat=True))
    _seed()
    assert _counts() == (3, 5, 4, 7, 1)
    assert sorted(ApiKey.objects.values_list("key_hash", flat=True)) == hashes


def test_a_second_run_writes_nothing() -> None:
    demo_seed(upstream_url=UPSTREAM)
    stamps = sorted(Route.objects.values_list("updated_at", flat=True)) + sorted(
        ApiKey.objects.values_list("updated_at", flat=True))
    again = demo_seed(upstream_url=UPSTREAM)
    assert (again.created, again.updated) == (0, 0)
    assert sorted(Route.objects.values_list("updated_at", flat=True)) + sorted(
        ApiKey.objects.values_list("updated_at", flat=True)) == stamps


def test_a_rerun_brings_back_what_someone_changed() -> None:
    demo_seed(upstream_url=UPSTREAM)
    production = ApiKey.objects.get(key_hash=key_hash(SECRETS[0]))
    api_key_revoke(api_key=production)
    ApiKey.objects.filter(pk=production.pk).update(quota_daily=1)
    Route.objects.filter(slug="webhooks").update(timeout_ms=99_000, methods=["GET"])
    CachePolicy.objects.filter(name="Standard API Cache").update(ttl_seconds=1)
    demo_seed(upstream_url=UPSTREAM)
    production.refresh_from_db()
    assert (production.status, production.quota_daily, production.revoked_at) == ("active", 100_000, None)
    webhooks = Route.objects.get(slug="webhooks")
    assert (webhooks.timeout_ms, webhooks.methods) == (5_000, ["GET", "POST"])
    assert CachePolicy.objects.get(name="Standard API Cache").ttl_seconds == 300
    assert _counts() == (3, 5, 4, 7, 1)


@pytest.mark.parametrize("secret", SECRETS)
def test_each_demo_secret_authenticates(secret: str) -> None:
    demo_seed(upstream_url=UPSTREAM)
    key = ApiKey.objects.get(key_hash=key_hash(secret))
    assert key.is_usable()
    assert (key.prefix, key.last4) == (secret[:12], secret[-4:])


@pytest.mark.parametrize("tenant, name, environment, daily, monthly, rps, burst", [
    ("acme", "Production API", "live", 100_000, 2_500_000, 500, 1_000),
    ("acme", "Staging Environment", "test", 10_000, 250_000, 100, 200),
    ("techflow", "Analytics Service", "live", 50_000, 1_500_000, 250, 500),
    ("techflow", "Development Key", "test", 5_000, 100_000, 50, 100),
    ("cloudbridge", "Gateway Service", "live", 200_000, 5_000_000, 1_000, 2_000),
])
def test_each_demo_key_has_the_originals_limits(tenant: str, name: str, environment: str, daily: int,
                                                monthly: int, rps: int, burst: int) -> None:
    demo_seed(upstream_url=UPSTREAM)
    key = ApiKey.objects.get(tenant__slug=tenant, name=name)
    assert (key.environment, key.quota_daily, key.quota_monthly, key.rate_limit_rps, key.rate_limit_burst) == (
        environment, daily, monthly, rps, burst)


def test_no_demo_secret_is_stored_anywhere_in_the_database() -> None:
    demo_seed(upstream_url=UPSTREAM)
    everything = stored_text()
    assert key_hash(SECRETS[0]) in everything  # the dump does see the keys table
    for secret in SECRETS:
        assert secret not in everything


@pytest.mark.parametrize("slug, tenant, policy, methods, timeout_ms", [
    ("products", "acme", "Standard API Cache", ["GET"], 30_000),
    ("inventory", "acme", "High-Frequency Data", ["GET"], 10_000),
    ("analytics", "techflow", "Standard API Cache", ["GET"], 30_000),
    ("reports", "techflow", "Static Content", ["GET"], 60_000),
    ("services", "cloudbridge", "Standard API Cache", ["GET", "POST"], 30_000),
    ("webhooks", "cloudbridge", "No Cache", ["GET", "POST"], 5_000),
    ("demo", None, "Standard API Cache", ["GET", "POST"], 30_000),
])
def test_each_demo_route_matches_the_original(slug: str, tenant: str | None, policy: str, methods: list[str],
                                              timeout_ms: int) -> None:
    demo_seed(upstream_url=UPSTREAM)
    route = Route.objects.get(slug=slug)
    assert (route.tenant.slug if route.tenant else None, route.cache_policy.name, route.methods,
            route.timeout_ms) == (tenant, policy, methods, timeout_ms)
    assert route.upstream_targets == [{"url": UPSTREAM, "weight": 1}]


@pytest.mark.parametrize("name, no_store, ttl, swr, vary", [
    ("Standard API Cache", False, 300, 60, ["Accept", "Accept-Language"]),
    ("High-Frequency Data", False, 30, 30, ["Accept"]),
    ("Static Content", False, 3600, 600, []),
    ("No Cache", True, 0, 0, []),
])
def test_each_demo_cache_policy_matches_the_original(name: str, no_store: bool, ttl: int, swr: int,
                                                     vary: list[str]) -> None:
    demo_seed(upstream_url=UPSTREAM)
    policy = CachePolicy.objects.get(name=name)
    assert (policy.no_store, policy.ttl_seconds, policy.stale_while_revalidate_seconds, policy.vary_headers) == (
        no_store, ttl, swr, vary)


def test_routes_default_to_the_example_upstream_url() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    assert Route.objects.get(slug="demo").upstream_targets == [{"url": settings.EXAMPLE_UPSTREAM_URL, "weight": 1}]


def test_a_bad_upstream_url_is_a_command_error_and_creates_nothing() -> None:
    with pytest.raises(CommandError, match="metadata"):
        call_command("seed_demo", "--upstream-url", "http://169.254.169.254", stdout=io.StringIO())
    assert _counts() == (0, 0, 0, 0, 0)


def test_the_command_prints_each_key_with_its_tenant() -> None:
    output = _seed()
    for tenant, name, secret in [("Acme Corporation", "Production API", SECRETS[0]),
                                 ("TechFlow Solutions", "Development Key", SECRETS[3]),
                                 ("CloudBridge Inc", "Gateway Service", SECRETS[4])]:
        line = next(line for line in output.splitlines() if secret in line)
        assert tenant in line and name in line
    assert all(secret in output for secret in SECRETS)


def test_the_command_prints_the_routes_and_a_curl_example() -> None:
    output = _seed()
    assert all(f"/g/{slug}/" in output for slug in
               ("products", "inventory", "analytics", "reports", "services", "webhooks", "demo"))
    assert f"curl -H 'X-API-Key: {SECRETS[0]}' http://localhost:8000/g/demo/items" in output


def test_the_first_run_prints_a_generated_admin_password_that_logs_in() -> None:
    password = _printed_password(_seed())
    assert len(password) >= 16
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_a_rerun_leaves_the_admin_password_alone_and_says_so() -> None:
    password = _printed_password(_seed())
    output = _seed()
    assert "password unchanged" in output
    assert password not in output
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_reset_admin_password_sets_and_prints_a_new_one() -> None:
    old = _printed_password(_seed())
    new = _printed_password(_seed("--reset-admin-password"))
    admin = get_user_model().objects.get(username="admin")
    assert new != old
    assert admin.check_password(new)


def test_admin_password_option_sets_the_given_password() -> None:
    _seed()
    _seed("--admin-password", "correct-horse-battery")
    assert get_user_model().objects.get(username="admin").check_password("correct-horse-battery")
