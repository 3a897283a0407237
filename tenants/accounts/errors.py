"""The account endpoints' own errors. They subclass APIException directly: heliox_site's
handler turns AuthenticationFailed and PermissionDenied into its generic `unauthorized` and
`forbidden`, and these must keep their codes (`invalid_credentials`, `email_not_verified`)."""

from __future__ import annotations

from rest_framework import exceptions, status

# What JWTAuthentication answers in WWW-Authenticate; a 401 must carry a challenge (RFC 9110 §15.5.2).
JWT_CHALLENGE = 'Bearer realm="api"'


class InvalidCredentials(exceptions.APIException):
    """A wrong password and an unknown address are the same error, word for word."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_credentials"
    default_detail = "The e-mail address or the password is wrong."
    auth_header = JWT_CHALLENGE


class EmailNotVerified(exceptions.APIException):
    """Raised only once the password was right, so it tells nothing to someone guessing."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "email_not_verified"
    default_detail = "Verify your e-mail address first: enter the code we sent to it."
