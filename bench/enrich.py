"""The enrichment benchmark: an enriched page against a plain page of the same feed.

One feed of `--entries` activities (default 25), each naming its own user (`SU:`) and its own
collection entry (`SO:`), each with `--reactions` reactions (likes and comments, one of them by
the reader). Then, `--in-flight` at once for `--seconds` each, in the same run: `GET
feed/user/…/?limit=25` (plain) and `GET enrich/feed/user/…/?limit=25` with own reactions,
counts and the 5 most recent per kind (enriched): reads/s, latency percentiles, and the ratio of
the enriched p50 and p99 to the plain ones (the target: at most 2). A read's latency is the
server's: to the last byte of the answer, whose status is checked but whose JSON is not parsed
(the client's work, ten times more for the enriched page's 110 KB than for the plain page's),
unless `--parse` is given.
One JSON document on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import aiohttp

from .feeds import API, HTTP_TIMEOUT
from .options import add_target_arguments, positive_float, positive_int, require_loopback
from .reads import _closed_loop
from .services import (
    Report,
    Target,
    describe_store,
    headers,
    log,
    open_target,
    report_head,
    run_report,
)

ENRICH = {
    "withOwnReactions": "true",
    "withRecentReactions": "true",
    "recentReactionsLimit": "5",
    "withReactionCounts": "true",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser, "with --start: use this store instead of starting an embedded one")
    load = parser.add_argument_group("load")
    load.add_argument("--entries", type=positive_int, default=25, help="activities of the feed")
    load.add_argument("--reactions", type=positive_int, default=8, help="per activity")
    load.add_argument("--in-flight", type=positive_int, default=10)
    load.add_argument("--seconds", type=positive_float, default=10.0, help="per measurement")
    load.add_argument("--parse", action="store_true", help="time the client's JSON parse too")
    parser.set_defaults(batch_size=500, concurrency=4)  # the server's own fanout defaults


async def _call(
    http: aiohttp.ClientSession, target: Target, method: str, path: str, **kw: Any
) -> Any:
    params = {"api_key": target.api_key, **kw.pop("params", {})}
    async with http.request(
        method, f"{target.url}{API}/{path}", params=params, headers=headers(target),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT), **kw,
    ) as rsp:  # fmt: skip
        body = await rsp.json()
        if rsp.status not in (200, 201):
            raise RuntimeError(f"{method} {path}: HTTP {rsp.status}: {body}")
        return body


async def _read(
    http: aiohttp.ClientSession, target: Target, method: str, path: str, **kw: Any
) -> None:
    """As `_call`, to the answer's last byte, unparsed."""
    params = {"api_key": target.api_key, **kw.pop("params", {})}
    async with http.request(
        method, f"{target.url}{API}/{path}", params=params, headers=headers(target),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT), **kw,
    ) as rsp:  # fmt: skip
        body = await rsp.read()
        if rsp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {rsp.status}: {body[:200]!r}")


async def _fill(
    args: argparse.Namespace, http: aiohttp.ClientSession, target: Target, run: str
) -> str:
    """The feed, its users, entries and reactions; the reader's user id."""
    reader = f"{run}-reader"
    activities = []
    for i in range(args.entries):
        user, entry = f"{run}-u{i}", f"{run}-e{i}"
        await _call(http, target, "POST", "user/", json={"id": user, "data": {"name": user}})
        await _call(http, target, "POST", "collections/things/",
                    json={"id": entry, "data": {"title": f"thing {i}"}})  # fmt: skip
        activities.append({"actor": f"SU:{user}", "verb": "post", "object": f"SO:things:{entry}"})
    added = await _call(http, target, "POST", f"feed/user/{run}/",
                        json={"activities": activities})  # fmt: skip
    for activity in added["activities"]:
        for n in range(args.reactions):
            user = reader if n == 0 else f"{run}-u{n % args.entries}"
            body = {"kind": "like" if n % 2 else "comment", "activity_id": activity["id"],
                    "user_id": user, "data": {"text": "nice"}}  # fmt: skip
            await _call(http, target, "POST", "reaction/", json=body)
    return reader


async def enrich(args: argparse.Namespace) -> Report:
    if not args.start:
        require_loopback(args.url, "--url")
    run = uuid.uuid4().hex[:8]
    report: Report = {**report_head("enrich", run)}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        open_target(args, http, run) as target,
    ):
        await describe_store(report, target)
        log(f"adding {args.entries} activities with {args.reactions} reactions each")
        reader = await _fill(args, http, target, run)
        enriched_params = {**ENRICH, "user_id": reader, "limit": "25"}

        read = _call if args.parse else _read

        async def plain() -> None:
            await read(http, target, "GET", f"feed/user/{run}/", params={"limit": "25"})

        async def enriched() -> None:
            await read(http, target, "GET", f"enrich/feed/user/{run}/", params=enriched_params)

        page = await _call(http, target, "GET", f"enrich/feed/user/{run}/", params=enriched_params)
        first = page["results"][0]
        assert first["actor"]["id"].startswith(run) and "own_reactions" in first
        results: dict[str, Any] = {}
        for name, one in (("plain", plain), ("enriched", enriched)):
            log(f"{name} reads for {args.seconds:g} s")
            results[name] = await _closed_loop(args.in_flight, args.seconds, one)
        a, b = results["plain"]["latency_ms"], results["enriched"]["latency_ms"]
        report["page"] = {"activities": args.entries, "reactions_each": args.reactions,
                          "in_flight": args.in_flight, "enrichment": list(ENRICH),
                          "client_parses_json": args.parse}  # fmt: skip
        report["reads"] = results
        if a.get("p50") and b.get("p50"):
            report["enriched_vs_plain_p50"] = round(b["p50"] / a["p50"], 2)
            report["enriched_vs_plain_p99"] = round(b["p99"] / a["p99"], 2)
    return report


def main(args: argparse.Namespace) -> int:
    return run_report(
        enrich(args), lambda report: any("errors" in r for r in report.get("reads", {}).values())
    )
