"""Behind a balancer: which forwarding headers to believe, and who the client then is.

A balancer in front of clawrap connects from its own address and says who its
client was in ``X-Forwarded-For`` / ``X-Forwarded-Host`` (or RFC 7239's
``Forwarded``). Anyone can send those headers, so they are believed only from a
peer in ``CLAWRAP_TRUSTED_PROXIES`` (addresses or networks); from anyone else
they are ignored and the connection's own address and ``Host`` stand.

From a trusted peer the address chain is read right to left (each proxy appends
the address it was connected from): the first address that is not itself a
trusted proxy is the client. An entry that is not an address (``unknown``, an
obfuscated ``_name``, garbage) ends the walk: the client is then the last trusted
hop, which is the most that can be vouched for. ``Forwarded`` wins over the
``X-Forwarded-*`` pair when both are present. The forwarded host replaces
``Host`` for the Host check (DNS rebinding) and the same-origin test; one that is
not a host name goes through that check like any bad ``Host`` and is refused.

A trusted proxy must therefore write these headers itself: append the address
it was connected from to ``X-Forwarded-For``, and set (not pass on) the host
header it uses; a client's own ``Forwarded`` passed through would be believed.

The resolved client address goes into the request log line (``client=``); key
limits count per key, wherever the key comes from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from clawrap.http._asgi import Request

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Headers longer than this are not parsed (they are still bounded by the header size limit).
MAX_CHAIN_CHARS = 4096


def parse_address(text: str) -> Address | None:
    """An IP address from a forwarding header's entry, or None.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]``, ``[::1]:5678``, ``::1`` and
    quoted forms (``"[::1]:80"``, as ``Forwarded`` writes them)."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_pairs(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: one dict of lowercase parameters per hop, in order."""
    hops: list[dict[str, str]] = []
    for element in value.split(","):
        params: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, raw = pair.partition("=")
            if sep:
                params[name.strip().lower()] = raw.strip().strip('"')
        hops.append(params)
    return hops


class TrustedProxies:
    """The networks whose forwarding headers are believed (``CLAWRAP_TRUSTED_PROXIES``)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry.strip(), strict=False) for entry in entries
        )

    def trusts(self, address: Address | None) -> bool:
        if address is None:
            return False
        return any(address in network for network in self.networks)

    def client_and_host(
        self, peer: Address | None, headers: Mapping[str, str]
    ) -> tuple[Address | None, str | None]:
        """The client's address and the Host it asked for, as far as they can be believed."""
        host = headers.get("host")
        if not self.networks or not self.trusts(peer):
            return peer, host
        forwarded = headers.get("forwarded")
        if forwarded is not None and len(forwarded) <= MAX_CHAIN_CHARS:
            hops = _forwarded_pairs(forwarded)
            chain: Sequence[str] = [hop.get("for", "") for hop in hops]
            hosts = [hop["host"] for hop in hops if "host" in hop]
        else:
            chain = headers.get("x-forwarded-for", "").split(",")
            hosts = headers.get("x-forwarded-host", "").split(",")
            if len(headers.get("x-forwarded-for", "")) > MAX_CHAIN_CHARS:
                chain = []
        client = self._walk(peer, chain)
        # The last host entry is the one the nearest (trusted) proxy wrote.
        given = [h.strip() for h in hosts if h.strip()]
        return client, given[-1] if given else host

    def _walk(self, peer: Address | None, chain: Sequence[str]) -> Address | None:
        client = peer
        for entry in reversed([e for e in chain if e.strip()]):
            address = parse_address(entry)
            if address is None:
                return client
            client = address
            if not self.trusts(address):
                return address
        return client

    def apply(self, request: Request, scope: Mapping[str, Any]) -> Request:
        """``request`` with its client address and ``Host`` as the proxies tell them."""
        raw = scope.get("client")
        peer = parse_address(str(raw[0])) if raw else None
        client, host = self.client_and_host(peer, request.headers)
        headers = dict(request.headers)
        if host is not None:
            headers["host"] = host
        return replace(request, headers=headers, client=None if client is None else str(client))


__all__ = ["MAX_CHAIN_CHARS", "TrustedProxies", "parse_address"]
