"""RFC 9111 decisions for a shared cache: what may be stored, for how long, what a request
allows us to serve. Pure functions over parsed headers; no I/O."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from gateway.runtime.snapshot import CachePolicyConfig

NEVER_CACHEABLE = frozenset({206, 429})
MAX_VARY_HEADERS = 16


def parse_cache_control(values: list[bytes]) -> dict[str, str | None]:
    """Directives, lower-cased; a malformed member is skipped, never fatal (§5.2)."""
    directives: dict[str, str | None] = {}
    for value in values:
        for member in value.decode("latin-1").split(","):
            member = member.strip()
            if not member:
                continue
            name, _, argument = member.partition("=")
            name = name.strip().lower()
            if not name or not name.replace("-", "").isalnum():
                continue
            directives.setdefault(name, argument.strip().strip('"') if argument else None)
    return directives


def seconds(directives: dict[str, str | None], name: str) -> int | None:
    """A delta-seconds argument (§1.2.2); garbage reads as absent."""
    value = directives.get(name)
    if value is None or not value.isdigit():
        return None
    return min(int(value), 2**31)


@dataclass(frozen=True, slots=True)
class RequestDirectives:
    no_store: bool
    must_revalidate: bool  # no-cache or max-age=0: do not answer from cache unvalidated


def request_directives(cache_control: list[bytes], pragma: bytes | None) -> RequestDirectives:
    directives = parse_cache_control(cache_control)
    no_cache = "no-cache" in directives or (not cache_control and pragma is not None and b"no-cache" in pragma)
    return RequestDirectives(no_store="no-store" in directives,
                             must_revalidate=no_cache or seconds(directives, "max-age") == 0)


@dataclass(frozen=True, slots=True)
class Freshness:
    ttl: int  # seconds fresh from storage
    stale_while_revalidate: int
    stale_if_error: int
    initial_age: int  # the upstream's Age at storage time


def vary_names(values: list[bytes]) -> tuple[str, ...] | None:
    """The upstream's Vary field names; None for `Vary: *` or an unreasonably long list."""
    names: list[str] = []
    for value in values:
        for name in value.decode("latin-1").split(","):
            name = name.strip().lower()
            if name == "*":
                return None
            if name and name not in names:
                names.append(name)
    return tuple(names) if len(names) <= MAX_VARY_HEADERS else None


def storable(status: int, policy: CachePolicyConfig, response_cc: dict[str, str | None], has_set_cookie: bool,
             vary: tuple[str, ...] | None, request_has_authorization: bool) -> bool:
    """§3: may a shared cache store this response to a GET? (A 404 is also storable for
    the policy's negative cache, whatever its status list says.)"""
    negative = status == 404 and policy.negative_cache_404
    if status in NEVER_CACHEABLE or status >= 500 or (status not in policy.cacheable_statuses and not negative):
        return False
    if "no-store" in response_cc or "private" in response_cc or has_set_cookie or vary is None:
        return False
    if "no-cache" in response_cc:  # storable, but every use must revalidate: not worth it here
        return False
    # §3.5: a request with credentials is stored only when the response says it may be.
    return not request_has_authorization or "public" in response_cc or "s-maxage" in response_cc


def freshness(policy: CachePolicyConfig, response_cc: dict[str, str | None], expires: bytes | None,
              date: bytes | None, age: bytes | None, now: float) -> Freshness:
    """The policy's TTL, or (respect_upstream) s-maxage > max-age > Expires - Date (§4.2.1)."""
    ttl = policy.ttl_seconds
    swr, sie = policy.stale_while_revalidate_seconds, policy.stale_if_error_seconds
    if policy.respect_upstream:
        upstream_ttl = seconds(response_cc, "s-maxage")
        if upstream_ttl is None:
            upstream_ttl = seconds(response_cc, "max-age")
        if upstream_ttl is None and expires is not None:
            upstream_ttl = _expires_ttl(expires, date, now)
        if upstream_ttl is not None:
            ttl = upstream_ttl
        swr = seconds(response_cc, "stale-while-revalidate") if "stale-while-revalidate" in response_cc else swr
        sie = seconds(response_cc, "stale-if-error") if "stale-if-error" in response_cc else sie
        if "must-revalidate" in response_cc or "proxy-revalidate" in response_cc:
            swr = sie = 0  # §5.2.2.2: never serve it stale
    initial_age = int(age) if age is not None and age.isdigit() else 0
    return Freshness(max(0, ttl - initial_age), swr or 0, sie or 0, initial_age)


def _expires_ttl(expires: bytes, date: bytes | None, now: float) -> int:
    try:
        expires_at = email.utils.parsedate_to_datetime(expires.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError):
        return 0  # §5.3: an invalid Expires means "already expired"
    reference = now
    if date is not None:
        try:
            reference = email.utils.parsedate_to_datetime(date.decode("latin-1")).timestamp()
        except (TypeError, ValueError, IndexError):
            pass
    return max(0, int(expires_at - reference))
