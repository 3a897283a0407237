"""Sessions under concurrency: a refresh token works once, even sent several times at once, and a
password change ends every session, even one being refreshed at that moment."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

CONCURRENT = 8
ROUNDS = 12


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_refresh_token_sent_concurrently_is_exchanged_exactly_once() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent database connections (PostgreSQL)")
    user = get_user_model().objects.create_user(username="racer@example.com", email="racer@example.com",
                                                password="a long enough password 1")
    refresh = str(RefreshToken.for_user(user))
    start = threading.Barrier(CONCURRENT)
    statuses: list[int] = []

    def exchange() -> None:
        try:
            start.wait()
            statuses.append(APIClient().post("/auth/refresh", {"refresh": refresh}, format="json").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=exchange) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [401] * (CONCURRENT - 1)


def _password(n: int) -> str:
    return f"password number {n} is long"


def _refresh_during_change(session: RefreshToken, n: int) -> tuple[Any, Any]:
    """A refresh of `session` and a change from password n to n + 1, released at one moment."""
    start = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def refresh() -> None:
        try:
            start.wait()
            answers["refresh"] = APIClient().post("/auth/refresh", {"refresh": str(session)}, format="json")
        finally:
            connections.close_all()

    def change() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {session.access_token}")
            start.wait()
            answers["change"] = client.post("/auth/password/change", {
                "old_password": _password(n), "new_password": _password(n + 1)}, format="json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refresh), threading.Thread(target=change)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers["refresh"], answers["change"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_refresh_racing_a_password_change_leaves_no_session_alive() -> None:
    """The change ends every session; a refresh in flight at that moment must not hand out a
    pair that outlives it (its new token was not committed when the sessions were revoked)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent database connections (PostgreSQL)")
    user = get_user_model().objects.create_user(username="changer@example.com", email="changer@example.com",
                                                password=_password(0))
    survivors = []
    for n in range(ROUNDS):
        cache.clear()  # the change shares the login throttle's bucket
        user.refresh_from_db()  # tokens carry a hash of the current password
        refreshed, changed = _refresh_during_change(RefreshToken.for_user(user), n)
        assert changed.status_code == 204, changed.json()
        if refreshed.status_code == 200:
            pair = refreshed.json()
            again = APIClient().post("/auth/refresh", {"refresh": pair["refresh"]}, format="json")
            me = APIClient().get("/auth/me", HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
            survivors += [(n, again.status_code, me.status_code)] if 200 in (again.status_code, me.status_code) else []
    assert survivors == []


@pytest.mark.django_db
def test_a_refresh_token_minted_under_the_old_password_is_refused() -> None:
    """What a login racing a password change would hold: a token made from the account as it
    was read before the change committed, so the change's revoke never saw it."""
    user = get_user_model().objects.create_user(username="late@example.com", email="late@example.com",
                                                password=_password(0))
    read_before_the_change = get_user_model().objects.get(pk=user.pk)
    user.set_password(_password(1))
    user.save()

    late = RefreshToken.for_user(read_before_the_change)
    response = APIClient().post("/auth/refresh", {"refresh": str(late)}, format="json")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    current = APIClient().post("/auth/refresh", {"refresh": str(RefreshToken.for_user(user))}, format="json")
    assert current.status_code == 200
