"""`python -m bench <benchmark> [options]`: run a benchmark, print its JSON on stdout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import (
    client,
    cluster,
    enrich,
    firehose,
    follows,
    imports,
    raid,
    reactions,
    reads,
    reconnect,
    roundtrip,
    routing,
    soak,
    writes,
)

BENCHMARKS = {
    "roundtrip": (
        roundtrip,
        "insert → fanout → feed.update latency per follower count, and the fanout rate "
        "against the store's raw bulk-insert rate",
    ),
    "cluster": (
        cluster,
        "one feed fanned out to 10,000 subscribers spread over the workers of "
        "`serve --workers W`, for W = 1 and 2: insert → delivered latency and deliveries/s",
    ),
    "follows": (
        follows,
        "single REST follows of one feed up to 10,000 followers (rate per 1,000) and "
        "follow_many and unfollow_many of 10,000 follows: follows/s",
    ),
    "import": (
        imports,
        "`tidings import` of N activities across M feeds, then their follows (with the "
        "follows' copies): activities/s against pymongo's insert_many of the same documents",
    ),
    "raid": (
        raid,
        "50 raid rooms x 20 members on 2 nodes: publish -> delivered to the room, "
        "join -> seen on the other node, node death -> leaves seen",
    ),
    "client": (
        client,
        "the Python client's recovery after its node is killed and restarted: /readyz -> "
        "every missed activity handed to the app (once, in order; most over REST)",
    ),
    "firehose": (
        firehose,
        "insert → webhook / SQS receipt latency at 1, 100, 1,000 and 10,000 followers against "
        "the socket round trip, and firehose updates/s against the fanout rate",
    ),
    "reads": (
        reads,
        "feed reads/s and p99 at limit 25 and 100 against the raw store's rate for the same "
        "queries, and the round trip of 200 followers with 100 reads/s alongside",
    ),
    "enrich": (
        enrich,
        "an enriched page of 25 (own reactions, counts, the 5 latest per kind, user and "
        "collection references) against a plain page of the same feed: p50/p99 and their ratio",
    ),
    "reactions": (
        reactions,
        "reaction add p50/p99 with and without target feeds (the first, cold adds included), "
        "100 users liking one activity at once: exact counts and adds/s, and a live "
        "reaction event against the feed round trip on 100 sockets",
    ),
    "writes": (
        writes,
        "POST feed/… answer time (p50/p99) at 0, 100 and 1,000 followers, and whether a read "
        "right after the answer sees the activity in a follower feed",
    ),
    "reconnect": (
        reconnect,
        "10,000 sockets of distinct follower feeds of one pull feed: connect+subscribe against "
        "node's socket.io, and all of them reconnecting with `since` after a node restart",
    ),
    "routing": (
        routing,
        "four nodes, rooms spread across them: events decoded per node, CPU and delivery p99 "
        "with events routed to the nodes holding their rooms against every event to every node",
    ),
    "soak": (
        soak,
        "two nodes, 2,000 sockets and a steady mix of adds, reads, follows, reactions, "
        "presence and reconnects for --minutes: each node's RSS, FDs, tasks and loop lag and "
        "the p99s every minute, and whether any of them grew",
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Tidings benchmarks (JSON on stdout)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, summary) in BENCHMARKS.items():
        command = commands.add_parser(
            name,
            help=summary,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
