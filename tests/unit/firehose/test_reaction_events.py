"""Reaction events on the firehose, the pure parts: the `reactions` key of an endpoint, which
endpoints take an event, its element (cut to fit a message), and what a hard delete or a
retried add tells."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tidings.config import ConfigError, load_settings
from tidings.domain.reactions import Reaction, counts_without, retried_add
from tidings.firehose.endpoints import endpoints_of
from tidings.firehose.messages import LIST, bodies, reaction_element

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_reactions_is_off_unless_an_endpoint_says_so_in_a_file_or_the_environment(
    tmp_path: Path,
) -> None:
    config = tmp_path / "t.toml"
    config.write_text(
        f'[[firehose.webhook]]\nurl = "https://h.example/a"\nsecret = "{SECRET}"\n'
        'reactions = true\nfeed_groups = ["raid"]\n'
        f'[[firehose.webhook]]\nurl = "https://h.example/b"\nsecret = "{SECRET}"\n'
        '[[firehose.sqs]]\nqueue_url = "https://sqs.example/1/q"\nregion = "eu-west-1"\n'
        "reactions = true\n"
    )
    settings = load_settings(config, environ={}).firehose
    assert [h.reactions for h in settings.webhook] == [True, False]
    assert settings.sqs[0].reactions is True
    env = {
        "TIDINGS_FIREHOSE_WEBHOOK": json.dumps([{"url": "http://h/1", "secret": SECRET},
                                                {"url": "http://h/2", "secret": SECRET,
                                                 "reactions": True}]),
        "TIDINGS_FIREHOSE_SQS": json.dumps([{"queue_url": "http://q/1", "region": "r",
                                             "reactions": True}]),
    }  # fmt: skip
    loaded = load_settings(environ=env).firehose
    assert [h.reactions for h in loaded.webhook] == [False, True] and loaded.sqs[0].reactions
    assert load_settings(environ={}).firehose.webhook == ()  # no endpoint by default


def test_a_reactions_value_that_is_not_a_boolean_stops_the_start_with_its_key() -> None:
    bad = json.dumps([{"url": "http://h/1", "secret": SECRET, "reactions": "sometimes"}])
    with pytest.raises(ConfigError, match=r"firehose\.webhook\.0\.reactions"):
        load_settings(environ={"TIDINGS_FIREHOSE_WEBHOOK": bad})


def test_an_endpoint_takes_reaction_events_only_with_reactions_and_of_its_groups() -> None:
    hooks = [
        {"url": "http://h/all", "secret": SECRET, "reactions": True},
        {"url": "http://h/raids", "secret": SECRET, "reactions": True, "feed_groups": ["raid"]},
        {"url": "http://h/feeds", "secret": SECRET},
    ]
    settings = load_settings(environ={"TIDINGS_FIREHOSE_WEBHOOK": json.dumps(hooks)})
    every, raids, feeds = endpoints_of(settings.firehose)
    assert every.wants_reaction(()) and every.wants_reaction(["user:a"])
    assert raids.wants_reaction(["user:a", "raid:42"]) and not raids.wants_reaction(["user:a"])
    assert not raids.wants_reaction(())  # an activity unknown or removed: no group to match
    assert not feeds.wants_reaction(["raid:42"]) and feeds.wants("raid:42")


def _event(**reaction: object) -> dict[str, object]:
    body = {"id": "r1", "kind": "comment", "activity_id": "a1", "user_id": "bob",
            "data": {"text": "hi"}, "parent": "", "created_at": "2026-05-01T12:00:00.000000Z",
            "updated_at": "2026-05-01T12:00:00.000000Z", "latest_children": {},
            "children_counts": {}, **reaction}  # fmt: skip
    return {
        "type": "reaction.added",
        "activity_id": "a1",
        "reaction": body,
        "reaction_counts": {"comment": 1},
        "published_at": "2026-05-01T12:00:00.000001",
    }


def test_a_reaction_events_element_is_the_event_itself_when_it_fits() -> None:
    event = _event(user={"id": "bob", "data": {"name": "Bob"}})
    element = reaction_element(event, 250_000)
    assert json.loads(element.text) == event
    [(body, _)] = bodies([element], 250_000)
    assert json.loads(body) == [event]


def test_a_reaction_event_too_big_for_a_message_leaves_out_fields_and_names_them() -> None:
    children = {"reply": [{"id": f"c{n}", "data": {"text": "x" * 4000}} for n in range(10)]}
    event = _event(latest_children=children, user={"id": "bob", "data": {"bio": "y" * 9000}},
                   data={"text": "z" * 9000})  # fmt: skip
    small = json.loads(reaction_element(event, 16_384).text)
    assert small["truncated"] == ["latest_children", "user"]
    assert small["reaction"]["data"] == {"text": "z" * 9000}
    assert small["reaction_counts"] == {"comment": 1}
    tiny = reaction_element(event, 4096)
    assert len(tiny.text.encode()) + LIST <= 4096
    cut = json.loads(tiny.text)
    assert cut["truncated"][-1] == "data" and "data" not in cut["reaction"]
    assert {"id", "kind", "activity_id", "user_id", "created_at"} <= cut["reaction"].keys()
    assert cut["type"] == "reaction.added" and cut["activity_id"] == "a1"
    assert "truncated" not in json.loads(reaction_element(event).text)  # no limit: whole


def _reaction(**fields: object) -> Reaction:
    base = Reaction(id="r1", kind="like", activity_id="a1", user_id="bob", data={"n": 1},
                    created_at=WHEN, updated_at=WHEN)  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


def test_a_hard_delete_expects_one_fewer_of_its_kind_only_where_it_was_counted() -> None:
    counts = {"like": 3, "clap": 1}
    assert counts_without(counts, _reaction()) == {"like": 2, "clap": 1}
    assert counts_without(counts, _reaction(parent="p1")) == counts  # counts on its parent
    assert counts_without(counts, _reaction(deleted_at=WHEN)) == counts  # soft: uncounted
    assert counts_without({"like": 0}, _reaction()) == {"like": 0}
    assert counts_without({}, _reaction()) == {}


def test_a_retried_add_is_the_same_add_of_a_reaction_no_later_write_changed() -> None:
    stored = _reaction()
    asked = _reaction(created_at=datetime(2026, 5, 1, 12, 0, 5, tzinfo=UTC))  # tried later
    assert retried_add(stored, asked)
    assert not retried_add(stored, _reaction(kind="clap"))
    assert not retried_add(stored, _reaction(data={"n": 2}))
    assert not retried_add(stored, _reaction(target_feeds=("timeline:bob",)))
    assert not retried_add(_reaction(updated_at=datetime(2026, 5, 2, tzinfo=UTC)), asked)
    assert not retried_add(_reaction(deleted_at=WHEN), asked)
