"""Live reaction events: sockets watch an activity's reactions (`reaction.watch`) and hear each
stored add, update, delete and restore (`reaction.added`, `reaction.updated`,
`reaction.deleted`) with the activity's counts, on every node; `since` recovers what a socket
missed; a refused watch joins nothing and a refused write sends nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from harness.common import SERVER_TOKEN, token
from tests.integration.nodes import WAIT, Cluster, Rest, Sub
from tests.support import API_KEY, ServerProcess

Doc = dict[str, Any]


async def reaction_call(
    rest: Rest, method: str, path: str, body: Any = None, jwt: str | None = None, **params: str
) -> Any:
    """A Reactions API call on `rest`'s node (the server token unless `jwt` is given)."""
    if jwt is None:
        return await rest.call(method, f"{rest.url}/api/v1.0/{path}", body, **params)
    async with rest.session.request(
        method, f"{rest.url}/api/v1.0/{path}", params={"api_key": API_KEY, **params}, json=body,
        headers={"Authorization": jwt, "stream-auth-type": "jwt"},
        timeout=aiohttp.ClientTimeout(total=WAIT),
    ) as response:  # fmt: skip
        return response.status, await response.json()


async def watcher(subs: list[Sub], node: ServerProcess, activity_id: str, polling: bool = False,
                  **more: Any) -> Sub:  # fmt: skip
    """A socket watching `activity_id` (`polling`: served by python-socketio, not the fast
    WebSocket path)."""
    sub = Sub()
    subs.append(sub)
    if polling:
        await sub.sio.connect(node.url, auth={"token": SERVER_TOKEN}, transports=["polling"],
                              wait_timeout=WAIT)  # fmt: skip
    else:
        await sub.connect(node.url)
    ack = await sub.call("reaction.watch", {"activity_id": activity_id, **more})
    assert ack["ok"] is True and ack["activity_id"] == activity_id, ack
    return sub


def of(reaction_id: str) -> Any:
    return lambda event: event["reaction"]["id"] == reaction_id


async def test_watchers_hear_each_stored_reaction_write_once_with_the_counts(
    server: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    rest = Rest(http, server)
    activity_id = await rest.add(f"user:{uid}")
    other_activity = await rest.add(f"user:{uid}")
    sub = await watcher(subs, server, activity_id)
    elsewhere = await watcher(subs, server, other_activity)

    like = await reaction_call(
        rest, "POST", "reaction/", {"kind": "like", "activity_id": activity_id, "user_id": uid}
    )
    added = await sub.wait_for("reaction.added", of(like["id"]))
    assert added["activity_id"] == activity_id
    assert added["reaction"]["kind"] == "like" and added["reaction"]["user_id"] == uid
    assert added["reaction_counts"] == {"like": 1}

    await reaction_call(rest, "PUT", f"reaction/{like['id']}/", {"data": {"n": 2}})
    updated = await sub.wait_for("reaction.updated", of(like["id"]))
    assert updated["reaction"]["data"] == {"n": 2} and updated["reaction_counts"] == {"like": 1}

    child = await reaction_call(
        rest, "POST", "reaction/", {"kind": "reply", "parent": like["id"], "user_id": uid}
    )
    heard = await sub.wait_for("reaction.added", of(child["id"]))
    assert heard["activity_id"] == activity_id and heard["reaction"]["parent"] == like["id"]

    await reaction_call(rest, "DELETE", f"reaction/{like['id']}/", soft="true")
    soft = await sub.wait_for("reaction.deleted", of(like["id"]))
    assert "deleted_at" in soft["reaction"] and soft["reaction_counts"] == {"like": 0}
    await reaction_call(rest, "PUT", f"reaction/{like['id']}/restore/")
    await sub.until(lambda: len(sub.named("reaction.added", of(like["id"]))) == 2, "restore")
    restored = sub.named("reaction.added", of(like["id"]))[1]
    assert "deleted_at" not in restored["reaction"] and restored["reaction_counts"] == {"like": 1}

    # A refused write (another user's token changing it) is stored nowhere and sent nowhere.
    stranger = token({"user_id": f"x{uid}"})
    status, _ = await reaction_call(rest, "PUT", f"reaction/{like['id']}/", {"data": {"n": 3}},
                                    jwt=stranger)  # fmt: skip
    assert status == 403
    await reaction_call(rest, "DELETE", f"reaction/{like['id']}/")
    hard = await sub.until(lambda: sub.named("reaction.deleted", of(like["id"]))[1:], "delete")
    assert "deleted_at" not in hard[0]["reaction"] and hard[0]["reaction_counts"] == {"like": 0}

    await asyncio.sleep(0.3)  # anything late would have come by now
    seen = [(name, data["reaction"]["id"]) for name, data in sub.events]
    assert seen == [
        ("reaction.added", like["id"]), ("reaction.updated", like["id"]),
        ("reaction.added", child["id"]), ("reaction.deleted", like["id"]),
        ("reaction.added", like["id"]), ("reaction.deleted", like["id"]),
    ]  # fmt: skip
    assert elsewhere.events == []  # only the watchers of that activity


async def test_the_like_count_a_watcher_hears_only_rises_when_likes_race(
    server: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    """Each event's counts are read after its write, but racing writes' reads come back in
    any order: a node never sends an activity's counts older than those it sent already."""
    rest = Rest(http, server)
    activity_id = await rest.add(f"user:{uid}")
    sub = await watcher(subs, server, activity_id)
    likes = 60
    await asyncio.gather(*(
        reaction_call(rest, "POST", "reaction/",
                      {"kind": "like", "activity_id": activity_id, "user_id": f"{uid}-{n}"})
        for n in range(likes)
    ))  # fmt: skip
    await sub.until(lambda: len(sub.named("reaction.added")) == likes, "every like")
    counts = [event["reaction_counts"]["like"] for event in sub.named("reaction.added")]
    assert counts == sorted(counts) and counts[-1] == likes, counts


async def test_a_watcher_on_another_node_hears_the_reactions_written_on_one(
    cluster: Cluster, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    a = Rest(http, cluster["A"])
    activity_id = await a.add(f"user:{uid}")
    on_c = await watcher(subs, cluster["C"], activity_id)
    on_a = await watcher(subs, cluster["A"], activity_id, polling=True)
    like = await reaction_call(
        a, "POST", "reaction/", {"kind": "like", "activity_id": activity_id, "user_id": uid}
    )
    for sub in (on_c, on_a):
        event = await sub.wait_for("reaction.added", of(like["id"]))
        assert event["reaction_counts"] == {"like": 1}
    await asyncio.sleep(0.3)
    assert len(on_c.events) == len(on_a.events) == 1


async def test_the_like_count_only_rises_on_every_node_when_likes_race_on_two(
    cluster: Cluster, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    """Each event carries the counts its write left, and events of racing writes on A and
    B reach each node in any order: a node never sends its watchers counts older (by the
    counters' version, carried on the bus) than those it sent already, so the last event a
    watcher hears carries the final count."""
    a, b = Rest(http, cluster["A"]), Rest(http, cluster["B"])
    activity_id = await a.add(f"user:{uid}")
    watchers = [
        await watcher(subs, cluster["C"], activity_id),
        await watcher(subs, cluster["A"], activity_id),
        await watcher(subs, cluster["B"], activity_id, polling=True),
    ]
    likes = 60
    await asyncio.gather(*(
        reaction_call((a, b)[n % 2], "POST", "reaction/",
                      {"kind": "like", "activity_id": activity_id, "user_id": f"{uid}-{n}"})
        for n in range(likes)
    ))  # fmt: skip
    for sub in watchers:
        await sub.until(lambda s=sub: len(s.named("reaction.added")) == likes, "every like")
        counts = [event["reaction_counts"]["like"] for event in sub.named("reaction.added")]
        assert counts == sorted(counts) and counts[-1] == likes, counts
        assert all("version" not in event for event in sub.named("reaction.added"))


async def test_a_socket_that_missed_reactions_gets_them_when_it_watches_again_with_since(
    server: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    rest = Rest(http, server)
    activity_id = await rest.add(f"user:{uid}")
    body = {"kind": "like", "activity_id": activity_id, "user_id": uid}
    sub = await watcher(subs, server, activity_id)
    first = await reaction_call(rest, "POST", "reaction/", body)
    await sub.wait_for("reaction.added", of(first["id"]))
    await sub.close()
    # Missed: a new one, a change of the one seen, one soft-deleted, one hard-deleted.
    new = await reaction_call(rest, "POST", "reaction/", {**body, "kind": "comment"})
    await reaction_call(rest, "PUT", f"reaction/{first['id']}/", {"data": {"text": "x"}})
    soft = await reaction_call(rest, "POST", "reaction/", body)
    await reaction_call(rest, "DELETE", f"reaction/{soft['id']}/", soft="true")
    gone = await reaction_call(rest, "POST", "reaction/", body)
    await reaction_call(rest, "DELETE", f"reaction/{gone['id']}/")

    again = Sub()
    subs.append(again)
    await again.connect(server.url)
    ack = await again.call("reaction.watch", {"activity_id": activity_id, "since": first["id"]})
    assert ack["ok"] is True and ack["more"] is False and ack["cursor"] > first["id"], ack
    missed = {r["id"]: r for r in ack["missed"]}
    assert set(missed) == {first["id"], new["id"], soft["id"]}
    assert missed[first["id"]]["data"] == {"text": "x"}
    assert "deleted_at" in missed[soft["id"]] and "deleted_at" not in missed[new["id"]]
    assert ack["reaction_counts"] == {"like": 1, "comment": 1}
    # It watches again: what comes next reaches it, and a watch from the cursor misses nothing.
    later = await reaction_call(rest, "POST", "reaction/", body)
    await again.wait_for("reaction.added", of(later["id"]))
    from_cursor = await again.call(
        "reaction.watch", {"activity_id": activity_id, "since": ack["cursor"]}
    )
    assert [r["id"] for r in from_cursor["missed"]] == [later["id"]], from_cursor

    bad = await again.call("reaction.watch", {"activity_id": activity_id, "since": "nope"})
    assert bad["ok"] is False and bad["error"]["exception"] == "InputException", bad


async def test_a_watch_is_refused_for_a_token_that_may_not_read_or_an_unknown_activity(
    server: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    rest = Rest(http, server)
    activity_id = await rest.add(f"user:{uid}")
    scoped = Sub()  # a token for one feed's activities, not for reactions nor a user
    subs.append(scoped)
    await scoped.connect(server.url, token({"resource": "feed", "action": "read",
                                            "feed_id": f"user{uid}"}))  # fmt: skip
    refused = await scoped.call("reaction.watch", {"activity_id": activity_id})
    assert refused["ok"] is False and refused["error"]["exception"] == "NotAllowedException"
    user = Sub()
    subs.append(user)
    await user.connect(server.url, token({"user_id": uid}))
    unknown = await user.call("reaction.watch", {"activity_id": str(uuid.uuid4())})
    assert unknown["ok"] is False and unknown["error"]["exception"] == "DoesNotExistException"
    assert (await user.call("reaction.watch", {"activity_id": activity_id}))["ok"] is True
    like = await reaction_call(
        rest, "POST", "reaction/", {"kind": "like", "activity_id": activity_id, "user_id": uid}
    )
    await user.wait_for("reaction.added", of(like["id"]))
    assert (await user.call("reaction.unwatch", {"activity_id": activity_id})) == {"ok": True}
    await reaction_call(
        rest, "POST", "reaction/", {"kind": "like", "activity_id": activity_id, "user_id": uid}
    )
    await asyncio.sleep(0.3)
    assert scoped.events == [] and len(user.events) == 1


async def test_a_socket_watches_at_most_a_hundred_activities(
    server: ServerProcess, http: aiohttp.ClientSession, subs: list[Sub], uid: str
) -> None:
    rest = Rest(http, server)
    ids = []
    for batch in range(2):
        activities = [{"actor": uid, "verb": "post", "object": f"o:{batch}:{n}"}
                      for n in range(51)]  # fmt: skip
        answer = await rest.call("POST", rest._path(f"user:{uid}"), {"activities": activities})
        ids += [a["id"] for a in answer["activities"]]
    sub = await watcher(subs, server, ids[0])
    acks = [await sub.call("reaction.watch", {"activity_id": i}) for i in ids[1:100]]
    assert all(ack["ok"] for ack in acks)
    assert (await sub.call("reaction.watch", {"activity_id": ids[0]}))["ok"] is True  # again
    over = await sub.call("reaction.watch", {"activity_id": ids[100]})
    assert over["ok"] is False and over["error"]["exception"] == "InputException", over
    await sub.call("reaction.unwatch", {"activity_id": ids[0]})
    assert (await sub.call("reaction.watch", {"activity_id": ids[100]}))["ok"] is True
