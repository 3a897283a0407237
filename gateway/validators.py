"""Field validators shared by models, admin forms and the APIs: one set of rules everywhere."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from gateway.runtime.header_rules import route_may_add

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
KEY_SCOPES = ("proxy:read", "proxy:write", "ai")
# Cloud metadata endpoints that are not link-local (AWS's IPv6 one, Alibaba's).
_METADATA_ADDRESSES = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
_METADATA_HOSTS = {"metadata.google.internal", "metadata"}


def validate_cidr_list(value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError("Enter a list of CIDRs, e.g. [\"10.0.0.0/8\"].")
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ValidationError(f"{item!r} is not a valid IP network (CIDR).") from None


def validate_slug_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and SLUG_RE.match(v) for v in value):
        raise ValidationError("Enter a list of route slugs (lowercase letters, digits, - and _).")


def validate_scopes(value: Any) -> None:
    if not isinstance(value, list) or not all(v in KEY_SCOPES for v in value):
        raise ValidationError(f"Scopes must be a list drawn from {', '.join(KEY_SCOPES)}.")


def validate_methods(value: Any) -> None:
    if not isinstance(value, list) or not value or not all(v in HTTP_METHODS for v in value):
        raise ValidationError(f"Methods must be a non-empty list drawn from {', '.join(HTTP_METHODS)}.")
    if len(set(value)) != len(value):
        raise ValidationError("Methods must not repeat.")


def validate_status_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, int) and 200 <= v <= 599 for v in value):
        raise ValidationError("Enter a list of HTTP status codes between 200 and 599.")
    if any(v == 206 or v == 429 or v >= 500 for v in value):
        raise ValidationError("206, 429 and 5xx responses are never cacheable.")


def validate_header_names(value: Any) -> None:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9-]{1,64}", v) for v in value
    ):
        raise ValidationError("Enter a list of header names.")


def validate_header_map(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Enter an object of header name → value.")
    validate_header_names(list(value))
    reserved = sorted(name for name in value if not route_may_add(name))
    if reserved:
        raise ValidationError(f"The gateway sets {', '.join(reserved)} itself; a route cannot add "
                              "framing, connection, Host, Date or X-Request-ID headers.")
    if not all(isinstance(v, str) and "\r" not in v and "\n" not in v for v in value.values()):
        raise ValidationError("Header values must be single-line strings.")


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in any spelling a resolver accepts.

    `socket.inet_aton` reads the legacy forms too (2852039166, 0xa9fea9fe, 169.254.43518), and
    an IPv4-mapped IPv6 address is judged by the IPv4 address it carries.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def validate_upstream_url(value: str) -> None:
    """An upstream base URL: http(s), no credentials, no link-local or metadata address.

    Loopback and private networks are allowed (a gateway commonly fronts internal
    services); link-local covers 169.254.169.254 and friends, refused unless
    UPSTREAM_ALLOW_LINK_LOCAL is set.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The upstream URL must start with http:// or https://.")
    if not parts.hostname:
        raise ValidationError("The upstream URL must name a host.")
    if parts.username or parts.password or "@" in parts.netloc:
        raise ValidationError("The upstream URL must not carry credentials.")
    if parts.query or parts.fragment:
        raise ValidationError("The upstream URL must not have a query or fragment.")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError("The upstream URL has an invalid port.") from None
    if settings.UPSTREAM_ALLOW_LINK_LOCAL:
        return
    host = parts.hostname.lower().rstrip(".")
    if host in _METADATA_HOSTS:
        raise ValidationError("The upstream URL points at a cloud metadata service.")
    address = literal_address(host)
    if address is None:
        return
    if address.is_link_local or address in _METADATA_ADDRESSES or address.is_multicast or address.is_unspecified:
        raise ValidationError("The upstream URL points at a link-local, metadata or reserved address.")


def validate_targets(value: Any) -> None:
    """Upstream targets: a non-empty list of {"url": ..., "weight": 1..1000}."""
    if not isinstance(value, list) or not value:
        raise ValidationError("Enter at least one upstream target.")
    for target in value:
        if not isinstance(target, dict) or set(target) - {"url", "weight"} or "url" not in target:
            raise ValidationError('Each target is {"url": "https://…", "weight": 1}.')
        validate_upstream_url(str(target["url"]))
        weight = target.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 1000:
            raise ValidationError("A target's weight is a whole number from 1 to 1000.")
