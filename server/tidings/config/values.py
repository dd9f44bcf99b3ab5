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


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The seed nodes of a `redis+cluster://[user:password@]host1:port1,host2:port2` URL (or
    `rediss+cluster://`); ValueError when it names none, a node without its port, or a
    database (a Redis Cluster has only database 0)."""
    parts = urlsplit(url)
    nodes = []
    for host_port in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a cluster node must be host:port, not {host_port!r}")
        nodes.append((host.strip("[]"), int(port)))
    if parts.path.strip("/") not in ("", "0") or parts.query:
        raise ValueError("a Redis Cluster URL names its nodes only (no database, no options)")
    return nodes


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
