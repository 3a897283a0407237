"""What a caller of the admin API sees when the credential or the body is wrong: the Heliox
error body, the right status, never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from conftest import ADMIN_API_KEY
from tenants.models import Membership, Tenant
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
ADMIN_RESOURCES = ("tenants", "keys", "routes", "policies", "plans", "subscriptions", "abuse/blocked",
                   "analytics/summary")


def _without_request_id(response: object) -> dict:
    body = dict(response.json())  # type: ignore[attr-defined]
    assert body.pop("request_id")
    return body


@pytest.mark.parametrize("resource", ADMIN_RESOURCES)
def test_a_missing_and_a_wrong_admin_key_get_the_same_401(admin_api: APIClient, resource: str) -> None:
    missing = APIClient().get(f"/admin/api/{resource}")
    wrong = APIClient().get(f"/admin/api/{resource}", HTTP_X_ADMIN_KEY=ADMIN_API_KEY[:-1] + "x")
    assert missing.status_code == wrong.status_code == 401
    assert _without_request_id(missing) == _without_request_id(wrong) == {
        "error": "unauthorized", "message": "A valid X-Admin-Key header or a staff session is required."}
    assert missing["WWW-Authenticate"] == "X-Admin-Key"
    assert admin_api.get(f"/admin/api/{resource}").status_code == 200


def test_every_configured_admin_key_works(admin_api: APIClient) -> None:
    assert APIClient().get("/admin/api/plans", HTTP_X_ADMIN_KEY="an-older-admin-key-000").status_code == 200


def test_a_portal_token_does_not_open_the_admin_api(admin_api: APIClient) -> None:
    user = get_user_model().objects.create_user(username="owner@example.com", password="pw-0123456789")
    Membership.objects.create(user=user, tenant=TenantFactory(), role=Membership.Role.OWNER)
    token = RefreshToken.for_user(user).access_token
    response = APIClient().get("/admin/api/tenants", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_a_session_without_staff_is_forbidden() -> None:
    user = get_user_model().objects.create_user(username="customer", password="pw-0123456789")
    client = APIClient()
    client.force_login(user)
    response = client.get("/admin/api/tenants")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_malformed_json_is_a_400(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/tenants", '{"name": "Broken"', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request" and not Tenant.objects.filter(name="Broken").exists()


@pytest.mark.parametrize("raw", ['{"name": NaN}', "[" * 100_000 + "]" * 100_000, '"just a string"', "[]"])
def test_json_that_is_not_an_object_of_fields_is_a_400(admin_api: APIClient, raw: str) -> None:
    response = admin_api.post("/admin/api/tenants", raw, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] in {"bad_request", "validation_error"}


def test_wrong_types_are_field_errors(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    response = admin_api.post("/admin/api/keys", {"tenant_id": "one", "name": ["x"], "quota_daily": -5,
                                                  "rate_limit_rps": "fast", "scopes": "read"}, format="json")
    assert response.status_code == 400
    assert {"tenant_id", "name", "quota_daily", "rate_limit_rps"} <= set(response.json()["fields"])
    assert not tenant.api_keys.exists()


def test_a_huge_body_is_a_413(admin_api: APIClient, settings: object) -> None:
    settings.API_MAX_BODY_BYTES = 4096  # type: ignore[attr-defined]
    response = admin_api.post("/admin/api/tenants", {"name": "Big", "description": "x" * 10_000}, format="json")
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert not Tenant.objects.filter(name="Big").exists()


def test_a_body_that_is_not_json_is_a_415(admin_api: APIClient) -> None:
    response = admin_api.post("/admin/api/tenants", "name=Form", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.json()["error"] == "unsupported_media_type"


def test_put_is_not_offered(admin_api: APIClient) -> None:
    tenant = TenantFactory()
    response = admin_api.put(f"/admin/api/tenants/{tenant.pk}", {"name": "Replaced"}, format="json")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("query", [{"page": 0}, {"page_size": "many"}, {"ordering": "key_hash"}, {"page": 999}])
def test_bad_list_parameters_never_500(admin_api: APIClient, query: dict) -> None:
    TenantFactory()
    response = admin_api.get("/admin/api/keys", query)
    assert response.status_code in {200, 400, 404}
    if response.status_code == 200:
        assert "key_hash" not in response.content.decode()
