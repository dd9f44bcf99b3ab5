"""Enriched reads (`enrich/feed/…`, `enrich/activities/`) through Stream's own SDKs: the npm
`getstream` with user tokens (the cases of its suites' enrich.js and not_found_enrichment.js),
stream-python server-side, raw calls for permissions and bad input; and one query per kind of
reference per page, counted with MongoDB's command monitoring."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from stream.client import StreamClient

from harness.common import SERVER_TOKEN
from harness.monitoring import monitored_database
from tests.integration.rest_calls import Api, stream_js
from tests.support import ServerProcess, Store
from tidings.domain.enrichment import Options
from tidings.domain.objects import Entry, User
from tidings.domain.reactions import Reaction, new_reaction_id
from tidings.feeds.enrich import Enricher
from tidings.store.memory.reaction_cache import ReactionCache
from tidings.store.mongo.collections import EntryStore
from tidings.store.mongo.reactions import ReactionStore
from tidings.store.mongo.users import UserStore

Doc = dict[str, Any]
ACTIVITY_FIELDS = {"id", "foreign_id", "time", "actor", "verb", "target", "object", "origin"}


def ok(result: Doc) -> Any:
    assert result["ok"], result
    return result["result"]


def public(answer: Doc) -> Doc:
    return {k: v for k, v in answer.items() if k != "duration"}


def feed_get(user: str | None, feed: list[str], **options: Any) -> Doc:
    return {"user": user, "feed": feed, "method": "get", "args": [options]}


def react(user: str | None, *args: Any) -> Doc:
    return {"user": user, "of": "reactions", "method": "add", "args": list(args)}


def test_the_npm_sdk_reads_enriched_feeds_with_user_tokens(server: ServerProcess, uid: str) -> None:
    """enrich.js: references, own, recent and counted reactions, a notification feed whose
    reaction activity names the activity (`SA:`) and the reaction (`SR:`)."""
    alice, bob, carl, dave = (f"{n}-{uid}" for n in ("alice", "bob", "carl", "dave"))
    setup = [
        {"user": u, "method": "setUser", "args": [{"name": u}]} for u in (alice, bob, carl, dave)
    ]
    setup.append({"user": alice, "on": ["collections"], "method": "add",
                  "args": ["food", None, {"name": "cheese burger"}]})  # fmt: skip
    *users, burger = (ok(r) for r in stream_js(server, setup))
    [eat] = stream_js(
        server,
        [
            {
                "user": alice,
                "feed": ["user"],
                "method": "addActivity",
                "args": [{"verb": "eat", "object": f"SO:food:{burger['id']}"}],
            }
        ],
    )
    eat_id = ok(eat)["id"]
    [plain] = stream_js(server, [feed_get(alice, ["user"])])
    [activity] = ok(plain)["results"]
    assert set(activity) == ACTIVITY_FIELDS
    assert activity["actor"] == public(users[0]) and public(activity["object"]) == public(burger)
    notification = f"notification:{alice}"
    results = stream_js(server, [
        {"user": bob, "feed": ["timeline"], "method": "follow", "args": ["user", alice]},
        react(bob, "like", eat_id),
        react(dave, "like", eat_id),
        # server-side: Tidings lets a user token write only its own feeds
        react(None, "comment", eat_id, {"text": "juicy"}, {"targetFeeds": [notification],
                                                           "userId": dave}),
    ])  # fmt: skip
    like, like2, comment = (
        {**public(ok(r)), "user": public(u)}
        for r, u in zip(results[1:], (users[1], users[3], users[3]), strict=True)
    )
    full = {"withRecentReactions": True, "withOwnReactions": True, "withReactionCounts": True}
    own_bob, carl_read, dave_read, notified = stream_js(server, [
        feed_get(bob, ["timeline"], withOwnReactions=True),
        # server-side, for carl and dave: a user token reads only its own user's feeds here
        feed_get(None, ["user", alice], withRecentReactions=True, withOwnReactions=True,
                 user_id=carl),
        feed_get(None, ["user", alice], **full, user_id=dave),
        feed_get(alice, ["notification"], **full),
    ])  # fmt: skip
    [seen] = ok(own_bob)["results"]
    assert set(seen) == ACTIVITY_FIELDS | {"own_reactions"}
    assert seen["own_reactions"] == {"like": [like]}
    [seen] = ok(carl_read)["results"]
    assert seen["own_reactions"] == {}
    assert seen["latest_reactions"]["like"] == [like2, like]
    assert seen["latest_reactions_extra"] == {"like": {"next": ""}, "comment": {"next": ""}}
    [enriched] = ok(dave_read)["results"]
    assert enriched["own_reactions"] == {"like": [like2], "comment": [comment]}
    assert enriched["latest_reactions"] == {"like": [like2, like], "comment": [comment]}
    assert enriched["reaction_counts"] == {"like": 2, "comment": 1}
    [group] = ok(notified)["results"]
    [reacted] = group["activities"]
    assert set(reacted) == ACTIVITY_FIELDS | {
        "own_reactions", "latest_reactions", "latest_reactions_extra", "reaction_counts",
        "reaction",
    }  # fmt: skip
    assert reacted["object"] == {**enriched, "own_reactions": {}}  # alice's own: none
    assert reacted["reaction"] == comment
    assert (reacted["own_reactions"], reacted["latest_reactions"]) == ({}, {})


def test_references_to_nothing_answer_reference_not_found(server: ServerProcess, uid: str) -> None:
    """not_found_enrichment.js: no user, no entry, no activity, no reaction of those ids."""
    alice, zero = f"alice-{uid}", "00000000-0000-0000-0000-000000000000"
    added = {"verb": "eat", "object": f"SO:food:{uid}", "notExistingActivity": f"SA:{zero}",
             "notExistingReaction": f"SR:{zero}", "nested": [f"SU:{alice}"]}  # fmt: skip
    stream_js(server, [{"user": alice, "feed": ["user"], "method": "addActivity", "args": [added]}])
    [read] = stream_js(server, [feed_get(alice, ["user"])])
    [activity] = ok(read)["results"]
    missing = {"error": "ReferenceNotFound"}
    assert activity["actor"] == {**missing, "reference": f"SU:{alice}", "reference_type": "user",
                                 "id": alice}  # fmt: skip
    assert activity["object"] == {
        **missing,
        "reference": f"SO:food:{uid}",
        "reference_type": "object",
        "collection": "food",
        "id": uid,
    }
    assert activity["notExistingActivity"] == {
        **missing, "reference": f"SA:{zero}", "reference_type": "activity", "id": zero,
    }  # fmt: skip
    assert activity["notExistingReaction"] == {
        **missing, "reference": f"SR:{zero}", "reference_type": "reaction", "id": zero,
    }  # fmt: skip
    assert activity["nested"] == [f"SU:{alice}"]  # only top-level fields are enriched


def test_stream_python_enriches_feeds_and_activities(client: StreamClient, uid: str) -> None:
    user = public(client.users.add(uid, {"name": "barry"}))
    entry = public(client.collections.add("items", {"name": "time machine"}))
    feed = client.feed("user", uid)
    added = feed.add_activity({
        "actor": f"SU:{uid}", "verb": "buy", "object": f"SO:items:{entry['id']}",
        "foreign_id": f"buy:{uid}", "time": "2024-05-01T12:00:00",
    })  # fmt: skip
    reactions = [public(client.reactions.add(k, added["id"], uid)) for k in ("like", "comment")]
    for kind in ("like", "like", "like", "share"):
        client.reactions.add(kind, added["id"], f"other-{uid}")
    plain = feed.get()["results"][0]
    assert plain["actor"] == f"SU:{uid}" and "latest_reactions" not in plain
    [got] = feed.get(enrich=True)["results"]
    assert got["actor"] == user and got["object"] == entry
    assert "own_reactions" not in got and "reaction_counts" not in got
    options = {"own": True, "recent": True, "counts": True, "kinds": ["like", "comment"]}
    [got] = feed.get(reactions=options, user_id=uid, recentReactionsLimit=2)["results"]
    assert got["own_reactions"]["like"] == [{**reactions[0], "user": user}]
    assert got["reaction_counts"] == {"like": 4, "comment": 1}  # filtered to the kinds
    assert set(got["latest_reactions"]) == {"like", "comment"}
    assert len(got["latest_reactions"]["like"]) == 2
    next_like = got["latest_reactions_extra"]["like"]["next"]
    assert next_like.startswith("http://") and "&limit=2&withOwnChildren=false" in next_like
    assert f"/api/v1.0/reaction/activity_id/{added['id']}/like/?id_lt=" in next_like
    assert got["latest_reactions_extra"]["comment"] == {"next": ""}
    by_ids = client.get_activities(ids=[added["id"]], reactions={"recent": True, "counts": True})
    by_foreign = client.get_activities(
        foreign_id_times=[(f"buy:{uid}", datetime(2024, 5, 1, 12))], enrich=True
    )
    assert by_ids["results"][0]["actor"] == user
    assert by_ids["results"][0]["reaction_counts"] == {"like": 4, "comment": 1, "share": 1}
    assert by_foreign["results"][0]["object"] == entry
    with_activity = client.reactions.filter(activity_id=added["id"], with_activity_data=True)
    assert with_activity["activity"]["actor"] == user  # enriched, with its reactions
    assert with_activity["activity"]["reaction_counts"] == {"like": 4, "comment": 1, "share": 1}
    assert with_activity["activity"]["own_reactions"] == {}  # a server token: nobody's


def test_own_reactions_are_the_token_users_and_bad_options_are_refused(
    server: ServerProcess, uid: str
) -> None:
    server_api, bob = Api(server, SERVER_TOKEN), Api(server, {"user_id": f"bob-{uid}"})
    added = server_api.ok(
        "POST", f"feed/user/bob-{uid}/", {"actor": uid, "verb": "v", "object": "o"}
    )
    server_api.ok("POST", "reaction/", {"kind": "like", "activity_id": added["id"],
                                        "user_id": f"bob-{uid}"})  # fmt: skip
    path = f"enrich/feed/user/bob-{uid}/"
    [mine] = bob.ok("GET", path, withOwnReactions="true")["results"]
    assert [r["user_id"] for r in mine["own_reactions"]["like"]] == [f"bob-{uid}"]
    bob.refused("GET", path, withOwnReactions="true", user_id=f"carl-{uid}")
    as_server = server_api.ok("GET", path, withOwnReactions="true", user_id=f"bob-{uid}")
    assert as_server["results"][0]["own_reactions"] == mine["own_reactions"]
    assert server_api.ok("GET", path, withOwnReactions="true")["results"][0]["own_reactions"] == {}
    users_activities = bob.ok("GET", "enrich/activities/", ids=added["id"])["results"]
    assert [a["id"] for a in users_activities] == [added["id"]]
    bob.refused("GET", "activities/", ids=added["id"])  # the plain call stays server-side
    for bad in ({"recentReactionsLimit": "0"}, {"recentReactionsLimit": "26"},
                {"withOwnReactions": "maybe"}, {"user_id": "a b"}):  # fmt: skip
        answer = server_api.call("GET", path, **bad)
        assert answer.status_code == 400 and answer.json()["code"] == 4, (bad, answer.text)
    ranked = server_api.call("GET", path, ranking="popularity")
    assert ranked.status_code == 400 and ranked.json()["exception"] == "FeedConfigException"
    server_api.ok("POST", f"feed/user/bob-{uid}/", {"actor": uid, "verb": "v", "object": "p"})
    paged = bob.ok("GET", path, limit="1", withReactionCounts="true")
    assert paged["next"].startswith(f"/api/v1.0/enrich/feed/user/bob-{uid}/?id_lt=")


class NoActivities:
    """The activity loader of a page that names no activity (`SA:`): never asked."""

    async def load(self, entries: Iterable[tuple[str, str | None]]) -> list[dict[str, Any]]:
        raise AssertionError("no SA: reference on this page")


async def test_an_enriched_page_costs_one_query_per_kind_whatever_its_size(store: Store) -> None:
    """Pages of 3 and of 25 activities, each naming its own user, its own entry and its own
    reaction, each reacted to (one reaction with children): the same commands reach the store
    for both, one per kind of thing: the counts, the latest and the own reactions, the
    children, the reactions named, the users, the entries."""
    async with monitored_database(store.url) as (db, commands):
        users, entries, reactions = UserStore(db), EntryStore(db), ReactionStore(db)
        enricher = Enricher(users, entries, NoActivities(), reactions, ReactionCache(60.0))
        options = Options(own=True, recent=True, counts=True, own_children=True, user_id="me")
        sent: dict[int, list[str]] = {}
        for size in (3, 25):
            page = []
            for i in range(size):
                now = datetime.now(UTC)
                await users.insert(User(f"u{size}-{i}", {"n": i}, now, now))
                await entries.insert(Entry("things", f"e{size}-{i}", {"n": i}, None, now, now))
                activity_id = str(uuid.uuid4())
                like = _reaction("like", activity_id, "me")
                await reactions.insert(like)
                if i == 0:
                    await reactions.insert(_reaction("reply", activity_id, "me", like))
                page.append(
                    {
                        "id": activity_id,
                        "actor": f"SU:u{size}-{i}",
                        "verb": "v",
                        "object": f"SO:things:e{size}-{i}",
                        "liked": f"SR:{like.id}",
                    }
                )
            commands.sent.clear()
            enriched = await enricher.page(page, options)
            sent[size] = sorted(commands.sent)
            assert [a["actor"]["data"] for a in enriched] == [{"n": i} for i in range(size)]
            assert [a["object"]["id"] for a in enriched] == [f"e{size}-{i}" for i in range(size)]
            assert all(a["reaction_counts"] == {"like": 1} for a in enriched)
            mine = enriched[0]["own_reactions"]["like"][0]
            assert mine["user_id"] == "me" and "user" not in mine  # no user "me" stored
            assert [c["kind"] for c in mine["latest_children"]["reply"]] == ["reply"]
            assert [c["kind"] for c in mine["own_children"]["reply"]] == ["reply"]
            assert enriched[1]["liked"]["id"] == page[1]["liked"][3:]
        assert sent[3] == sent[25], sent
        assert sent[25] == sorted([
            "find:reaction_counts", "aggregate:reactions", "aggregate:reactions",
            "find:reactions", "aggregate:reactions", "aggregate:reactions",
            "find:users", "find:collections",
        ])  # fmt: skip
        # Read again: the versions are unchanged, so the latest and own reactions come from
        # the cache; a new reaction raises its activity's version, which is read again alone.
        commands.sent.clear()
        assert await enricher.page(page, options) == enriched
        assert sorted(commands.sent).count("aggregate:reactions") == 2  # the children only
        newer = _reaction("like", page[5]["id"], "me")
        await reactions.insert(newer)
        again = await enricher.page(page, options)
        assert again[5]["own_reactions"]["like"][0]["id"] == newer.id
        assert again[5]["reaction_counts"] == {"like": 2}
        assert again[6] == enriched[6]


def _reaction(kind: str, activity_id: str, user: str, parent: Reaction | None = None) -> Reaction:
    now = datetime.now(UTC).replace(microsecond=0)
    return Reaction(
        id=new_reaction_id(), kind=kind, activity_id=activity_id, user_id=user, data={},
        created_at=now, updated_at=now, parent=parent.id if parent else "",
        ancestors=(parent.id,) if parent else (),
    )  # fmt: skip


def test_the_whole_reaction_trail_and_ranking_vars(server: ServerProcess, uid: str) -> None:
    """reaction.js "Nested reactions madness": a comment's child's child shows under the
    comment in `latest_reactions`; `rankingVars` only as a JSON object, as the SDK sends it."""
    api = Api(server, SERVER_TOKEN)
    added = api.ok("POST", f"feed/user/{uid}/", {"actor": uid, "verb": "eat", "object": "o"})
    comment = api.ok("POST", "reaction/", {"kind": "comment", "activity_id": added["id"],
                                           "user_id": "bob"})  # fmt: skip
    like = api.ok("POST", "reaction/", {"kind": "like", "parent": comment["id"], "user_id": uid})
    api.ok("POST", "reaction/", {"kind": "like", "parent": like["id"], "user_id": uid})
    path = f"enrich/feed/user/{uid}/"
    [got] = api.ok("GET", path, withRecentReactions="true", withOwnChildren="true",
                   user_id=uid)["results"]  # fmt: skip
    [shown] = got["latest_reactions"]["comment"]
    assert shown["children_counts"] == {"like": 1}
    [child] = shown["latest_children"]["like"]
    assert child["id"] == like["id"] and child["children_counts"] == {"like": 1}
    assert len(child["latest_children"]["like"]) == 1
    assert [c["id"] for c in shown["own_children"]["like"]] == [like["id"]]
    assert api.ok("GET", path, rankingVars='{"popular": 1}')["results"]
    for bad in ({"rankingVars[]": "popular"}, {"rankingVars": "popular"}):
        answer = api.call("GET", path, **bad)
        assert answer.status_code == 400 and answer.json()["code"] == 4, (bad, answer.text)
