"""Through the API (or the store): the follows of a round, and the activities posted at a rate."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from .services import Target, headers
from .store import insert_follows

API = "/api/v1.0"
HTTP_TIMEOUT = 30.0
REST_FOLLOW_CONCURRENCY = 20


async def setup_follows(
    http: aiohttp.ClientSession, target: Target, target_feed: str, feeds: Sequence[str]
) -> str:
    """`feeds` follow `target_feed`: straight into the store when it is known, else through the
    REST API. Answers how."""
    if target.db is not None:
        await insert_follows(target.db, target_feed, feeds)
        return "direct insert into follows"
    slots = asyncio.Semaphore(REST_FOLLOW_CONCURRENCY)

    async def follow(feed: str) -> None:
        group, _, user_id = feed.partition(":")
        async with (
            slots,
            http.post(
                f"{target.url}{API}/feed/{group}/{user_id}/follows/",
                params={"api_key": target.api_key},
                json={"target": target_feed, "activity_copy_limit": 0},
                headers=headers(target),
            ) as rsp,
        ):
            if rsp.status != 201 and rsp.status != 200:
                raise RuntimeError(f"follow {feed}: HTTP {rsp.status}: {await rsp.text()}")

    await asyncio.gather(*(follow(feed) for feed in feeds))
    return "REST follows"


@dataclass
class Posts:
    """The activities posted to one feed: when each POST started, how long it took."""

    target_feed: str
    label: str  # in each activity's object and foreign_id: bench:<run>:<label>:<index>
    started: dict[str, float] = field(default_factory=dict)  # activity id -> time.time()
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


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
            "verb": "post",
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
