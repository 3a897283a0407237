"""The account e-mails. Services schedule them with `transaction.on_commit`, so a rolled-back
signup never mails a code for an account that does not exist."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

SUBJECTS = {
    "verification_code": "Your Heliox verification code",
    "signup_attempt": "Someone tried to sign up to Heliox with your address",
    "password_reset": "Reset your Heliox password",
}


def _send(template: str, *, to: str, **context: object) -> None:
    body = render_to_string(f"accounts/email/{template}.txt", context)
    # from_email=None is DEFAULT_FROM_EMAIL.
    send_mail(SUBJECTS[template], body, None, [to])


def send_verification_code(*, to: str, code: str) -> None:
    _send("verification_code", to=to, code=code, minutes=settings.EMAIL_VERIFICATION_SECONDS // 60)


def send_signup_attempt_notice(*, to: str) -> None:
    _send("signup_attempt", to=to)


def send_password_reset(*, to: str, uid: str, token: str) -> None:
    _send("password_reset", to=to, uid=uid, token=token, minutes=settings.PASSWORD_RESET_TIMEOUT // 60)
