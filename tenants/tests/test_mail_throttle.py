"""Mail to one address is limited however many clients ask for it (EMAIL_RATE_PER_ADDRESS,
5/hour): one budget for verification mail (signup, a new code), another for password resets,
and a request refused by the client's own limit spends neither."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from rest_framework.test import APIClient

from tenants.accounts.throttles import EmailIpThrottle, MailedAddressThrottle, ResetAddressThrottle

pytestmark = pytest.mark.django_db
VICTIM = "victim@example.com"
_addresses = (f"203.0.113.{n}" for n in itertools.count(1))  # a new client address every request


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    cache.clear()  # the counters live in Django's cache, which outlives a test's transaction
    yield
    cache.clear()


@pytest.fixture
def ask(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    """Posts one flow's body for an address; the mail is sent on commit, which the test's own
    transaction never reaches, so the callbacks are run here."""

    def post(path: str, email: str = VICTIM, client_address: str | None = None) -> Any:
        body = {"email": email}
        if path == "/auth/signup":
            body |= {"password": "correct-horse-battery-9", "tenant_name": f"Tenant {next(_addresses)}"}
        with django_capture_on_commit_callbacks(execute=True):
            return APIClient().post(path, body, format="json", REMOTE_ADDR=client_address or next(_addresses))

    return post


def _mails_to(address: str) -> int:
    return sum(address in message.to for message in mail.outbox)


def test_an_address_gets_so_many_verification_mails_from_any_mix_of_clients(ask: Callable[..., Any]) -> None:
    allowed = MailedAddressThrottle().num_requests
    flows = itertools.cycle(["/auth/signup", "/auth/verify-email/resend"])
    statuses = [ask(next(flows)).status_code for _ in range(allowed)]
    assert all(status in (201, 202) for status in statuses), statuses
    assert _mails_to(VICTIM) == allowed  # a code, notices of the repeated signups, new codes

    refused = ask("/auth/verify-email/resend")
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0
    assert _mails_to(VICTIM) == allowed

    assert ask("/auth/verify-email/resend", "someone-else@example.com").status_code == 202


def test_flooding_verification_mail_does_not_stop_a_password_reset(ask: Callable[..., Any]) -> None:
    assert ask("/auth/signup").status_code == 201
    for _ in range(MailedAddressThrottle().num_requests):
        ask("/auth/verify-email/resend")
    assert ask("/auth/verify-email/resend").status_code == 429

    before = _mails_to(VICTIM)
    assert ask("/auth/password/reset").status_code == 202
    assert _mails_to(VICTIM) == before + 1


def test_password_resets_have_their_own_budget(ask: Callable[..., Any]) -> None:
    assert ask("/auth/signup").status_code == 201
    for _ in range(ResetAddressThrottle().num_requests):
        assert ask("/auth/password/reset").status_code == 202
    assert ask("/auth/password/reset").status_code == 429
    assert ask("/auth/verify-email/resend").status_code == 202


def test_a_client_over_its_own_limit_does_not_spend_the_address_budget(ask: Callable[..., Any]) -> None:
    flooder = "198.51.100.7"
    for n in range(EmailIpThrottle().num_requests):
        assert ask("/auth/password/reset", f"other-{n}@example.com", flooder).status_code == 202
    for _ in range(ResetAddressThrottle().num_requests + 3):
        assert ask("/auth/password/reset", VICTIM, flooder).status_code == 429

    assert ask("/auth/password/reset").status_code == 202  # the owner, from another address


def test_the_address_is_counted_however_it_is_spelt(ask: Callable[..., Any]) -> None:
    for _ in range(MailedAddressThrottle().num_requests):
        assert ask("/auth/verify-email/resend").status_code == 202
    assert ask("/auth/verify-email/resend", " Victim@EXAMPLE.com ").status_code == 429
