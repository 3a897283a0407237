"""Mail to one address is limited however many clients ask for it (EMAIL_RATE_PER_ADDRESS,
5/hour), across the flows that send it: signup, a new code, a password reset."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tenants.accounts.throttles import MailedAddressThrottle

pytestmark = pytest.mark.django_db
VICTIM = "victim@example.com"
_addresses = (f"203.0.113.{n}" for n in itertools.count(1))  # a new client address every request


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    cache.clear()  # the counters live in Django's cache, which outlives a test's transaction
    yield
    cache.clear()


def _ask(path: str, email: str = VICTIM) -> Any:
    body = {"email": email}
    if path == "/auth/signup":
        body |= {"password": "correct-horse-battery-9", "tenant_name": f"Tenant {next(_addresses)}"}
    return APIClient().post(path, body, format="json", REMOTE_ADDR=next(_addresses))


def test_an_address_gets_so_many_mails_from_any_mix_of_clients_and_flows() -> None:
    allowed = MailedAddressThrottle().num_requests
    flows = itertools.cycle(["/auth/verify-email/resend", "/auth/password/reset", "/auth/signup"])
    statuses = [_ask(next(flows)).status_code for _ in range(allowed)]
    assert all(status in (201, 202) for status in statuses), statuses

    refused = _ask("/auth/password/reset")
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0
    assert _ask("/auth/verify-email/resend", "someone-else@example.com").status_code == 202


def test_the_address_is_counted_however_it_is_spelt() -> None:
    for _ in range(MailedAddressThrottle().num_requests):
        assert _ask("/auth/verify-email/resend").status_code == 202
    assert _ask("/auth/verify-email/resend", " Victim@EXAMPLE.com ").status_code == 429
