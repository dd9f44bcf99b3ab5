"""Through the API (or the store): the follows of a round, the activities posted at a rate,
and the follower feeds read back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import aiohttp

from .services import Target, headers, log
from .store import fanout_mode, insert_follows

API = "/api/v1.0"
HTTP_TIMEOUT = 30.0
REST_FOLLOW_CONCURRENCY = 20
PULL_BULK_CHUNK = 50_000  # follows per bulk write after the switch (progress logged per chunk)
SWITCH_TIMEOUT = 300.0  # seconds for the to_pull job to mark the first followers and flip
SWITCH_POLL = 0.5
READ_PAGES = 20  # pages read at most per follower feed


async def setup_follows(
    http: aiohttp.ClientSession, target: Target, target_feed: str, feeds: Sequence[str]
) -> str:
    """`feeds` follow `target_feed`: straight into the store when it is known (the last one
    through the REST API, so that the server decides the feed's fanout mode on its follower
    count, as it would had they come one by one), else all through the REST API. Answers how."""
    if target.db is not None:
        await insert_follows(target.db, target_feed, feeds[:-1])
        await follow_rest(http, target, feeds[-1], target_feed)
        return "direct insert into follows, the last through REST"
    slots = asyncio.Semaphore(REST_FOLLOW_CONCURRENCY)

    async def follow(feed: str) -> None:
        async with slots:
            await follow_rest(http, target, feed, target_feed)

    await asyncio.gather(*(follow(feed) for feed in feeds))
    return "REST follows"


async def settled_mode(target: Target, feed: str) -> str | None:
    """`feed`'s fanout mode once no switch is under way: the server may be switching it, by its
    time budget, after its last follow (its switch job is written before the follow answers)."""
    assert target.db is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SWITCH_TIMEOUT
    switches = {"kind": {"$in": ["to_pull", "to_push"]}, "sources": feed}
    while True:
        target.check_alive()
        mode = await fanout_mode(target.db, feed)
        busy = await target.db["fanout_jobs"].find_one(switches, {"_id": 1}) is not None
        if (not busy and mode not in ("switching", "draining")) or loop.time() > deadline:
            return mode
        await asyncio.sleep(SWITCH_POLL)


async def follow_rest(
    http: aiohttp.ClientSession, target: Target, feed: str, target_feed: str
) -> None:
    """`feed` follows `target_feed` through the REST API, copying no activity."""
    group, _, user_id = feed.partition(":")
    async with http.post(
        f"{target.url}{API}/feed/{group}/{user_id}/follows/",
        params={"api_key": target.api_key},
        json={"target": target_feed, "activity_copy_limit": 0},
        headers=headers(target),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
    ) as rsp:
        if rsp.status != 201 and rsp.status != 200:
            raise RuntimeError(f"follow {feed}: HTTP {rsp.status}: {await rsp.text()}")


async def setup_pull_follows(
    http: aiohttp.ClientSession,
    target: Target,
    target_feed: str,
    feeds: Sequence[str],
    threshold: int,
) -> str:
    """`feeds` (more than `threshold` of them) follow `target_feed`, which ends up a pull feed.

    The server decides on a switch only on a follow through the API, and marking existing follows
    is slow (a million takes minutes), so: the first `threshold` follows go straight into the
    store, the next one through the API (the feed now has threshold + 1 followers: the server
    starts its to_pull job), and once the feed is a pull feed the rest go straight into the store
    again, written already marked as follows of a pull feed. Answers how."""
    if target.db is None:
        raise RuntimeError("a pull round needs the store (--mongodb-url, or --start)")
    if len(feeds) <= threshold:
        raise RuntimeError(f"{len(feeds)} followers do not pass the threshold {threshold}")
    await insert_follows(target.db, target_feed, feeds[:threshold])
    await follow_rest(http, target, feeds[threshold], target_feed)
    await wait_for_pull(target, target_feed)
    rest = feeds[threshold + 1 :]
    for start in range(0, len(rest), PULL_BULK_CHUNK):
        await insert_follows(target.db, target_feed, rest[start : start + PULL_BULK_CHUNK])
        done = threshold + 1 + min(start + PULL_BULK_CHUNK, len(rest))
        log(f"{target_feed}: {done}/{len(feeds)} follows")
    return f"{threshold} direct, 1 REST (switch to pull), {len(rest)} direct"


async def wait_for_pull(target: Target, feed: str) -> None:
    """Until the store says `feed` is a pull feed (its to_pull job has flipped it)."""
    assert target.db is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SWITCH_TIMEOUT
    mode = None
    while loop.time() < deadline:
        target.check_alive()
        mode = await fanout_mode(target.db, feed)
        if mode == "pull":
            return
        await asyncio.sleep(SWITCH_POLL)
    raise RuntimeError(
        f"{feed} is still {mode!r}, not 'pull', {SWITCH_TIMEOUT:.0f}s after passing the "
        "threshold: is the server's fanout.pull_threshold the --pull-threshold given?"
    )


async def read_missing(
    http: aiohttp.ClientSession, target: Target, feed: str, wanted: Collection[str]
) -> int:
    """How many of the activity ids `wanted` a REST read of `feed` (newest first, page after
    page; a grouped feed's groups' activities) does not show."""
    group, _, user_id = feed.partition(":")
    missing = set(wanted)
    path = f"{API}/feed/{group}/{user_id}/?limit={min(len(missing) + 5, 100)}"
    for _ in range(READ_PAGES):
        async with http.get(
            target.url + path,
            params={"api_key": target.api_key},
            headers=headers(target),
            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
        ) as rsp:
            if rsp.status != 200:
                raise RuntimeError(f"read {feed}: HTTP {rsp.status}: {await rsp.text()}")
            page = await rsp.json()
        for result in page.get("results", []):  # activities, or groups of them
            missing -= {str(a.get("id")) for a in result.get("activities", [result])}
        path = page.get("next") or ""
        if not missing or not path:
            break
    return len(missing)


@dataclass
class Posts:
    """The activities posted to one feed: when each POST started, how long it took."""

    target_feed: str
    label: str  # in each activity's object and foreign_id: bench:<run>:<label>:<index>
    started: dict[str, float] = field(default_factory=dict)  # activity id -> time.time()
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    verbs: int = 1  # the posts' verbs: post, or post0, post1, ... in turn


async def post_all(
    http: aiohttp.ClientSession, target: Target, posts: Posts, count: int, rate: float, run: str
) -> None:
    """POST `count` activities to the followed feed, one every 1/rate s, each on its own task
    so that a slow answer does not delay the next post."""
    group, _, user_id = posts.target_feed.partition(":")
    url = f"{target.url}{API}/feed/{group}/{user_id}/"
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)

    async def post(index: int) -> None:
        body = {
            "actor": posts.target_feed,
            "verb": "post" if posts.verbs == 1 else f"post{index % posts.verbs}",
            "object": f"bench:{run}:{posts.label}:{index}",
            "foreign_id": f"bench:{run}:{posts.label}:{index}",
        }
        started = time.time()
        clock = time.perf_counter()
        try:
            async with http.post(
                url,
                params={"api_key": target.api_key},
                json=body,
                headers=headers(target),
                timeout=timeout,
            ) as rsp:
                answer = await rsp.json(content_type=None)
                if rsp.status != 201:
                    posts.errors.append(f"HTTP {rsp.status}: {json.dumps(answer)[:300]}")
                    return
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            posts.errors.append(f"{type(exc).__name__}: {exc}")
            return
        posts.seconds.append(time.perf_counter() - clock)
        posts.started[str(answer["id"])] = started

    loop = asyncio.get_running_loop()
    first = loop.time()
    tasks = []
    for index in range(count):
        await asyncio.sleep(max(0.0, first + index / rate - loop.time()))
        tasks.append(asyncio.create_task(post(index)))
    await asyncio.wait_for(asyncio.gather(*tasks), HTTP_TIMEOUT + 5)


RATE_GAUGE = "tidings_fanout_rate_entries_per_second"
WARM_RATE_ACTIVITIES = 2


async def measure_rate_first(
    http: aiohttp.ClientSession, target: Target, run: str, followers: int
) -> float | None:
    """Before the rounds: a push of WARM_RATE_ACTIVITIES activities to `followers` feeds, so that
    the server has measured its fanout rate (as a node that has been running has) when the
    rounds' follows make it decide push or pull. Answers the rate it then reports."""
    if target.db is None or followers <= 0:
        return None
    feed = f"user:{run}-rate"
    await insert_follows(target.db, feed, [f"timeline:{run}-rate-{i}" for i in range(followers)])
    async with http.post(
        f"{target.url}{API}/feed/user/{run}-rate/",
        params={"api_key": target.api_key},
        json={"activities": [
            {"actor": "bench", "verb": "post", "object": f"o:{i}"}
            for i in range(WARM_RATE_ACTIVITIES)
        ]},
        headers=headers(target),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
    ) as rsp:  # fmt: skip
        if rsp.status not in (200, 201):
            raise RuntimeError(f"add to {feed}: HTTP {rsp.status}: {await rsp.text()}")
    wanted = followers * WARM_RATE_ACTIVITIES
    deadline = time.monotonic() + SWITCH_TIMEOUT
    while await target.db["feed_entries"].count_documents({"origin": feed}) < wanted:
        target.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the push of {feed} did not finish")
        await asyncio.sleep(SWITCH_POLL)
    async with http.get(target.url + "/metrics", timeout=aiohttp.ClientTimeout(5)) as rsp:
        for line in (await rsp.text()).splitlines():
            if line.startswith(RATE_GAUGE + " "):
                rate = float(line.split()[1])
                log(f"the server measured {rate:.0f} fanout entries/s")
                return rate
    return None
