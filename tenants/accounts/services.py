"""Portal accounts: signup, e-mail verification, login and logout, password change and reset.

Nothing here says whether an address has an account: signup, reset and verification answer
an unknown or taken address the way they answer any other."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser, update_last_login
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.text import slugify
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from tenants.accounts import emails
from tenants.accounts.errors import EmailNotVerified, InvalidCredentials
from tenants.accounts.selectors import account_email_verified
from tenants.models import EmailVerification, Membership, Tenant
from tenants.services import default_plan, tenant_create

User = get_user_model()

VERIFICATION_MAX_ATTEMPTS = 5
VERIFICATION_CODE_DIGITS = 6
TENANT_NAME_TAKEN = "A tenant with this name already exists."
TENANT_NAME_NEEDS_LETTERS = "The name needs at least one letter or digit."
RESET_LINK_INVALID = "This reset token is invalid or has expired."
REFRESH_TOKEN_INVALID = "This refresh token is invalid, expired or already revoked."


@dataclass(frozen=True)
class SignupReceipt:
    """What a signup may tell its caller.

    While verification is required the ids stay None: a taken address must get the answer a
    new one gets, and only a real new account has ids. Everything else echoes the request."""

    email: str
    tenant_name: str
    tenant_slug: str
    plan: str
    email_verification_required: bool
    user_id: int | None = None
    tenant_id: int | None = None


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


def normalise_email(email: str) -> str:
    return email.strip().lower()


# --- signup --------------------------------------------------------------------------------

def account_signup(*, email: str, password: str, tenant_name: str) -> SignupReceipt:
    """An owner account and its tenant (Free plan, on trial), or, for an address that already
    has an account, a notice to that address and the same answer."""
    email = normalise_email(email)
    tenant = Tenant(name=tenant_name, slug=slugify(tenant_name)[:60], plan=default_plan())
    # Checked before the address is looked at, so a taken address fails exactly as a new one would.
    _validate_signup(email=email, password=password, tenant=tenant)
    verification_required = not settings.SKIP_EMAIL_VERIFICATION
    receipt = functools.partial(SignupReceipt, email=email, tenant_name=tenant.name, tenant_slug=tenant.slug,
                                plan=tenant.plan.slug, email_verification_required=verification_required)
    with transaction.atomic():
        user = _user_create(email=email, password=password)
        if user is None:
            make_password(password)  # the new-account path hashes once; so does this one (timing)
            transaction.on_commit(functools.partial(emails.send_signup_attempt_notice, to=email))
            return receipt()
        tenant = _owned_tenant_create(user=user, tenant=tenant)
        code = _verification_issue(user=user, verified=not verification_required)
        if code is not None:
            transaction.on_commit(functools.partial(emails.send_verification_code, to=email, code=code))
    if verification_required:
        return receipt()
    return receipt(user_id=user.pk, tenant_id=tenant.pk)


def _validate_signup(*, email: str, password: str, tenant: Tenant) -> None:
    errors: dict[str, list[str]] = {}
    try:
        validate_password(password, user=User(username=email, email=email))
    except ValidationError as exc:
        errors["password"] = exc.messages
    if name_errors := _tenant_name_errors(tenant):
        errors["tenant_name"] = name_errors
    if errors:
        raise ValidationError(errors)


def _tenant_name_errors(tenant: Tenant) -> list[str]:
    try:
        tenant.full_clean()
    except ValidationError as exc:
        return _as_tenant_name_errors(exc)
    return []


def _as_tenant_name_errors(exc: ValidationError) -> list[str]:
    # The body has one field for both: the slug is derived from the name.
    messages: list[str] = []
    by_field = exc.error_dict if hasattr(exc, "error_dict") else {"name": exc.error_list}
    for field, errors in by_field.items():
        for error in errors:
            if error.code == "unique":
                message = TENANT_NAME_TAKEN
            elif field == "slug":
                message = TENANT_NAME_NEEDS_LETTERS
            else:
                message = " ".join(error.messages)
            if message not in messages:
                messages.append(message)
    return messages


def _user_create(*, email: str, password: str) -> AbstractBaseUser | None:
    """The new user, or None when the address already has an account."""
    if User.objects.filter(Q(username=email) | Q(email__iexact=email)).exists():
        return None
    try:
        with transaction.atomic():  # a savepoint: a concurrent signup for the address loses here
            return User.objects.create_user(username=email, email=email, password=password)
    except IntegrityError:
        return None


def _owned_tenant_create(*, user: AbstractBaseUser, tenant: Tenant) -> Tenant:
    try:
        created = tenant_create(name=tenant.name, slug=tenant.slug, plan=tenant.plan,
                                trial_days=settings.SIGNUP_TRIAL_DAYS)
    except ValidationError as exc:  # taken between the check and now
        raise ValidationError({"tenant_name": _as_tenant_name_errors(exc)}) from exc
    except IntegrityError as exc:
        raise ValidationError({"tenant_name": [TENANT_NAME_TAKEN]}) from exc
    Membership.objects.create(user=user, tenant=created, role=Membership.Role.OWNER)
    return created


# --- e-mail verification -------------------------------------------------------------------

def verification_code_hash(*, user_id: int, code: str) -> str:
    # Keyed, so a copy of the table does not give the codes away to a 10^6 brute force; the
    # user id in the message makes one code hash differently for two accounts.
    message = f"{user_id}:{code}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _verification_issue(*, user: AbstractBaseUser, verified: bool = False) -> str | None:
    """A fresh code for the user (replacing any earlier one), or None when `verified`."""
    now = timezone.now()
    if verified:
        EmailVerification.objects.update_or_create(
            user=user, defaults={"code_hash": "", "expires_at": now, "attempts": 0, "verified_at": now})
        return None
    code = f"{secrets.randbelow(10 ** VERIFICATION_CODE_DIGITS):0{VERIFICATION_CODE_DIGITS}d}"
    EmailVerification.objects.update_or_create(user=user, defaults={
        "code_hash": verification_code_hash(user_id=user.pk, code=code),
        "expires_at": now + dt.timedelta(seconds=settings.EMAIL_VERIFICATION_SECONDS),
        "attempts": 0, "verified_at": None,
    })
    return code


def account_verify_email(*, email: str, code: str) -> bool:
    """True once, for the live code of the address; every wrong guess uses up an attempt."""
    with transaction.atomic():
        # Locked: two guesses at once must both count against the attempts.
        verification = (EmailVerification.objects.select_for_update(of=("self",))
                        .filter(user__username=normalise_email(email)).first())
        if verification is None or not _code_is_live(verification):
            return False
        expected = verification_code_hash(user_id=verification.user_id, code=code)
        if not hmac.compare_digest(verification.code_hash, expected):
            verification.attempts += 1
            verification.save(update_fields=["attempts"])
            return False
        verification.verified_at = timezone.now()
        verification.code_hash = ""  # single use
        verification.save(update_fields=["verified_at", "code_hash"])
    return True


def _code_is_live(verification: EmailVerification) -> bool:
    return (verification.verified_at is None and bool(verification.code_hash)
            and verification.attempts < VERIFICATION_MAX_ATTEMPTS and verification.expires_at > timezone.now())


def account_resend_code(*, email: str) -> None:
    """A new code (and fresh attempts) for an unverified account; nothing for any other address."""
    with transaction.atomic():
        verification = (EmailVerification.objects.select_for_update(of=("self",)).select_related("user")
                        .filter(user__username=normalise_email(email), verified_at__isnull=True).first())
        if verification is None:
            return
        user = verification.user
        code = _verification_issue(user=user)
        transaction.on_commit(functools.partial(emails.send_verification_code, to=user.email, code=code))


# --- login, refresh, logout ------------------------------------------------------------------

def account_login(*, email: str, password: str) -> TokenPair:
    # ModelBackend hashes the password for an unknown username too (Django #20760), so the time
    # taken does not tell whether the address has an account.
    user = authenticate(None, username=normalise_email(email), password=password)
    if user is None:
        raise InvalidCredentials()
    if not account_email_verified(user=user):
        raise EmailNotVerified()
    refresh = RefreshToken.for_user(user)
    if jwt_settings.UPDATE_LAST_LOGIN:
        update_last_login(None, user)
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def sessions_lock(user_id: object) -> AbstractBaseUser | None:
    """Locks the account's row (in the caller's transaction) and returns the account, or None.

    Every change to an account's sessions takes this lock first: a refresh, a logout, a
    password change or reset. So they run one at a time per account: a revoke sees every token
    a refresh made, and none of them deadlocks on simplejwt's tables, whose foreign keys
    PostgreSQL checks at commit (a refresh and a change, each blacklisting the same token,
    did deadlock)."""
    return User.objects.select_for_update().filter(**{jwt_settings.USER_ID_FIELD: user_id}).first()


def session_logout(*, user: AbstractBaseUser, refresh: str) -> None:
    """Blacklists the caller's own refresh token. The access token lives out its lifetime."""
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise ValidationError({"refresh": [REFRESH_TOKEN_INVALID]}) from exc
    user_id = getattr(user, jwt_settings.USER_ID_FIELD)
    if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(user_id):
        raise ValidationError({"refresh": [REFRESH_TOKEN_INVALID]})
    with transaction.atomic():
        sessions_lock(user_id)
        token.blacklist()


def sessions_revoke(*, user: AbstractBaseUser) -> int:
    """Blacklists every live refresh token of the user: each session ends at its next refresh."""
    live = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True)
    created = BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in live],
                                                   ignore_conflicts=True)
    return len(created)


# --- passwords -------------------------------------------------------------------------------

def password_change(*, user: AbstractBaseUser, old_password: str, new_password: str) -> None:
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["The current password is not correct."]})
    _password_set(user=user, password=new_password)


def password_reset_request(*, email: str) -> None:
    """Mails a reset token to the address's account; an unknown address gets nothing, silently."""
    user = User.objects.filter(username=normalise_email(email), is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    transaction.on_commit(functools.partial(emails.send_password_reset, to=user.email or user.get_username(),
                                            uid=uid, token=token))


def password_reset_confirm(*, uid: str, token: str, new_password: str) -> None:
    """Single use by construction: the token hashes the password (and last login) it was made
    for, so setting a new one voids it."""
    user = _user_from_uid(uid)
    if user is None or not default_token_generator.check_token(user, token):
        raise ValidationError({"token": [RESET_LINK_INVALID]})
    with transaction.atomic():
        _password_set(user=user, password=new_password)
        # The token arrived by mail, which proves the address as well as a code would.
        EmailVerification.objects.filter(user=user, verified_at__isnull=True).update(
            verified_at=timezone.now(), code_hash="")


def _user_from_uid(uid: str) -> AbstractBaseUser | None:
    try:
        pk = force_str(urlsafe_base64_decode(uid))
        return User.objects.get(pk=pk, is_active=True)
    except (TypeError, ValueError, OverflowError, ValidationError, User.DoesNotExist):
        return None


def _password_set(*, user: AbstractBaseUser, password: str) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from exc
    with transaction.atomic():
        sessions_lock(user.pk)
        user.set_password(password)
        user.save(update_fields=["password"])
        # Whoever knew the old password may hold a session: end them all.
        sessions_revoke(user=user)
