"""`python -m bench <benchmark> [options]`: run a benchmark, print its JSON on stdout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import cluster, follows, roundtrip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Tidings benchmarks (JSON on stdout)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rt = commands.add_parser(
        "roundtrip",
        help="insert → fanout → feed.update latency per follower count, and the fanout rate "
        "against the store's raw bulk-insert rate",
        description=roundtrip.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    roundtrip.add_arguments(rt)
    rt.set_defaults(run=roundtrip.main)
    cl = commands.add_parser(
        "cluster",
        help="one feed fanned out to 10,000 subscribers spread over the workers of "
        "`serve --workers W`, for W = 1 and 2: insert → delivered latency and deliveries/s",
        description=cluster.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cluster.add_arguments(cl)
    cl.set_defaults(run=cluster.main)
    fo = commands.add_parser(
        "follows",
        help="single REST follows of one feed up to 10,000 followers (rate per 1,000) and "
        "follow_many of 10,000 follows: follows/s",
        description=follows.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    follows.add_arguments(fo)
    fo.set_defaults(run=follows.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
