"""/openapi.json, /docs and /redoc — and a bounded schemathesis run over both APIs:
generated requests (valid and invalid) must never get a 5xx, and no operation that declares
a credential may answer without one."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connections
from django.test import Client
from hypothesis import HealthCheck, settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth

from conftest import ADMIN_API_KEY
from tenants.models import Membership
from tenants.services import api_key_issue
from tenants.tests.factories import TenantFactory

# schemathesis's WSGI transport tries `import flask` on every call; with pytest's import hook
# a failed import searches the whole path each time. A None entry fails it at once.
sys.modules.setdefault("flask", None)  # type: ignore[arg-type]
FUZZED_PATHS = r"^/(admin/api|portal|auth)/"
EXAMPLES_PER_OPERATION = 12


def test_the_schema_documents_both_apis_and_the_proxy(client: Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = set(schema["paths"])
    assert {"/admin/api/tenants", "/admin/api/keys/{id}/rotate", "/admin/api/routes", "/admin/api/policies",
            "/admin/api/plans", "/admin/api/subscriptions", "/admin/api/cache/purge", "/admin/api/abuse/blocked",
            "/admin/api/abuse/unblock/{key_id}", "/admin/api/analytics/summary", "/g/{route}/{path}",
            "/ready"} <= paths
    assert {"/auth/signup", "/auth/login", "/auth/refresh", "/portal/tenant", "/portal/keys",
            "/portal/usage"} <= paths
    schemes = schema["components"]["securitySchemes"]
    assert schemes["adminKey"] == {"type": "apiKey", "in": "header", "name": "X-Admin-Key"}
    assert schemes["apiKey"]["name"] == "X-API-Key" and schemes["jwtAuth"]["scheme"] == "bearer"
    assert "key_hash" not in response.content.decode()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_their_scripts_from_our_static_files(client: Client, page: str) -> None:
    html = client.get(page).content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/static/") for source in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert b"".join(asset.streaming_content) if asset.streaming else asset.content


@pytest.fixture
def wsgi_keeps_the_test_connection() -> Any:
    """The real WSGI handler closes the database connection after each request; inside the
    test's transaction that would end it. Django's own test client unhooks the same signal."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def credentials(settings: Any, wsgi_keeps_the_test_connection: None) -> dict[str, dict[str, str]]:
    """An admin key, and an owner's access token on a tenant with a key, for the fuzzer to use."""
    settings.ADMIN_API_KEYS = [ADMIN_API_KEY]
    cache.clear()  # the login throttles
    tenant = TenantFactory(plan_slug="pro")
    api_key_issue(tenant=tenant, name="fuzzed")
    user = get_user_model().objects.create_user(username="owner@example.com", email="owner@example.com",
                                                password="a-long-pass-phrase-1")
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    token = str(RefreshToken.for_user(user).access_token)
    return {"admin": {"X-Admin-Key": ADMIN_API_KEY}, "portal": {"Authorization": f"Bearer {token}"}}


def _headers_for(path: str, credentials: dict[str, dict[str, str]]) -> dict[str, str]:
    if path.startswith("/admin/api/"):
        return credentials["admin"]
    if path.startswith("/portal/") or path in {"/auth/me", "/auth/logout", "/auth/password/change"}:
        return credentials["portal"]
    return {}


# Loaded at collection (schemathesis's lazy fixture loader does not run on pytest 9); the
# schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/openapi.json", get_wsgi_application()).include(path_regex=FUZZED_PATHS)
# That request ran before pytest-django switched to the test database: drop what it opened
# (with psycopg's pool, connections to the configured database would outlive the switch).
for _connection in connections.all():
    _connection.close()
    if hasattr(_connection, "close_pool"):
        _connection.close_pool()


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_or_skips_auth(case: Any, credentials: Any) -> None:
    case.call_and_validate(headers=_headers_for(case.path, credentials), checks=[not_a_server_error, ignored_auth])
