"""The raid-room benchmark: presence across two nodes, and `publish` over the socket.

Two `python -m tidings serve` nodes, A and B, on one store (an embedded SecantusDB the benchmark
starts, or `--mongodb-url`) and one redis-server it starts. `--rooms` rooms (`raid:<run>-<r>`)
of `--members` members each; member i of a room connects to A when i is even, B when odd, with
a scoped user token, and subscribes with `presence: {info}` (raw sockets, bench/raid_members.py,
events timed by the kernel). Then, one phase after the other:

1. **join**: the last member of each room joins, one room every `--join-gap` seconds; the time
   from its subscribe to each `presence.join` arriving at the room's members **on the other
   node** (join→seen-on-other-node);
2. **publish**: `--publishes` activities per room, at `--rate` a second in all, each by the
   room's next member in turn (so from both nodes); publish→ack (stored: the ack comes only once
   the feed holds it) and publish→`feed.update` at every other member of the room, split by
   whether the member is on the publisher's node or the other one;
3. **death**: kill -9 of node B; the time until A's members have seen the `presence.leave` of
   every member B had (each exactly once), against `presence_ttl` + 2 s.

One JSON document on stdout (and `--out`), progress on stderr; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tidings.auth import feed_token
from tidings.domain.feeds import FeedId

from .nodes import node_ready, redis_node, shared_services
from .options import DEV_API_KEY, DEV_API_SECRET, positive_float, positive_int
from .raid_members import RaidMember
from .services import (
    Report,
    log,
    report_head,
    run_report,
)
from .stats import percentiles

CALL_TIMEOUT = 30.0
CONNECT_CONCURRENCY = 50
PUBLISH_TARGET_MS = 50.0  # publish -> room p99, on one node (stored first)
DEATH_MARGIN_S = 2.0  # leaves after a node's death within presence_ttl + this


def add_arguments(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("load")
    load.add_argument("--rooms", type=positive_int, default=50)
    load.add_argument("--members", type=positive_int, default=20, help="per room (≥ 4)")
    load.add_argument("--publishes", type=positive_int, default=10, help="per room")
    load.add_argument("--rate", type=positive_float, default=50.0, help="publishes/s in all")
    load.add_argument("--join-gap", type=positive_float, default=0.02, help="seconds")
    load.add_argument("--presence-ttl", type=positive_float, default=15.0,
                      help="realtime.presence_ttl of the nodes (server default 15)")  # fmt: skip
    nodes = parser.add_argument_group("the nodes (always started by the benchmark)")
    nodes.add_argument("--mongodb-url", default="", help="instead of an embedded store")
    nodes.add_argument("--api-key", default=DEV_API_KEY)
    nodes.add_argument("--api-secret", default=DEV_API_SECRET)
    nodes.add_argument("--out", type=Path, help="also write the JSON here")
    parser.set_defaults(batch_size=500, concurrency=4)


# --------------------------------------------------------------------------- the members


def _member(args: argparse.Namespace, urls: dict[str, str], room: str, i: int) -> RaidMember:
    node = "A" if i % 2 == 0 else "B"
    host, _, port = urls[node].removeprefix("http://").partition(":")
    user_id = f"m{i}-{room.partition(':')[2]}"
    group, _, room_id = room.partition(":")
    token = feed_token(FeedId(group, room_id), args.api_secret, action="*", user_id=user_id)
    return RaidMember(host, int(port), token, room, user_id, node, {"slot": i, "ready": False})


async def _connect(members: list[RaidMember]) -> float:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(member: RaidMember) -> None:
        async with gate:
            await member.start(CALL_TIMEOUT)

    started = time.perf_counter()
    await asyncio.gather(*(one(m) for m in members))
    return time.perf_counter() - started


async def _until(check: Any, within: float, what: str) -> float:
    """Poll `check()` every 10 ms until true; the time it took (raises after `within`)."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > within:
            raise RuntimeError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


def _ms(values: list[float]) -> dict[str, float] | None:
    return percentiles([v * 1000 for v in values])


# --------------------------------------------------------------------------- the phases


async def _joins(args: argparse.Namespace, rooms: dict[str, list[RaidMember]]) -> Report:
    late = {room: members[-1] for room, members in rooms.items()}
    sent: dict[str, float] = {}
    for member in late.values():
        sent[member.user_id] = time.time()
        await member.start(CALL_TIMEOUT)
        await asyncio.sleep(args.join_gap)

    def seen(room: str) -> list[float]:
        joiner = late[room]
        return [
            at - sent[joiner.user_id]
            for m in rooms[room][:-1] if m.node != joiner.node
            for name, data, at in m.events
            if name == "presence.join" and data["user_id"] == joiner.user_id
        ]  # fmt: skip

    expected = sum(sum(m.node != late[r].node for m in ms[:-1]) for r, ms in rooms.items())
    await _until(lambda: sum(len(seen(r)) for r in rooms) >= expected, 30, "the joins")
    latencies = [x for room in rooms for x in seen(room)]
    return {"joins": len(late), "seen_on_other_node": len(latencies),
            "join_to_seen_on_other_node_ms": _ms(latencies)}  # fmt: skip


async def _publishes(args: argparse.Namespace, rooms: dict[str, list[RaidMember]]) -> Report:
    plan = [(room, k) for k in range(args.publishes) for room in rooms]
    sent: dict[str, tuple[float, RaidMember]] = {}
    acks: list[float] = []
    refused: list[Any] = []

    async def publish(room: str, k: int) -> None:
        member = rooms[room][k % len(rooms[room])]
        seq = f"{room}#{k}"
        activity = {"actor": member.user_id, "verb": "call", "object": "pull", "seq": seq}
        at = time.time()
        sent[seq] = (at, member)
        ack, acked = await member.call("publish", {"feed": room, "activity": activity},
                                       CALL_TIMEOUT)  # fmt: skip
        if ack.get("ok"):
            acks.append(acked - at)
        else:
            refused.append(ack.get("error"))

    tasks, gap, started = [], 1.0 / args.rate, time.perf_counter()
    for n, (room, k) in enumerate(plan):
        delay = started + n * gap - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(publish(room, k)))
    await asyncio.gather(*tasks)

    def deliveries() -> tuple[list[float], list[float]]:
        same: list[float] = []
        other: list[float] = []
        for members in rooms.values():
            for m in members:
                for name, data, at in m.events:
                    seq = data.get("new", [{}])[0].get("seq") if name == "feed.update" else None
                    if seq in sent and sent[seq][1] is not m:
                        (same if sent[seq][1].node == m.node else other).append(at - sent[seq][0])
        return same, other

    expected = len(acks) * (args.members - 1)
    with contextlib.suppress(RuntimeError):
        await _until(lambda: sum(map(len, deliveries())) >= expected, 30, "the deliveries")
    same, other = deliveries()
    return {
        "publishes": len(plan), "acked": len(acks), "refused": refused[:5],
        "deliveries_expected": expected, "deliveries": len(same) + len(other),
        "publish_to_ack_ms": _ms(acks),
        "publish_to_room_same_node_ms": _ms(same),
        "publish_to_room_other_node_ms": _ms(other),
        "publish_to_room_all_ms": _ms(same + other),
    }  # fmt: skip


async def _death(
    args: argparse.Namespace, rooms: dict[str, list[RaidMember]], node_b: Any
) -> Report:
    gone = {room: {m.user_id for m in ms if m.node == "B"} for room, ms in rooms.items()}
    watchers = [(room, m) for room, ms in rooms.items() for m in ms if m.node == "A"]
    expected = sum(len(gone[room]) for room, _ in watchers)

    def leaves() -> list[tuple[str, float]]:
        return [(data["user_id"], at) for room, m in watchers
                for name, data, at in m.events
                if name == "presence.leave" and data["user_id"] in gone[room]]  # fmt: skip

    killed = time.time()
    node_b.kill()  # kill -9: no goodbye
    await node_b.wait()
    budget = args.presence_ttl + DEATH_MARGIN_S + 10
    with contextlib.suppress(RuntimeError):
        await _until(lambda: len(leaves()) >= expected, budget, "the leaves")
    seen = leaves()
    per_watcher = [
        len([1 for n, d, _ in m.events if n == "presence.leave" and d["user_id"] in gone[r]])
        for r, m in watchers
    ]  # fmt: skip
    times = [at - killed for _, at in seen]
    return {
        "members_on_dead_node": sum(map(len, gone.values())),
        "leaves_expected": expected, "leaves_seen": len(seen),
        "watchers_with_a_duplicate_leave": sum(
            c > len(gone[r]) for c, (r, _) in zip(per_watcher, watchers, strict=True)),
        "first_leave_after_kill_s": round(min(times), 2) if times else None,
        "last_leave_after_kill_s": round(max(times), 2) if times else None,
    }  # fmt: skip


async def _presence_counts(rooms: dict[str, list[RaidMember]], node: str) -> list[int]:
    """Each room's `presence` count, asked of one member on `node`."""
    counts = []
    for members in rooms.values():
        asker = next(m for m in members if m.node == node and m.connected)
        ack, _ = await asker.call("presence", {"feed": asker.feed, "limit": 1000}, CALL_TIMEOUT)
        counts.append(int(ack["count"]))
    return counts


# --------------------------------------------------------------------------- the run


async def _run(args: argparse.Namespace) -> Report:
    if args.members < 4:
        raise RuntimeError("--members must be at least 4")
    run = uuid.uuid4().hex[:8]
    report: Report = {
        **report_head("raid", run), "rooms": args.rooms, "members_per_room": args.members,
        "nodes": 2, "presence_ttl_s": args.presence_ttl,
    }  # fmt: skip
    members: list[RaidMember] = []
    async with contextlib.AsyncExitStack() as stack:
        shared = await shared_services(args, stack, "raid")
        workdir, store_url, redis_url = shared.workdir, shared.store_url, shared.redis_url
        report["store"] = shared.store
        database = f"bench_raid_{run}"
        ttl = {"TIDINGS_REALTIME_PRESENCE_TTL": str(args.presence_ttl)}
        started = {
            name: await stack.enter_async_context(
                redis_node(args, name, store_url, redis_url, database, workdir, ttl)
            )
            for name in "AB"
        }
        urls = {name: url for name, (url, _) in started.items()}
        node_b = started["B"][1]
        async with aiohttp.ClientSession() as http:
            for url, process in started.values():
                await node_ready(http, url, process)
        try:
            rooms = {f"raid:{run}-{r}": [] for r in range(args.rooms)}
            for room, room_members in rooms.items():
                room_members.extend(_member(args, urls, room, i) for i in range(args.members))
                members.extend(room_members)
            early = [m for ms in rooms.values() for m in ms[:-1]]
            report["connect_subscribe_s"] = round(await _connect(early), 2)
            log(f"{len(early)} members joined in {report['connect_subscribe_s']}s")
            report["join"] = await _joins(args, rooms)
            log(f"joins: {json.dumps(report['join'])}")
            report["presence_counts_agree"] = (
                await _presence_counts(rooms, "A") == await _presence_counts(rooms, "B")
                == [args.members] * args.rooms
            )  # fmt: skip
            report["publish"] = await _publishes(args, rooms)
            log(f"publishes: {json.dumps(report['publish'])}")
            report["death"] = await _death(args, rooms, node_b)
            log(f"death: {json.dumps(report['death'])}")
            on_a = (args.members + 1) // 2
            report["presence_counts_after_death_on_a_agree"] = (
                await _presence_counts(rooms, "A") == [on_a] * args.rooms
            )
        finally:
            await asyncio.gather(*(m.stop(1.0) for m in members if m.connected),
                                 return_exceptions=True)  # fmt: skip
    report["targets"] = _targets(args, report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _targets(args: argparse.Namespace, report: Report) -> Report:
    same = (report.get("publish", {}).get("publish_to_room_same_node_ms") or {}).get("p99")
    last = report.get("death", {}).get("last_leave_after_kill_s")
    limit = args.presence_ttl + DEATH_MARGIN_S
    return {
        "publish_to_room_p99_same_node_ms": {
            "target": PUBLISH_TARGET_MS, "measured": same,
            "met": same is not None and same <= PUBLISH_TARGET_MS},
        "leaves_after_node_death_s": {
            "target": limit, "measured": last, "met": last is not None and last <= limit},
    }  # fmt: skip


def _failed(report: Report) -> bool:
    publish, death = report.get("publish", {}), report.get("death", {})
    return (
        publish.get("deliveries") != publish.get("deliveries_expected")
        or death.get("leaves_seen") != death.get("leaves_expected")
        or bool(death.get("watchers_with_a_duplicate_leave"))
        or not report.get("presence_counts_agree")
    )


def main(args: argparse.Namespace) -> int:
    return run_report(_run(args), _failed)
