"""The client's address: the socket peer, or the rightmost untrusted X-Forwarded-For hop
when (and only when) the peer is one of TRUSTED_PROXIES."""

from __future__ import annotations

import functools
import ipaddress

from gateway.runtime.snapshot import IPNetwork


class ClientIpResolver:
    def __init__(self, trusted_proxies: list[str]) -> None:
        self._trusted: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(c) for c in trusted_proxies)
        self._is_trusted = functools.lru_cache(maxsize=4096)(self._check_trusted)

    def _check_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: bytes | None) -> str | None:
        if peer is None or not self._trusted or forwarded_for is None or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",")]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                # A garbled hop: nothing left of it can be trusted, so stop at the last good one.
                return peer
            if not self._is_trusted(hop):
                return hop
            peer = hop
        return peer
