"""Values that settings hold and the code around them reads: a masked secret, a service URL's
location for log lines, loopback hosts."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class Secret(str):
    """A string that never shows itself in a repr or a log line."""

    def __repr__(self) -> str:
        return "Secret('**********')"


def url_location(url: str) -> str:
    """The host:port of a service URL (a Unix socket's path), for log lines: never its
    credentials, database or options."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "?"
    return parts.netloc.rpartition("@")[2] or "?"


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
