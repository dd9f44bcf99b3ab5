"""The address guard of the page fetch: every address a fetch connects to must be a public one
(no loopback, private, link-local, cloud metadata, shared or reserved address), checked on the
addresses the name resolves to, which are the ones connected to (no second lookup to rebind)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddressError(OSError):
    """The host resolves to no address a preview may be fetched from."""


def public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def literal(host: str) -> Address | None:
    """The address `host` is written as, if it is one (then no resolver is asked)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """The system's resolver, keeping public addresses only (all of them, when `allow_private`
    says so: tests, closed networks)."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        if self.allow_private:
            return found
        kept = [r for r in found if (a := literal(r["host"])) is not None and public(a)]
        if not kept:
            raise BlockedAddressError(f"{host} resolves to no public address")
        return kept

    async def close(self, *_: Any) -> None:
        await self.inner.close()
