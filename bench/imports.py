"""The import benchmark: `tidings import` of `--activities` activities spread over `--feeds`
user feeds, then of the follows (timeline:i follows user:i and user:i+1, each copying the
target's newest `--copy-limit` activities), against the raw store's bulk insert of the same
documents in the same run: pymongo `insert_many`, in chunks of `--batch`, of the first
`--raw-sample` activity documents and their feed entries, then of as many follow copies (the
entries a follow writes), into scratch collections with the store's own indexes (client.py).

The files are written first (not timed); each import is one `python -m tidings import`
process, timed from its start to its exit (start-up included). Against an embedded store it
starts (or `--mongodb-url`), on a fresh database dropped at the end. One JSON document on
stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from harness.common import ROOT
from harness.server import TIDINGS
from harness.store import embedded_store
from tidings.domain.activities import Limits, parse_activity
from tidings.store.mongo.client import INDEXES
from tidings.store.mongo.owners import activity_doc

from .options import positive_int
from .services import EMBEDDED_CACHE_SIZE, Report, log, mongo_client, report_head, run_report
from .store import store_version

GROUPS = ("user", "timeline")
START = datetime(2024, 1, 1)  # the first activity's time (UTC); one a second after it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--activities", type=positive_int, default=1_000_000)
    parser.add_argument("--feeds", type=positive_int, default=10_000, help="user feeds")
    parser.add_argument("--copy-limit", type=int, default=100, help="of each follow")
    parser.add_argument("--batch", type=positive_int, default=1000, help="lines per chunk")
    parser.add_argument("--raw-sample", type=positive_int, default=200_000,
                        help="activities (and copies) of the raw insert_many")  # fmt: skip
    parser.add_argument("--mongodb-url", default="", help="else an embedded store is started")
    parser.add_argument(
        "--cache-size",
        default=EMBEDDED_CACHE_SIZE,
        help="of the embedded store (default: %(default)s)",
    )


def _activity(n: int, feeds: int) -> tuple[str, dict[str, Any]]:
    feed, when = n % feeds, START + timedelta(seconds=n)
    return f"user:f{feed}", {
        "actor": f"SU:u{feed}", "verb": "post", "object": f"post:{n}",
        "foreign_id": f"post:{n}", "time": when.isoformat(timespec="microseconds"),
    }  # fmt: skip


def _write_files(folder: Path, args: argparse.Namespace) -> tuple[Path, Path, int]:
    activities, follows = folder / "activities.ndjson", folder / "follows.ndjson"
    with activities.open("w") as out:
        for n in range(args.activities):
            feed, body = _activity(n, args.feeds)
            out.write(json.dumps({"type": "activity", "feed": feed, "activity": body}) + "\n")
    count = 0
    with follows.open("w") as out:
        for i in range(args.feeds):
            for target in sorted({i, (i + 1) % args.feeds}):
                follow = {"feed_id": f"timeline:f{i}", "target_id": f"user:f{target}",
                          "activity_copy_limit": args.copy_limit}  # fmt: skip
                out.write(json.dumps({"type": "follow", "follow": follow}) + "\n")
                count += 1
    return activities, follows, count


async def _import(path: Path, url: str, database: str, batch: int) -> dict[str, Any]:
    env = {"TIDINGS_MONGODB_URL": url, "TIDINGS_MONGODB_DATABASE": database}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *TIDINGS, "import", str(path), "--json", "--batch", str(batch), cwd=ROOT,
        env={**_clean_env(), **env}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode not in (0, 1):
        raise RuntimeError(f"tidings import exited {process.returncode}")
    report: dict[str, Any] = json.loads(out)[0]
    return {"seconds": round(seconds, 2), "refused": report["refused"],
            "imported": report["imported"]}  # fmt: skip


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}


async def _raw(db: Any, args: argparse.Namespace) -> dict[str, int]:
    """Per second, pymongo's insert_many of the first `--raw-sample` activity documents with
    their entries, then of as many copies (timeline:i gets the newest `--copy-limit` of
    user:i, as its follow copies them): the documents an import writes, into scratch
    collections with the store's indexes."""
    limits = Limits(GROUPS, 10_000, 100)
    docs, entries = db["raw_activities"], db["raw_entries"]
    await docs.create_indexes(INDEXES["activities"])
    await entries.create_indexes(INDEXES["feed_entries"])
    count = min(args.raw_sample, args.activities)
    newest: dict[int, list[str]] = {}
    seconds = 0.0
    for start in range(0, count, args.batch):
        numbers = range(start, min(start + args.batch, count))
        parsed = [(feed, parse_activity(body, limits)) for feed, body in
                  (_activity(n, args.feeds) for n in numbers)]  # fmt: skip
        batch = [activity_doc(a, {feed: a.to}, feed) for feed, a in parsed]
        rows = [{"feed": feed, "activity_id": a.id, "origin": None} for feed, a in parsed]
        began = time.perf_counter()
        await docs.insert_many(batch, ordered=False)
        await entries.insert_many(rows, ordered=False)
        seconds += time.perf_counter() - began
        for n, (_, a) in zip(numbers, parsed, strict=True):
            newest.setdefault(n % args.feeds, []).insert(0, a.id)
    copies = [
        {"feed": f"timeline:f{i}", "activity_id": activity_id, "origin": f"user:f{i}"}
        for i, ids in newest.items() for activity_id in ids[: args.copy_limit]
    ][:count]  # fmt: skip
    copying = 0.0
    for start in range(0, len(copies), args.batch):
        began = time.perf_counter()
        await entries.insert_many(copies[start : start + args.batch], ordered=False)
        copying += time.perf_counter() - began
    await docs.drop()
    await entries.drop()
    return {"activities": count, "activities_per_s": round(count / seconds),
            "copies": len(copies), "copies_per_s": round(len(copies) / copying)}  # fmt: skip


async def _bench(args: argparse.Namespace) -> Report:
    report = report_head("import", uuid.uuid4().hex[:8])
    names = ("activities", "feeds", "copy_limit", "batch", "raw_sample", "cache_size")
    report["parameters"] = {name: getattr(args, name) for name in names}
    report["store"] = "mongodb" if args.mongodb_url else "embedded SecantusDB"
    database = f"bench_import_{report['run']}"
    with tempfile.TemporaryDirectory(prefix="tidings-import-") as folder:
        log(f"writing {args.activities} activities over {args.feeds} feeds")
        activities, follows, follow_count = _write_files(Path(folder), args)
        async with _store(args, Path(folder)) as url:
            client = mongo_client(url)
            try:
                report["store_version"] = await store_version(client[database])
                log("importing the activities")
                done = await _import(activities, url, database, args.batch)
                done["activities_per_s"] = round(args.activities / done["seconds"])
                report["activities"] = done
                log(f"importing {follow_count} follows")
                done = await _import(follows, url, database, args.batch)
                done["follows_per_s"] = round(follow_count / done["seconds"])
                done["copies"] = await client[database]["feed_entries"].count_documents(
                    {"origin": {"$ne": None}}
                )
                done["copies_per_s"] = round(done["copies"] / done["seconds"])
                report["follows"] = done
                log("raw insert_many of the same documents")
                raw = await _raw(client[f"{database}_raw"], args)
                report["raw_insert_many"] = raw
                report["import_vs_raw"] = {
                    "activities": round(args.activities / report["activities"]["seconds"]
                                        / raw["activities_per_s"], 3),
                    "copies": round(done["copies_per_s"] / raw["copies_per_s"], 3),
                }  # fmt: skip
            finally:
                await client.drop_database(database)
                await client.drop_database(f"{database}_raw")
                await client.close()
    return report


@contextlib.asynccontextmanager
async def _store(args: argparse.Namespace, folder: Path) -> AsyncIterator[str]:
    """The store of `--mongodb-url`, else an embedded one started for the run."""
    if args.mongodb_url:
        yield args.mongodb_url
        return
    log("starting the embedded store (SecantusDB)")
    async with embedded_store(folder / "store", args.cache_size) as url:
        yield url


def main(args: argparse.Namespace) -> int:
    return run_report(_bench(args), lambda report: report["activities"]["refused"] > 0)
