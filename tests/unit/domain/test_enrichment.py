"""Enrichment, pure (domain/enrichment.py), and the memory it reads through
(store/memory/object_cache.py, reaction_cache.py)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from tidings.domain.enrichment import Loaded, Options, References, enrich_activity, parse_kinds
from tidings.domain.objects import EntryKey, User
from tidings.domain.reactions import Reaction
from tidings.store.memory.enriched_parts import SharedParts
from tidings.store.memory.object_cache import ObjectCache
from tidings.store.memory.reaction_cache import ReactionCache, ShownReactions

NOW = datetime(2024, 5, 1, tzinfo=UTC)
ZERO = "00000000-0000-0000-0000-000000000000"


def _like(number: int) -> Reaction:
    return Reaction(
        id=f"00000000-0000-7000-8000-{number:012d}", kind="like", activity_id=ZERO,
        user_id="bob", data={}, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def test_references_are_top_level_strings_of_four_kinds() -> None:
    refs = References()
    refs.add({"actor": "SU:bob", "object": "SO:food:b1", "a": f"SA:{ZERO}", "r": f"SR:{ZERO}",
              "plain": "SU:", "nested": ["SU:carl"], "bad": "SA:not-a-uuid", "n": 3})  # fmt: skip
    assert refs.users == {"bob"} and refs.entries == {EntryKey("food", "b1")}
    assert refs.activities == {ZERO} and refs.reactions == {ZERO}


def test_missing_references_and_reactions_with_their_next_page() -> None:
    options = Options(recent=True, counts=True, recent_limit=2, kinds=("like",))
    loaded = Loaded(
        users={"bob": User("bob", {"n": 1}, NOW, NOW)},
        counts={ZERO: {"like": 3, "comment": 1}},
        latest={ZERO: {"like": [_like(3), _like(2), _like(1)]}},
    )
    activity = {"id": ZERO, "actor": "SU:ann", "verb": "v", "object": "SO:food:x", "n": 1}
    enriched = enrich_activity(activity, loaded, options)
    assert enriched["actor"] == {"error": "ReferenceNotFound", "reference": "SU:ann",
                                 "reference_type": "user", "id": "ann"}  # fmt: skip
    assert enriched["object"]["collection"] == "food" and enriched["object"]["id"] == "x"
    assert (enriched["target"], enriched["origin"], enriched["n"]) == ("", None, 1)
    likes = enriched["latest_reactions"]["like"]
    assert [r["id"][-1] for r in likes] == ["3", "2"] and likes[0]["user"]["id"] == "bob"
    assert (
        "id_lt=00000000-0000-7000-8000-000000000002"
        in (enriched["latest_reactions_extra"]["like"]["next"])
    )
    assert enriched["reaction_counts"] == {"like": 3}  # only the kinds asked for
    assert "own_reactions" not in enriched


def test_kinds_are_trimmed_and_deduplicated() -> None:
    assert parse_kinds(" like, ,comment\n,like") == ("like", "comment")
    assert parse_kinds(" , ") is None


def test_the_object_cache_keeps_no_read_that_raced_a_write() -> None:
    cache: ObjectCache[str, int] = ObjectCache(60)
    before = time.monotonic()
    cache.forget(["a"])  # written after the read began
    cache.put_many(["a", "b", "c"], {"a": 1, "b": 2}, before)
    found, missing = cache.get_many(["a", "b", "c"])
    assert found == {"b": 2, "c": None} and missing == ["a"]  # c: known absent
    assert ObjectCache[str, int](0).get_many(["a"]) == ({}, ["a"])


def test_the_object_cache_holds_a_lookup_whole_or_not_at_all() -> None:
    cache: ObjectCache[str, int] = ObjectCache(60)
    cache.put_many(["a", "b"], {"a": 1}, time.monotonic())
    assert cache.held(["a", "b"]) == {"a": 1}  # b: known absent
    assert cache.held(["a", "c"]) is None
    assert cache.held([]) == {}
    assert ObjectCache[str, int](0).held(["a"]) is None


def test_the_reaction_cache_answers_only_its_version() -> None:
    cache = ReactionCache(60)
    cache.put("a", ("bob", 6, None), 3, {"like": [_like(1)]})
    assert cache.get("a", ("bob", 6, None), 3) == {"like": [_like(1)]}
    assert cache.get("a", ("bob", 6, None), 4) is None
    assert cache.get("a", (None, 6, None), 3) is None


def test_shown_forms_are_made_once_and_shared_by_pages_never_changed() -> None:
    """Users and reactions kept in memory keep their shown forms across pages; a page that
    adds to a reaction (own children) works on a copy."""
    bob = User("bob", {"n": 1}, NOW, NOW)
    like = _like(1)
    activity = {"id": ZERO, "actor": "SU:bob", "verb": "like"}
    pages = []
    for own_children in (None, {}, None):
        loaded = Loaded(
            users={"bob": bob}, latest={ZERO: {"like": [like]}}, own_children=own_children
        )
        pages.append(enrich_activity(activity, loaded, Options(recent=True)))
    first, with_own, again = (p["latest_reactions"]["like"][0] for p in pages)
    assert first == again and first["user"] is bob.shown is pages[2]["actor"]
    assert with_own == {**first, "own_children": {}} and with_own is not first
    assert like.shown == like.public() and "user" not in like.shown
    stamp = "2024-05-01T00:00:00.000000Z"
    assert bob.shown == {"created_at": stamp, "updated_at": stamp, "id": "bob", "data": {"n": 1}}


def test_shown_reactions_are_kept_only_for_the_very_objects_they_were_made_of() -> None:
    """A form kept across pages is answered for the same reaction and user objects only: a
    reaction or a user read again (a new object, maybe changed) gets a new form."""
    made: list[dict[str, object]] = []

    def seal(body: dict[str, object]) -> dict[str, object]:
        made.append(body)
        return body

    shown = ShownReactions(seal, max_entries=2)
    bob, like = User("bob", {"n": 1}, NOW, NOW), _like(1)
    first = shown(like, bob)
    assert first == {**like.shown, "user": bob.shown} and shown(like, bob) is first
    bob_again = User("bob", {"n": 2}, NOW, NOW)
    assert shown(like, bob_again)["user"]["data"] == {"n": 2}
    assert shown(_like(1), bob_again) is not made[1]  # the reaction read again
    assert shown(like, None) == like.shown  # no such user
    shown(_like(2), None), shown(_like(3), None)  # past max_entries: the oldest is dropped
    before = len(made)
    shown(like, None)
    assert len(made) == before + 1


def test_the_shared_part_of_an_activity_is_kept_for_equal_inputs_only() -> None:
    """Everything but the reader's own reactions is kept across pages, and answered again only
    while the activity, the objects it names, its counts, its latest reactions and their users
    are equal to what it was made of; an activity that names an activity or a reaction, or
    whose reactions have children, is made anew every time."""
    kept = SharedParts(max_entries=10)
    bob, like = User("bob", {"n": 1}, NOW, NOW), _like(1)
    activity = {"id": ZERO, "actor": "SU:bob", "verb": "like", "object": "SO:things:x"}
    options = Options(recent=True, counts=True, own=True, user_id="bob")

    def page(**changes: Any) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "users": {"bob": bob}, "latest": {ZERO: {"like": [like]}},
            "own": {ZERO: {"like": [like]}}, "counts": {ZERO: {"like": 1}}, **changes,
        }  # fmt: skip
        return enrich_activity(activity, Loaded(kept=kept, **inputs), options)

    first, second = page(), page()
    assert first == second and first["own_reactions"] == {
        "like": [first["latest_reactions"]["like"][0]]
    }
    assert kept.hits == 1 and kept.misses == 1
    assert page(own={ZERO: {}})["own_reactions"] == {}
    assert kept.hits == 2  # the own reactions are the reader's: the shared part is kept
    renamed = User("bob", {"n": 2}, NOW, NOW)
    assert page(users={"bob": renamed})["actor"]["data"] == {"n": 2}
    assert page(counts={ZERO: {"like": 2}})["reaction_counts"] == {"like": 2}
    newer = _like(2)
    assert (
        page(latest={ZERO: {"like": [newer, like]}})["latest_reactions"]["like"][0]["id"]
        == newer.id
    )
    assert kept.hits == 2 and kept.misses == 4
    misses = kept.misses
    named = {**activity, "object": f"SA:{ZERO}"}
    for _ in range(2):
        enrich_activity(named, Loaded(kept=kept), options)
    parent = dataclasses.replace(_like(1), children_counts={"reply": 1})
    for _ in range(2):
        page(latest={ZERO: {"like": [parent]}})
    assert kept.misses == misses and kept.hits == 2  # neither looked up nor kept
