"""Reads about a portal account: whether its address is verified, and its tenants."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from tenants.models import EmailVerification, Membership


@dataclass(frozen=True)
class AccountProfile:
    id: int
    email: str
    email_verified: bool
    memberships: list[Membership]


def account_email_verified(*, user: AbstractBaseUser) -> bool:
    # No row: the account was not made by signup (createsuperuser, the admin), so no code was
    # ever asked of it; whoever created it vouched for the address.
    found = list(EmailVerification.objects.filter(user=user).values_list("verified_at", flat=True)[:1])
    return not found or found[0] is not None


def account_memberships(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    return (Membership.objects.filter(user=user).select_related("tenant__plan")
            .order_by("created_at", "pk"))


def account_profile(*, user: AbstractBaseUser) -> AccountProfile:
    return AccountProfile(id=user.pk, email=user.email, email_verified=account_email_verified(user=user),
                          memberships=list(account_memberships(user=user)))
