"""A refresh token works once, even when it is sent several times at the same moment."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

CONCURRENT = 8


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
