"""`/auth/`: the portal's accounts. Each view validates the body, calls one service and
serializes what it returns; every error is the Heliox body (heliox_site/api/errors.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from heliox_site.api.viewsets import PORTAL_UNAUTHORIZED_MESSAGE
from tenants.accounts import selectors, services
from tenants.accounts.errors import JWT_CHALLENGE
from tenants.accounts.serializers import (
    AcceptedSerializer,
    AccountErrorSerializer,
    EmailOnlySerializer,
    LoginSerializer,
    LogoutSerializer,
    PasswordChangeSerializer,
    PasswordResetConfirmSerializer,
    ProfileSerializer,
    SignupResultSerializer,
    SignupSerializer,
    TokenPairSerializer,
    TokenRotationSerializer,
    VerifyEmailResultSerializer,
    VerifyEmailSerializer,
)
from tenants.accounts.throttles import (
    EmailIpThrottle,
    LoginAccountThrottle,
    LoginIpThrottle,
    MailedAddressThrottle,
    PasswordChangeAccountThrottle,
    ResetAddressThrottle,
    SignupIpThrottle,
)

TAGS = ["auth"]
CODE_INVALID = "This code is wrong or has expired; ask for a new one."
RESET_SENT = "If an account uses this address, a password reset token is on its way to it."
CODE_SENT = "If this address has an account waiting for verification, a new code is on its way to it."


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(AccountErrorSerializer, description=description)


INVALID = _error("validation_error (with `fields`), or bad_request for a body that is not JSON.")
THROTTLED = _error("rate_limited, with Retry-After.")
UNAUTHORIZED = _error("unauthorized: no valid access token.")


def _validated(serializer_class: type[Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PublicAccountView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def check_throttles(self, request: Request) -> None:
        # DRF asks every throttle, and each one that allows records a hit: a request the
        # client's own limit refused would still spend the address's budget, so a client over
        # its limit could go on using up someone else's. Stop at the first refusal instead.
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())

    def get_authenticate_header(self, request: Request) -> str:
        # Without an authenticator DRF would turn a 401 (a bad refresh token) into a 403.
        return JWT_CHALLENGE


class SignedInAccountView(APIView):
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]
    unauthorized_message = PORTAL_UNAUTHORIZED_MESSAGE


class SignupView(PublicAccountView):
    throttle_classes = [SignupIpThrottle, MailedAddressThrottle]

    @extend_schema(tags=TAGS, request=SignupSerializer, responses={
        201: SignupResultSerializer, 400: INVALID, 429: THROTTLED})
    def post(self, request: Request) -> Response:
        """Creates an owner account and its tenant, and mails a verification code. An address that
        already has an account gets the same 201 (its owner is mailed a notice instead), so the
        answer never tells whether an address is registered; the ids are null until verification."""
        data = _validated(SignupSerializer, request)
        receipt = services.account_signup(email=data["email"], password=data["password"],
                                          tenant_name=data["tenant_name"])
        return Response(SignupResultSerializer(receipt).data, status=status.HTTP_201_CREATED)


class VerifyEmailView(PublicAccountView):
    throttle_classes = [EmailIpThrottle]

    @extend_schema(tags=TAGS, request=VerifyEmailSerializer, responses={
        200: VerifyEmailResultSerializer, 400: INVALID, 429: THROTTLED})
    def post(self, request: Request) -> Response:
        """Verifies the address with the mailed code. A code works once, expires, and dies after
        five wrong guesses."""
        data = _validated(VerifyEmailSerializer, request)
        if not services.account_verify_email(email=data["email"], code=data["code"]):
            raise ValidationError({"code": [CODE_INVALID]})
        return Response(VerifyEmailResultSerializer({"verified": True}).data)


class ResendCodeView(PublicAccountView):
    throttle_classes = [EmailIpThrottle, MailedAddressThrottle]

    @extend_schema(tags=TAGS, request=EmailOnlySerializer, responses={
        202: AcceptedSerializer, 400: INVALID, 429: THROTTLED})
    def post(self, request: Request) -> Response:
        """Mails a new code (the old one dies). The same 202 whatever the address."""
        data = _validated(EmailOnlySerializer, request)
        services.account_resend_code(email=data["email"])
        return Response(AcceptedSerializer({"detail": CODE_SENT}).data, status=status.HTTP_202_ACCEPTED)


class LoginView(PublicAccountView):
    throttle_classes = [LoginIpThrottle, LoginAccountThrottle]

    @extend_schema(tags=TAGS, request=LoginSerializer, responses={
        200: TokenPairSerializer, 400: INVALID,
        401: _error("invalid_credentials: the same answer for an unknown address and a wrong password."),
        403: _error("email_not_verified: the password was right but the address is not verified yet."),
        429: THROTTLED})
    def post(self, request: Request) -> Response:
        """An access and a refresh token for a verified account."""
        data = _validated(LoginSerializer, request)
        tokens = services.account_login(email=data["email"], password=data["password"])
        return Response(TokenPairSerializer(tokens).data)


class RefreshView(PublicAccountView):
    unauthorized_message = services.REFRESH_TOKEN_INVALID

    @extend_schema(tags=TAGS, request=TokenRotationSerializer, responses={
        200: TokenPairSerializer, 400: INVALID,
        401: _error("unauthorized: the refresh token is invalid, expired or already used.")})
    def post(self, request: Request) -> Response:
        """A new token pair. The refresh token sent is blacklisted: each one works once."""
        serializer = TokenRotationSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        return Response(TokenPairSerializer(serializer.validated_data).data)


class LogoutView(SignedInAccountView):
    @extend_schema(tags=TAGS, request=LogoutSerializer, responses={
        204: OpenApiResponse(description="The refresh token is blacklisted."), 400: INVALID, 401: UNAUTHORIZED})
    def post(self, request: Request) -> Response:
        """Ends the session of this refresh token. The access token works until it expires."""
        data = _validated(LogoutSerializer, request)
        services.session_logout(user=request.user, refresh=data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(SignedInAccountView):
    @extend_schema(tags=TAGS, responses={200: ProfileSerializer, 401: UNAUTHORIZED})
    def get(self, request: Request) -> Response:
        """The signed-in account and the tenants it belongs to."""
        return Response(ProfileSerializer(selectors.account_profile(user=request.user)).data)


class PasswordChangeView(SignedInAccountView):
    throttle_classes = [PasswordChangeAccountThrottle]

    @extend_schema(tags=TAGS, request=PasswordChangeSerializer, responses={
        204: OpenApiResponse(description="Changed. Every refresh token of the account is blacklisted: log in again."),
        400: INVALID, 401: UNAUTHORIZED, 429: THROTTLED})
    def post(self, request: Request) -> Response:
        """Changes the password, given the current one, and ends every session."""
        data = _validated(PasswordChangeSerializer, request)
        services.password_change(user=request.user, old_password=data["old_password"],
                                 new_password=data["new_password"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetView(PublicAccountView):
    throttle_classes = [EmailIpThrottle, ResetAddressThrottle]

    @extend_schema(tags=TAGS, request=EmailOnlySerializer, responses={
        202: AcceptedSerializer, 400: INVALID, 429: THROTTLED})
    def post(self, request: Request) -> Response:
        """Mails a reset token to the address's account. The same 202 whatever the address."""
        data = _validated(EmailOnlySerializer, request)
        services.password_reset_request(email=data["email"])
        return Response(AcceptedSerializer({"detail": RESET_SENT}).data, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicAccountView):
    throttle_classes = [EmailIpThrottle]

    @extend_schema(tags=TAGS, request=PasswordResetConfirmSerializer, responses={
        204: OpenApiResponse(description="The password is set; every session of the account is ended."),
        400: INVALID, 429: THROTTLED})
    def post(self, request: Request) -> Response:
        """Sets a new password with the mailed uid and token, which then stop working."""
        data = _validated(PasswordResetConfirmSerializer, request)
        services.password_reset_confirm(uid=data["uid"], token=data["token"], new_password=data["new_password"])
        return Response(status=status.HTTP_204_NO_CONTENT)
