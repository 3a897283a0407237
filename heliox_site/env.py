"""Typed readers for environment settings that fail loudly, naming the variable.

django-environ parses URLs well but reads `DEBUG=ture` as False without a word; these
helpers refuse anything they do not understand, so a typo stops start-up instead of
silently changing behaviour.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _fail(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}")


def envstr(name: str, default: str) -> str:
    return _raw(name) or default


def envbool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _fail(name, value, "one of true/false/1/0/yes/no/on/off")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _fail(name, value, "an integer") from None
    if minimum is not None and number < minimum:
        raise _fail(name, value, f"an integer >= {minimum}")
    return number


def envfloat(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, value, "a number") from None
    if minimum is not None and number < minimum:
        raise _fail(name, value, f"a number >= {minimum}")
    return number


def envchoice(name: str, default: str, choices: Sequence[str]) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value not in choices:
        raise _fail(name, value, "one of " + ", ".join(choices))
    return value


def envlist(name: str, default: Sequence[str] = ()) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def envcidrs(name: str, default: Sequence[str] = ()) -> list[str]:
    """A comma-separated list of CIDRs, normalised (`10.0.0.1/8` is refused, not guessed at)."""
    cidrs = []
    for item in envlist(name, default):
        try:
            cidrs.append(str(ipaddress.ip_network(item, strict=True)))
        except ValueError:
            raise _fail(name, item, "a comma-separated list of CIDRs such as 10.0.0.0/8") from None
    return cidrs


def envurl(name: str, default: str, schemes: Sequence[str]) -> str:
    value = _raw(name)
    if value is None:
        return default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise _fail(name, value, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    return value
