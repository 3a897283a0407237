"""Request and response bodies of `/auth/`. Requests only check shapes; the rules (password
strength, a taken tenant name, a code's validity) are the services'."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from rest_framework import serializers
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import get_md5_hash_password

from tenants.accounts.services import VERIFICATION_CODE_DIGITS, sessions_lock
from tenants.models import Membership

# Django's username is 150 characters and doubles as the address here.
EMAIL_MAX_LENGTH = 150
# Bounds the work a single request can ask of the password hasher.
PASSWORD_MAX_LENGTH = 1024


def password_field(**kwargs: Any) -> serializers.CharField:
    # Never trimmed: a space is part of a password.
    return serializers.CharField(write_only=True, trim_whitespace=False, max_length=PASSWORD_MAX_LENGTH,
                                 style={"input_type": "password"}, **kwargs)


# --- requests ---------------------------------------------------------------------------------

class SignupSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)
    password = password_field()
    tenant_name = serializers.CharField(max_length=200)


class VerifyEmailSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)
    code = serializers.RegexField(rf"^\d{{{VERIFICATION_CODE_DIGITS}}}$", error_messages={
        "invalid": f"The code is the {VERIFICATION_CODE_DIGITS} digits from the e-mail."})


class EmailOnlySerializer(serializers.Serializer):
    """The body of the resend-code and password-reset requests."""

    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)
    password = password_field()


class TokenRotationSerializer(TokenRefreshSerializer):
    """A refresh token, which this exchange uses up."""

    # simplejwt's rotation and blacklisting (settings.SIMPLE_JWT). A bad, expired or blacklisted
    # token raises TokenError, which the view turns into a 401.

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = RefreshToken(attrs["refresh"])
        with transaction.atomic():
            # simplejwt checks the blacklist, then adds the token to it: the same token sent
            # twice at once passed the check twice. With the account locked first, the second
            # exchange waits for the first to commit and then finds the token blacklisted; a
            # password change waits too, or is waited for, and then revokes what this made.
            user = sessions_lock(refresh.get(jwt_settings.USER_ID_CLAIM))
            if user is None:
                raise TokenError("The token's user no longer exists.")
            # simplejwt checks the password hash a token carries on access tokens only: a
            # refresh token issued under an old password (a login racing a change) stays dead.
            if jwt_settings.CHECK_REVOKE_TOKEN and (
                    refresh.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password)):
                raise TokenError("The token was issued before the password changed.")
            try:
                return super().validate(attrs)
            except ObjectDoesNotExist as exc:
                # simplejwt fetches the token's user with .get(): a deleted account would be a 500.
                raise TokenError("The token's user no longer exists.") from exc


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = password_field()
    new_password = password_field()


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    new_password = password_field()


# --- responses --------------------------------------------------------------------------------

class SignupUserSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="user_id", allow_null=True,
                                  help_text="Null until the address is verified.")
    email = serializers.EmailField()


class SignupTenantSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="tenant_id", allow_null=True,
                                  help_text="Null until the address is verified.")
    name = serializers.CharField(source="tenant_name")
    slug = serializers.SlugField(source="tenant_slug")
    plan = serializers.CharField(help_text="The plan's slug.")


class SignupResultSerializer(serializers.Serializer):
    """The same answer for a new and for an already registered address."""

    user = SignupUserSerializer(source="*")
    tenant = SignupTenantSerializer(source="*")
    email_verification_required = serializers.BooleanField()


class VerifyEmailResultSerializer(serializers.Serializer):
    verified = serializers.BooleanField()


class AcceptedSerializer(serializers.Serializer):
    """The answer to a request that mails the address if it has an account, and says no more."""

    detail = serializers.CharField()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class ProfileTenantSerializer(serializers.Serializer):
    """One membership, seen from its user."""

    id = serializers.IntegerField(source="tenant.id")
    name = serializers.CharField(source="tenant.name")
    slug = serializers.SlugField(source="tenant.slug")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    plan = serializers.CharField(source="tenant.plan.slug", help_text="The plan's slug.")


class ProfileSerializer(serializers.Serializer):
    """The signed-in account."""

    id = serializers.IntegerField()
    email = serializers.EmailField()
    email_verified = serializers.BooleanField()
    tenants = ProfileTenantSerializer(source="memberships", many=True)


class AccountErrorSerializer(serializers.Serializer):
    """The Heliox error body."""

    error = serializers.CharField()
    message = serializers.CharField()
    request_id = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="validation_error only: the messages by field.")
    retry_after = serializers.IntegerField(required=False, help_text="rate_limited only: seconds to wait.")
