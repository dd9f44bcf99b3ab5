"""The pure parts of the firehose: config of its endpoints, the payload, message ids, retries."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tidings.config import ConfigError, load_settings
from tidings.domain.events import feed_update
from tidings.firehose.endpoints import endpoints_of
from tidings.firehose.messages import Element, bodies, elements, message_id, retry_delay

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_endpoints_from_a_file_and_from_json_in_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text(
        f'[[firehose.webhook]]\nurl = "https://h.example/a"\nsecret = "{SECRET}"\n'
        'feed_groups = ["timeline"]\n'
        '[[firehose.sqs]]\nqueue_url = "https://sqs.example/1/q.fifo"\nregion = "eu-west-1"\n'
    )
    settings = load_settings(config, environ={"TIDINGS_FIREHOSE_RETRY_INITIAL_SECONDS": "0.5"})
    hooks = endpoints_of(settings.firehose)
    assert [(e.number, e.kind, e.target) for e in hooks] == [
        (0, "webhook", "https://h.example/a"), (1, "sqs", "https://sqs.example/1/q.fifo"),
    ]  # fmt: skip
    assert hooks[0].wants("timeline:bob") and not hooks[0].wants("user:bob")
    assert hooks[1].wants("user:bob") and settings.firehose.sqs[0].fifo
    assert settings.firehose.retry_initial_seconds == 0.5
    assert SECRET not in repr(settings.firehose)
    env = {
        "TIDINGS_FIREHOSE_WEBHOOK": json.dumps([{"url": "http://127.0.0.1:1/h", "secret": SECRET}])
    }
    assert load_settings(environ=env).firehose.webhook[0].url == "http://127.0.0.1:1/h"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (json.dumps([{"url": "ftp://x/y", "secret": SECRET}]), "firehose.webhook.0.url"),
        ('[{"url": "http://x/y", "secret": "hunter2"}]', "firehose.webhook.0.secret"),
        ('[{"url": "http://x/y", "secret": "whsec_AAAA"}]', "firehose.webhook.0.secret"),
        (json.dumps([{"url": "http://x/y", "secret": SECRET, "feed_groups": ["nope"]}]),
         "firehose.webhook.0.feed_groups"),
        ('[{"url": "http://x/y"}]', "firehose.webhook.0.secret"),
        ("not json", "firehose.webhook"),
        (json.dumps([{"url": "http://x/y", "secret": SECRET}] * 2), "firehose.webhook.1.url"),
    ],
)  # fmt: skip
def test_a_bad_endpoint_stops_the_start_with_its_key(value: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        load_settings(environ={"TIDINGS_FIREHOSE_WEBHOOK": value})
    assert "hunter2" not in str(caught.value)


def test_elements_are_streams_shape_one_per_wanted_feed() -> None:
    event = feed_update("user:a", new=[{"id": "1", "actor": "a", "ü": "é"}])
    update = (["t:1", "t:2", "x:3"], event)
    out = [json.loads(e.text) for e in elements(update, lambda f: f[0] == "t")]
    assert [e["feed"] for e in out] == ["t:1", "t:2"]
    assert all({**e, "feed": "user:a"} == event for e in out)


def _parts(texts: list[str]) -> list[Element]:
    return [Element(t, t) for t in texts]


def test_bodies_split_by_size_and_keep_every_element() -> None:
    parts = [json.dumps({"feed": f"t:{i}", "pad": "x" * 100}) for i in range(50)]
    out = bodies(_parts(parts), 1000)
    assert all(len(b.encode()) <= 1000 for b, _ in out) and len(out) > 1
    assert [e for b, _ in out for e in json.loads(b)] == [json.loads(p) for p in parts]
    assert [b for b, _ in bodies(_parts(["x" * 5000]), 1000)] == ["[" + "x" * 5000 + "]"]
    assert bodies([], 1000) == []


def test_a_feeds_update_too_big_for_a_message_is_split_by_activity() -> None:
    """One feed's update of a 500 KB batch: elements of that feed, each with some of its
    activities, each fitting a message of the limit on its own; a removal's `deleted` once."""
    new = [{"id": str(n), "text": "x" * 5000} for n in range(100)]
    event = {**feed_update("user:a", new=new), "deleted": ["gone"], "deleted_foreign_ids": ["f"]}
    for limit in (262_144, 65_536, 8192):
        out = list(elements((["user:a", "timeline:bob"], event), None, limit))
        assert all(len(e.text.encode()) + 2 <= limit for e in out), limit
        by_feed = [[json.loads(e.text) for e in out if json.loads(e.text)["feed"] == f]
                   for f in ("user:a", "timeline:bob")]  # fmt: skip
        for parts in by_feed:
            assert len(parts) > 1 and [a for p in parts for a in p["new"]] == new
            assert [p["deleted"] for p in parts].count(["gone"]) == 1
        assert [b for b, _ in bodies(out, limit)] and all(
            len(b.encode()) <= limit for b, _ in bodies(out, limit)
        )
    assert len(list(elements((["user:a"], event), None, None))) == 1  # no limit: whole


def test_message_ids_follow_what_the_update_says_not_when() -> None:
    """The same update again (a retried add: another `published_at`) has the same id; any
    other update, feed or endpoint another."""

    def ids(event: dict[str, object], feed: str = "user:a", endpoint: str = "webhook u") -> str:
        [(_, what)] = bodies(list(elements(([feed], event))), 250_000)
        return message_id(f"content\n{what}", endpoint, 0)

    activity = {"id": "1", "actor": "a", "verb": "post"}
    first = ids(feed_update("user:a", new=[activity]))
    again = {**feed_update("user:a", new=[activity]), "published_at": "2030-01-01T00:00:00"}
    assert ids(again) == first
    assert ids(feed_update("user:a", new=[{**activity, "score": 1}])) != first
    assert ids(feed_update("user:a", deleted=["1"])) != first
    assert ids(feed_update("user:a", new=[activity]), feed="user:b") != first
    assert ids(feed_update("user:a", new=[activity]), endpoint="sqs q") != first


def test_message_ids_are_stable_for_a_key() -> None:
    assert message_id("job\nsrc\nfeed", "webhook u", 0) == message_id(
        "job\nsrc\nfeed", "webhook u", 0
    )
    assert message_id("job\nsrc\nfeed", "webhook u", 0) != message_id(
        "job\nsrc\nfeed", "webhook u", 1
    )
    assert message_id("k", "webhook u", 0) != message_id("k", "sqs q", 0)
    signed = Webhook(SECRET).sign(message_id("k", "e", 0), datetime.now(UTC), "[]")
    assert signed.startswith("v1,")


def test_retries_back_off_exponentially_with_jitter_up_to_the_maximum() -> None:
    rand = random.Random(7)
    delays = [retry_delay(n, 5.0, 3600.0, rand) for n in range(20)]
    for n, delay in enumerate(delays):
        base = min(3600.0, 5.0 * 2**n)
        assert base / 2 <= delay <= base
    assert delays[-1] <= 3600.0
    assert len({round(retry_delay(3, 5.0, 3600.0, rand), 6) for _ in range(10)}) > 1


def test_fifo_group_ids_are_the_feed_or_a_digest_sqs_takes() -> None:
    from tidings.firehose.sqs import GROUP_ID, _group_id

    assert _group_id("timeline:bob") == "timeline:bob"
    other = _group_id("timeline:bjørn")
    assert GROUP_ID.fullmatch(other) and other != _group_id("timeline:bjorn")
    assert GROUP_ID.fullmatch(_group_id("user:" + "x" * 255))
