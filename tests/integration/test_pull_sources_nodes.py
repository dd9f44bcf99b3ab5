"""Which pull rooms a subscribe joins, as each node remembers it (realtime/events/pull_sources.py):
a follow or an unfollow of a pull feed made through one node is seen by the next subscribe on
another node, though that node remembered the answer from before, and many subscribes of
distinct feeds at once are looked up together, each answered as if alone.

Two nodes as aiohttp apps in the test process (test_fast_path_nodes.py's), on the real store
and a real redis-server, with real python-socketio clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.integration.fast_path_clients import PyClient, Rest, new_ids, poll, py_client
from tests.integration.test_fast_path_nodes import Node, clients, event_of, in_process
from tidings.api.keys import BROADCASTER, SERVICE
from tidings.domain.feeds import parse_feed_id

__all__ = ["clients", "in_process"]  # the fixtures used here


async def _pull_feed(rest: Rest, node: Node, uid: str) -> str:
    """A feed past the nodes' pull threshold (3), once it is a pull feed."""
    celeb = f"user:{uid}celeb"
    for n in range(4):
        await rest.follow(f"timeline:{uid}early{n}", celeb)
    early = parse_feed_id(f"timeline:{uid}early0", ["timeline"])

    async def pulled() -> bool:
        return celeb in await node.app[SERVICE].pull_sources(early)

    await poll(pulled, f"{celeb} to be a pull feed")
    return celeb


async def _pull_reaches(node: Node, celeb: str, client: PyClient, marker_feed: str) -> bool:
    """Whether a pull update of `celeb` sent from `node` reaches `client` (subscribed to
    `marker_feed` too: the marker, sent after it from the same node, comes after it)."""
    aid, event = event_of(celeb)
    await node.app[BROADCASTER].pull_update(celeb, event)
    marker, event = event_of(marker_feed)
    await node.app[BROADCASTER].feed_update([marker_feed], event)
    await client.until_update(marker)
    return aid in new_ids(client.updates())


async def test_a_follow_and_an_unfollow_through_one_node_reach_the_next_subscribe_on_another(
    in_process: list[Node], clients: list[Any], uid: str
) -> None:
    a, b = in_process
    marker_feed = f"raid:{uid}"
    async with aiohttp.ClientSession() as session:
        rest = Rest(session, a.url)
        celeb = await _pull_feed(rest, a, uid)
        late = f"timeline:{uid}late"
        before = await py_client(clients, b.url, ["websocket"], [late, marker_feed])
        assert not await _pull_reaches(a, celeb, before, marker_feed)  # B remembers: none

        await rest.follow(late, celeb)  # through A: B forgets what it remembered of `late`
        after = await py_client(clients, b.url, ["websocket"], [late, marker_feed])
        assert await _pull_reaches(a, celeb, after, marker_feed)
        assert await _pull_reaches(b, celeb, before, marker_feed)  # moved in by the message

        user = late.partition(":")[2]
        await rest.call("DELETE", f"/api/v1.0/feed/timeline/{user}/follows/{celeb}/")
        gone = await py_client(clients, b.url, ["websocket"], [late, marker_feed])
        assert not await _pull_reaches(a, celeb, gone, marker_feed)
        assert not await _pull_reaches(b, celeb, before, marker_feed)


async def test_many_subscribes_at_once_are_each_answered_as_alone(
    in_process: list[Node], clients: list[Any], uid: str
) -> None:
    """Feeds subscribed to at once (one batch of lookups): those that follow the pull feed
    join its room, the others do not, and the pull feed's own subscriber joins it too."""
    a, b = in_process
    marker_feed = f"raid:{uid}"
    async with aiohttp.ClientSession() as session:
        rest = Rest(session, a.url)
        celeb = await _pull_feed(rest, a, uid)
        following = [f"timeline:{uid}f{n}" for n in range(6)]
        for feed in following:
            await rest.follow(feed, celeb)
        others = [f"timeline:{uid}o{n}" for n in range(6)]
        feeds = [*following, *others, celeb]
        socks = [await py_client(clients, b.url, ["websocket"], []) for _ in feeds]
        acks = await asyncio.gather(
            *(s.call("subscribe", {"feed": f}) for s, f in zip(socks, feeds, strict=True))
        )
        assert all(ack["ok"] for ack in acks), acks
        for sock in socks:
            assert (await sock.call("subscribe", {"feed": marker_feed}))["ok"] is True
        aid, event = event_of(celeb)
        await a.app[BROADCASTER].pull_update(celeb, event)
        marker, event = event_of(marker_feed)
        await a.app[BROADCASTER].feed_update([marker_feed], event)
        for sock, feed in zip(socks, feeds, strict=True):
            await sock.until_update(marker)
            got = [u["feed"] for u in sock.updates() if aid in new_ids([u])]
            assert got == ([] if feed in others else [feed]), (feed, sock.updates())
