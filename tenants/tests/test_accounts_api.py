"""`/auth/`: signup and verification, login and tokens, passwords, as a portal user sees them."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from heliox_site.api.viewsets import PORTAL_UNAUTHORIZED_MESSAGE
from tenants.accounts.services import VERIFICATION_MAX_ATTEMPTS
from tenants.accounts.throttles import LoginAccountThrottle, LoginIpThrottle
from tenants.models import EmailVerification, Membership, Tenant
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "correct-horse-battery-9"
NEW_PASSWORD = "another-staple-cloud-7"
EMAIL = "owner@example.com"


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    # The throttle counters live in Django's cache, which outlives a test's transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client(django_capture_on_commit_callbacks: Callable[..., Any]) -> APIClient:
    """A client whose every request commits: the test's transaction never does, and the
    e-mails are sent from `transaction.on_commit`."""

    class CommittingClient(APIClient):
        def generic(self, *args: Any, **kwargs: Any) -> Any:
            with django_capture_on_commit_callbacks(execute=True):
                return super().generic(*args, **kwargs)

    return CommittingClient()


def signup(client: APIClient, email: str = EMAIL, tenant_name: str = "Acme", password: str = PASSWORD) -> Any:
    return client.post("/auth/signup", {"email": email, "password": password, "tenant_name": tenant_name},
                       format="json")


def code_from(message: mail.EmailMessage) -> str:
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def verify(client: APIClient, code: str, email: str = EMAIL) -> Any:
    return client.post("/auth/verify-email", {"email": email, "code": code}, format="json")


def login(client: APIClient, email: str = EMAIL, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/auth/login", {"email": email, "password": password}, format="json", **extra)


def verified_account(client: APIClient, mailoutbox: list[mail.EmailMessage], email: str = EMAIL) -> None:
    assert signup(client, email=email, tenant_name=f"Tenant of {email}").status_code == 201
    assert verify(client, code_from(mailoutbox[-1]), email=email).status_code == 200


def tokens_for(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> dict[str, str]:
    verified_account(client, mailoutbox)
    response = login(client)
    assert response.status_code == 200
    return response.json()


def me(client: APIClient, access: str) -> Any:
    return client.get("/auth/me", HTTP_AUTHORIZATION=f"Bearer {access}")


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "request_id"}


# --- signup -----------------------------------------------------------------------------------

def test_signup_creates_an_owner_and_a_free_tenant_on_trial(client: APIClient) -> None:
    response = signup(client, email="Owner@Example.com")
    assert response.status_code == 201
    assert response.json() == {
        "user": {"id": None, "email": EMAIL},
        "tenant": {"id": None, "name": "Acme", "slug": "acme", "plan": "free"},
        "email_verification_required": True,
    }
    user = User.objects.get(username=EMAIL)
    tenant = Tenant.objects.get(name="Acme")
    assert user.email == EMAIL
    assert tenant.plan.slug == "free"
    assert tenant.subscription.status == "trialing"
    assert tenant.subscription.trial_ends_at > timezone.now()
    assert Membership.objects.get(user=user).tenant == tenant
    assert Membership.objects.get(user=user).role == Membership.Role.OWNER


def test_signup_mails_a_six_digit_code_that_is_stored_only_as_its_hmac(
        client: APIClient, mailoutbox: list[mail.EmailMessage], settings: Any) -> None:
    signup(client)
    assert [message.to for message in mailoutbox] == [[EMAIL]]
    code = code_from(mailoutbox[0])
    verification = EmailVerification.objects.get(user__username=EMAIL)
    assert verification.verified_at is None
    keyed = hmac.new(settings.SECRET_KEY.encode(), f"{verification.user_id}:{code}".encode(), hashlib.sha256)
    assert verification.code_hash == keyed.hexdigest()


def test_signup_with_a_taken_email_answers_like_a_new_one_and_mails_the_owner(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client, tenant_name="Acme")
    fresh = signup(client, email="new@example.com", tenant_name="Beta")
    mailoutbox.clear()

    taken = signup(client, email="OWNER@example.com", tenant_name="Gamma")

    assert taken.status_code == fresh.status_code == 201
    assert taken.json() == {**fresh.json(), "user": {"id": None, "email": EMAIL},
                            "tenant": {"id": None, "name": "Gamma", "slug": "gamma", "plan": "free"}}
    assert [message.to for message in mailoutbox] == [[EMAIL]]
    assert "already has an account" in mailoutbox[0].body
    assert not re.search(r"\b\d{6}\b", mailoutbox[0].body)
    assert not Tenant.objects.filter(name="Gamma").exists()
    assert User.objects.filter(username=EMAIL).count() == 1


def test_signup_with_a_weak_password_is_a_field_error(client: APIClient,
                                                      mailoutbox: list[mail.EmailMessage]) -> None:
    response = signup(client, password="password")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert list(response.json()["fields"]) == ["password"]
    assert not User.objects.exists()
    assert mailoutbox == []


def test_signup_with_a_taken_tenant_name_is_a_field_error(client: APIClient) -> None:
    TenantFactory(name="Acme")
    response = signup(client, tenant_name="Acme")
    assert response.status_code == 400
    assert response.json()["fields"] == {"tenant_name": ["A tenant with this name already exists."]}
    assert not User.objects.filter(username=EMAIL).exists()


def test_signup_with_a_name_whose_slug_is_taken_is_a_field_error(client: APIClient) -> None:
    TenantFactory(name="Acme")
    response = signup(client, tenant_name="ACME!")
    assert response.status_code == 400
    assert response.json()["fields"] == {"tenant_name": ["A tenant with this name already exists."]}


def test_signup_with_a_taken_email_and_a_taken_tenant_name_fails_like_a_new_email(client: APIClient) -> None:
    signup(client, tenant_name="Acme")
    taken = signup(client, tenant_name="Acme")
    fresh = signup(client, email="new@example.com", tenant_name="Acme")
    assert taken.status_code == fresh.status_code == 400
    assert taken.json()["fields"] == fresh.json()["fields"]


def test_signup_without_verification_gives_ids_and_a_usable_account(
        client: APIClient, mailoutbox: list[mail.EmailMessage], settings: Any) -> None:
    settings.SKIP_EMAIL_VERIFICATION = True
    response = signup(client)
    assert response.status_code == 201
    body = response.json()
    assert body["email_verification_required"] is False
    assert body["user"]["id"] == User.objects.get(username=EMAIL).pk
    assert body["tenant"]["id"] == Tenant.objects.get(name="Acme").pk
    assert mailoutbox == []
    assert login(client).status_code == 200


# --- e-mail verification -----------------------------------------------------------------------

def test_the_mailed_code_verifies_the_address(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    response = verify(client, code_from(mailoutbox[0]))
    assert response.status_code == 200
    assert response.json() == {"verified": True}


def test_a_wrong_code_is_a_generic_validation_error(client: APIClient,
                                                    mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    wrong = f"{(int(code_from(mailoutbox[0])) + 1) % 1_000_000:06d}"
    response = verify(client, wrong)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert response.json()["fields"] == {"code": ["This code is wrong or has expired; ask for a new one."]}


def test_a_code_for_an_unknown_address_fails_like_a_wrong_one(client: APIClient,
                                                               mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    wrong = verify(client, "000000" if code_from(mailoutbox[0]) != "000000" else "111111")
    unknown = verify(client, code_from(mailoutbox[0]), email="nobody@example.com")
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.json()["fields"] == wrong.json()["fields"]


def test_an_expired_code_fails(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    EmailVerification.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert verify(client, code_from(mailoutbox[0])).status_code == 400


def test_a_code_works_once(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    code = code_from(mailoutbox[0])
    assert verify(client, code).status_code == 200
    assert verify(client, code).status_code == 400


def test_five_wrong_codes_kill_the_right_one(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    code = code_from(mailoutbox[0])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(VERIFICATION_MAX_ATTEMPTS):
        assert verify(client, wrong).status_code == 400
    assert verify(client, code).status_code == 400


def test_a_resent_code_replaces_the_first(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    first = code_from(mailoutbox[0])
    response = client.post("/auth/verify-email/resend", {"email": EMAIL}, format="json")
    assert response.status_code == 202
    second = code_from(mailoutbox[1])
    if first != second:  # one in a million they coincide
        assert verify(client, first).status_code == 400
    assert verify(client, second).status_code == 200


def test_resend_answers_an_unknown_address_the_same_and_mails_nothing(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    mailoutbox.clear()
    unknown = client.post("/auth/verify-email/resend", {"email": "nobody@example.com"}, format="json")
    known = client.post("/auth/verify-email/resend", {"email": EMAIL}, format="json")
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    assert [message.to for message in mailoutbox] == [[EMAIL]]


# --- login ---------------------------------------------------------------------------------------

def test_login_before_verification_is_forbidden(client: APIClient) -> None:
    signup(client)
    response = login(client)
    assert response.status_code == 403
    assert response.json()["error"] == "email_not_verified"


def test_login_before_verification_with_a_wrong_password_is_just_invalid(client: APIClient) -> None:
    signup(client)
    response = login(client, password="not-the-password")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"


def test_login_after_verification_gives_tokens_that_open_me(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    assert set(tokens) == {"access", "refresh"}
    response = me(client, tokens["access"])
    assert response.status_code == 200
    tenant = Tenant.objects.get()
    assert response.json() == {
        "id": User.objects.get(username=EMAIL).pk, "email": EMAIL, "email_verified": True,
        "tenants": [{"id": tenant.pk, "name": tenant.name, "slug": tenant.slug, "role": "owner", "plan": "free"}],
    }


def test_login_ignores_the_case_of_the_address(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    assert login(client, email="OWNER@Example.COM").status_code == 200


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    wrong_password = login(client, password="not-the-password")
    unknown_email = login(client, email="nobody@example.com")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert without_request_id(wrong_password.json()) == without_request_id(unknown_email.json())
    assert wrong_password.json()["error"] == "invalid_credentials"
    assert wrong_password["WWW-Authenticate"] == unknown_email["WWW-Authenticate"]


def test_repeated_wrong_passwords_are_throttled_with_retry_after(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    allowed = LoginAccountThrottle().num_requests
    statuses = [login(client, password=f"guess-{n}").status_code for n in range(20)]
    assert statuses == [401] * allowed + [429] * (20 - allowed)
    response = login(client)  # even the right password now
    assert response.status_code == 429
    assert without_request_id(response.json()) == {"error": "rate_limited", "message": "Too many requests; slow down.",
                                                   "retry_after": int(response["Retry-After"])}
    assert int(response["Retry-After"]) > 0


def test_the_account_throttle_counts_an_address_from_every_client(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    allowed = LoginAccountThrottle().num_requests
    for n in range(allowed):
        login(client, password="not-the-password", REMOTE_ADDR=f"198.51.100.{n + 1}")
    assert login(client, REMOTE_ADDR="203.0.113.99").status_code == 429


def test_the_ip_throttle_counts_the_forwarded_client_behind_a_trusted_proxy(client: APIClient,
                                                                            settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    allowed = LoginIpThrottle().num_requests
    for n in range(allowed):  # a new address each time: the account throttle stays out of it
        assert login(client, email=f"user{n}@example.com", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 401
    assert login(client, email="last@example.com", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert login(client, email="last@example.com", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 401


def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_ip_throttle(client: APIClient,
                                                                              settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    allowed = LoginIpThrottle().num_requests
    for n in range(allowed):
        login(client, email=f"user{n}@example.com", REMOTE_ADDR="198.51.100.1",
              HTTP_X_FORWARDED_FOR=f"203.0.113.{n + 1}")
    response = login(client, email="last@example.com", REMOTE_ADDR="198.51.100.1",
                     HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


# --- tokens ---------------------------------------------------------------------------------------

def test_refresh_rotates_and_the_old_refresh_token_stops_working(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    rotated = client.post("/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != tokens["refresh"]
    assert me(client, rotated.json()["access"]).status_code == 200

    replayed = client.post("/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert replayed.status_code == 401
    assert replayed.json()["error"] == "unauthorized"
    assert client.post("/auth/refresh", {"refresh": rotated.json()["refresh"]}, format="json").status_code == 200


def test_a_garbled_refresh_token_is_unauthorized(client: APIClient) -> None:
    response = client.post("/auth/refresh", {"refresh": "not.a.token"}, format="json")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message", "request_id"}


def test_logout_blacklists_the_refresh_token(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    response = client.post("/auth/logout", {"refresh": tokens["refresh"]}, format="json",
                           HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert response.status_code == 204
    assert client.post("/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_logout_needs_an_access_token(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    response = client.post("/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 401
    assert response.json()["message"] == PORTAL_UNAUTHORIZED_MESSAGE


def test_logout_refuses_another_accounts_refresh_token(client: APIClient,
                                                       mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    other = User.objects.create_user(username="other@example.com", email="other@example.com", password=PASSWORD)
    response = client.post("/auth/logout", {"refresh": str(RefreshToken.for_user(other))}, format="json",
                           HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["refresh"]


def test_me_without_a_token_is_unauthorized(client: APIClient) -> None:
    response = client.get("/auth/me")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.json()["message"] == PORTAL_UNAUTHORIZED_MESSAGE
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unsigned_alg_none_token_is_rejected(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    payload = jwt.decode(tokens["access"], options={"verify_signature": False})
    forged = jwt.encode(payload, key=None, algorithm="none")
    assert jwt.get_unverified_header(forged)["alg"] == "none"
    assert me(client, forged).status_code == 401


def test_an_expired_access_token_is_rejected(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    token = AccessToken.for_user(User.objects.get(username=EMAIL))
    token.set_exp(lifetime=-dt.timedelta(seconds=1))
    assert me(client, str(token)).status_code == 401


def test_a_refresh_token_is_not_an_access_token(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    assert me(client, tokens["refresh"]).status_code == 401


# --- passwords --------------------------------------------------------------------------------------

def change_password(client: APIClient, access: str, old: str, new: str = NEW_PASSWORD) -> Any:
    return client.post("/auth/password/change", {"old_password": old, "new_password": new}, format="json",
                       HTTP_AUTHORIZATION=f"Bearer {access}")


def test_password_change_needs_the_current_password(client: APIClient,
                                                    mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    response = change_password(client, tokens["access"], old="not-the-password")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["old_password"]
    assert login(client).status_code == 200


def test_password_change_refuses_a_weak_new_password(client: APIClient,
                                                     mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    response = change_password(client, tokens["access"], old=PASSWORD, new="12345678")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["new_password"]


def test_after_a_password_change_only_the_new_password_logs_in(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    assert change_password(client, tokens["access"], old=PASSWORD).status_code == 204
    assert login(client).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_a_password_change_ends_the_existing_sessions(client: APIClient,
                                                      mailoutbox: list[mail.EmailMessage]) -> None:
    tokens = tokens_for(client, mailoutbox)
    change_password(client, tokens["access"], old=PASSWORD)
    assert client.post("/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401
    # The access token too, at once (CHECK_REVOKE_TOKEN), not when its 15 minutes are up.
    assert client.get("/auth/me", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}").status_code == 401


def request_reset(client: APIClient, email: str = EMAIL) -> Any:
    return client.post("/auth/password/reset", {"email": email}, format="json")


def reset_credentials(message: mail.EmailMessage) -> dict[str, str]:
    return {"uid": re.search(r"uid:\s+(\S+)", message.body).group(1),
            "token": re.search(r"token:\s+(\S+)", message.body).group(1)}


def test_a_reset_request_answers_known_and_unknown_addresses_alike(
        client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    mailoutbox.clear()
    known = request_reset(client)
    unknown = request_reset(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [message.to for message in mailoutbox] == [[EMAIL]]


def test_a_reset_token_sets_a_new_password_once(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    request_reset(client)
    credentials = reset_credentials(mailoutbox[-1])

    first = client.post("/auth/password/reset/confirm", {**credentials, "new_password": NEW_PASSWORD},
                        format="json")
    assert first.status_code == 204
    assert login(client, password=NEW_PASSWORD).status_code == 200
    assert login(client).status_code == 401

    again = client.post("/auth/password/reset/confirm", {**credentials, "new_password": "yet-another-pass-5"},
                        format="json")
    assert again.status_code == 400
    assert list(again.json()["fields"]) == ["token"]


def test_a_reset_with_a_forged_token_fails(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    verified_account(client, mailoutbox)
    request_reset(client)
    credentials = {**reset_credentials(mailoutbox[-1]), "token": "abc-0123456789abcdef"}
    response = client.post("/auth/password/reset/confirm", {**credentials, "new_password": NEW_PASSWORD},
                           format="json")
    assert response.status_code == 400
    assert login(client).status_code == 200


def test_a_reset_verifies_an_unverified_address(client: APIClient, mailoutbox: list[mail.EmailMessage]) -> None:
    signup(client)
    request_reset(client)
    credentials = reset_credentials(mailoutbox[-1])
    client.post("/auth/password/reset/confirm", {**credentials, "new_password": NEW_PASSWORD}, format="json")
    assert login(client, password=NEW_PASSWORD).status_code == 200


# --- malformed requests --------------------------------------------------------------------------------

def test_a_body_that_is_not_json_is_a_bad_request(client: APIClient) -> None:
    response = client.post("/auth/login", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_fields_of_the_wrong_type_are_validation_errors(client: APIClient) -> None:
    response = client.post("/auth/signup", {"email": 5, "password": ["x"], "tenant_name": {"a": 1}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert set(response.json()["fields"]) == {"email", "password", "tenant_name"}


def test_a_body_that_is_not_an_object_is_a_validation_error(client: APIClient) -> None:
    response = client.post("/auth/login", ["owner@example.com"], format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
