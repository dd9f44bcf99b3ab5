"""Command-line option types and the option groups the benchmarks share."""

from __future__ import annotations

import argparse
import ipaddress
from urllib.parse import urlsplit

DEV_API_KEY = "tidings-dev-key"
DEV_API_SECRET = "tidings-dev-secret-change-me-please"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
CLIENTS = ("socketio", "raw")
PUSH_THRESHOLD_SHARE = 0.8  # of pull_threshold, as the defaults (8000 of 10000)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be greater than 0")
    return value


def counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text}: comma-separated integers") from exc
    if not values or any(c < 1 for c in values):
        raise argparse.ArgumentTypeError(f"{text}: comma-separated integers, each at least 1")
    return values


def require_loopback(url: str, what: str) -> None:
    hosts = urlsplit(url).netloc.rpartition("@")[2].split(",")
    for host in hosts:
        name = urlsplit(f"//{host}").hostname or ""
        if name.lower() in LOOPBACK_NAMES:
            continue
        try:
            if ipaddress.ip_address(name).is_loopback:
                continue
        except ValueError:
            pass
        raise SystemExit(f"bench: {what} {url!r} is not a loopback address")


def add_target_arguments(parser: argparse.ArgumentParser, mongodb_help: str) -> None:
    """The Tidings a benchmark measures: one it starts (`--start`) or one already running."""
    target = parser.add_argument_group("what to measure")
    target.add_argument(
        "--start",
        action="store_true",
        help="start a store (embedded SecantusDB, or --mongodb-url) and a Tidings server "
        "process with a fresh database, and stop them at the end",
    )
    target.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="a running Tidings (loopback only; ignored with --start)",
    )
    target.add_argument("--api-key", default=DEV_API_KEY)
    target.add_argument("--api-secret", default=DEV_API_SECRET)
    target.add_argument("--mongodb-url", default="", help=mongodb_help)
    target.add_argument(
        "--database", default="tidings", help="Tidings' database (ignored with --start)"
    )


def add_fanout_arguments(group: argparse._ArgumentGroup) -> None:
    """--batch-size, --concurrency and --raw-docs: the fanout settings of a started server and
    the shape of the raw bulk-insert measurement."""
    group.add_argument(
        "--batch-size",
        type=positive_int,
        default=500,
        help="fanout.batch_size of a started server, and the batch of the raw insert",
    )
    group.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        help="fanout.concurrency of a started server, and batches in flight in the raw insert",
    )
    group.add_argument(
        "--raw-docs",
        type=positive_int,
        default=20_000,
        help="documents of the raw bulk-insert measurement (default 20000)",
    )


def push_threshold(pull_threshold: int) -> int:
    """The push_threshold of a started server whose pull_threshold is given: below it, so that a
    feed does not flap between the modes around one count."""
    return int(pull_threshold * PUSH_THRESHOLD_SHARE)


def threshold_env(args: argparse.Namespace) -> dict[str, str]:
    """TIDINGS_FANOUT_PULL_THRESHOLD / _PUSH_THRESHOLD of a started server, when the benchmark
    has a `--pull-threshold` (roundtrip); none otherwise (the server's own)."""
    pull = getattr(args, "pull_threshold", None)
    if pull is None:
        return {}
    return {
        "TIDINGS_FANOUT_PULL_THRESHOLD": str(pull),
        "TIDINGS_FANOUT_PUSH_THRESHOLD": str(push_threshold(pull)),
    }


def add_subscriber_arguments(
    parser: argparse.ArgumentParser,
    *,
    client: str,
    procs: int,
    connect_concurrency: int,
    connect_timeout: float,
    drain_timeout: float,
) -> argparse._ArgumentGroup:
    """The subscriber processes' options, with this benchmark's defaults; the group."""
    group = parser.add_argument_group("subscribers")
    group.add_argument(
        "--client",
        choices=CLIENTS,
        default=client,
        help="socketio: one python-socketio AsyncClient per feed (the real client, heavy); "
        "raw: one bare WebSocket per feed speaking Engine.IO/Socket.IO by hand (cheap: "
        f"thousands per process). Default {client}",
    )
    group.add_argument(
        "--subscriber-procs",
        type=positive_int,
        default=procs,
        help=f"processes the subscriber sockets are spread over (default {procs})",
    )
    group.add_argument(
        "--connect-concurrency",
        type=positive_int,
        default=connect_concurrency,
        help=f"sockets connecting at once, per subscriber process (default {connect_concurrency})",
    )
    group.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=connect_timeout,
        help="seconds for one socket to connect and subscribe",
    )
    group.add_argument(
        "--drain-timeout",
        type=positive_float,
        default=drain_timeout,
        help="seconds to wait for the last deliveries after the last POST answered "
        f"(default {drain_timeout:g})",
    )
    return group
