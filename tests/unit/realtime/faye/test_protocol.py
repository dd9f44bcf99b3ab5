"""The pure parts of Tidings' Faye (realtime/faye/protocol.py) and its client registry."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tidings.domain.events import FEED_UPDATE, feed_update, marked
from tidings.domain.feeds import FeedId
from tidings.feeds.service import Missed
from tidings.realtime.faye import protocol as p
from tidings.realtime.faye.clients import MAX_INBOX, Clients
from tidings.realtime.transport.peers import Rooms

GROUPS = ["user", "timeline", "timeline_aggregated", "notification"]


def test_stream_channels_name_the_feed_with_its_group_and_user_together() -> None:
    assert p.feed_channel("93310", "timeline:42") == "/site-93310-feed-timeline42"
    assert p.channel_feed("/site-93310-feed-timeline42", "93310", GROUPS) == FeedId(
        "timeline", "42"
    )
    # The longest group that fits, as a token's compact feed id.
    assert p.channel_feed("/site-1-feed-timeline_aggregatedbob", "1", GROUPS) == FeedId(
        "timeline_aggregated", "bob"
    )
    assert p.channel_feed("/site-2-feed-timeline42", "1", GROUPS) is None  # another app
    assert p.channel_feed("/site-1-feed-photos42", "1", GROUPS) is None  # no such group
    assert p.channel_feed("/chat/room", "1", GROUPS) is None


def test_replies_echo_id_and_client_and_errors_follow_the_bayeux_grammar() -> None:
    message = {"channel": p.SUBSCRIBE, "id": "7", "clientId": "abc", "subscription": "/x"}
    answer = p.failed(p.reply(message), p.BayeuxError(p.CHANNEL_FORBIDDEN, "/x", text="no: way"))
    assert answer == {"channel": p.SUBSCRIBE, "id": "7", "clientId": "abc",
                      "successful": False, "error": "403:/x:no way"}  # fmt: skip
    assert str(p.BayeuxError(p.CLIENT_UNKNOWN, "a,b")) == "401:ab:Unknown client"
    assert "id" not in p.reply({"channel": p.CONNECT, "id": "x" * (p.MAX_ID + 1)})


def test_advice_retry_on_success_handshake_on_failure_only_for_handshake_and_connect() -> None:
    ok = p.advise(p.reply({"channel": p.CONNECT}), 0.0, 25.0)
    assert ok["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 25000}
    bad = p.advise(p.failed(p.reply({"channel": p.HANDSHAKE}),
                            p.BayeuxError(p.PARAMETER_MISSING, "version")), 0.0, 25.0)  # fmt: skip
    assert bad["advice"]["reconnect"] == "handshake"
    assert "advice" not in p.advise(p.reply({"channel": p.SUBSCRIBE}), 0.0, 25.0)


def test_handshake_and_connect_checks() -> None:
    p.check_handshake({"version": "1.0", "supportedConnectionTypes": ["websocket", "x"]})
    with pytest.raises(p.BayeuxError, match=r"^402:version:"):
        p.check_handshake({"supportedConnectionTypes": ["websocket"]})
    with pytest.raises(p.BayeuxError, match=r"^301:"):
        p.check_handshake({"version": "1.0", "supportedConnectionTypes": ["carrier-pigeon"]})
    with pytest.raises(p.BayeuxError, match=r"^402:connectionType:"):
        p.check_connection_type({})
    p.check_connection_type({"connectionType": "long-polling"})


@pytest.mark.parametrize(
    ("subscription", "error"),
    [(None, "402"), ("no-slash", "405"), ("/meta/connect", "403"), ("/service/x", "403"),
     (["/a"] * (p.MAX_SUBSCRIPTIONS + 1), "400"), ([7], "405")],
)  # fmt: skip
def test_subscriptions_are_valid_channels(subscription: Any, error: str) -> None:
    with pytest.raises(p.BayeuxError, match=rf"^{error}:"):
        p.subscriptions({"subscription": subscription})


def test_requests_are_bounded_and_hold_objects() -> None:
    assert p.parse_request('{"channel": "/meta/handshake"}') == [{"channel": "/meta/handshake"}]
    for raw in ("[]", "[1]", "nope", json.dumps([{}] * (p.MAX_MESSAGES + 1)),
                "[" + " " * p.MAX_REQUEST_BYTES + "{}]"):  # fmt: skip
        with pytest.raises(p.BadRequest):
            p.parse_request(raw)


def test_jsonp_answers_call_the_callback_and_escape_line_separators() -> None:
    body = p.jsonp_body("cb.f", [{"data": "a\u2028b"}])
    assert body.startswith("/**/cb.f(") and body.endswith(");") and "\u2028" not in body
    assert p.JSONP_RE.match("jsonpcallback") and not p.JSONP_RE.match("alert(1)")


def test_marks_are_named_as_streams_messages_name_them() -> None:
    event = marked(feed_update("notification:1"), True, ["g1"])
    assert (event["mark_seen"], event["mark_read"]) == ("all", ["g1"])
    assert "mark_seen" not in marked(feed_update("notification:1"), False, False)


async def _missed(feed: FeedId, since: str, limit: int) -> Missed:
    return Missed([{"id": "ffffffff-ffff-0000-0000-000000000000"}], more=False)


async def test_a_client_gets_stream_messages_of_its_channels_through_its_connect() -> None:
    rooms = Rooms()
    clients = Clients(rooms, "1", 25.0, _missed, 100)
    client = clients.create()
    assert client is not None
    clients.subscribed(client, "user:1", "/site-1-feed-user1")
    waiting = asyncio.ensure_future(clients.connect(client, 5.0))
    await asyncio.sleep(0)
    event = feed_update("user:1", new=[{"id": "a"}])
    await clients.emit(client, FEED_UPDATE, event)
    await clients.emit(client, FEED_UPDATE, feed_update("user:2"))  # not subscribed: dropped
    messages = await asyncio.wait_for(waiting, 1)
    assert messages == [{"channel": "/site-1-feed-user1", "data": {**event, "app_id": "1"}}]
    assert await clients.connect(client, 0) == []  # nothing more, answered at once


async def test_a_newer_connect_ends_the_older_and_a_forgotten_client_leaves_its_rooms() -> None:
    rooms = Rooms()
    clients = Clients(rooms, "1", 25.0, _missed, 100)
    client = clients.create()
    assert client is not None
    older = asyncio.ensure_future(clients.connect(client, 5.0))
    await asyncio.sleep(0)
    newer = asyncio.ensure_future(clients.connect(client, 5.0))
    assert await asyncio.wait_for(older, 1) == []
    rooms.join(client, "feed:user:1")
    clients.forget(client)
    assert await asyncio.wait_for(newer, 1) == []
    assert not rooms.members("feed:user:1") and clients.get(client.sid) is None


async def test_a_resync_sends_what_was_missed_and_a_client_that_does_not_read_is_dropped() -> None:
    clients = Clients(Rooms(), "1", 25.0, _missed, 100)
    client = clients.create()
    assert client is not None
    clients.subscribed(client, "user:1", "/site-1-feed-user1")
    await clients.resync(client)
    (message,) = await clients.connect(client, 0)
    assert message["data"]["new"] == [{"id": "ffffffff-ffff-0000-0000-000000000000"}]
    assert client.last["user:1"] == "ffffffff-ffff-0000-0000-000000000000"
    for _ in range(MAX_INBOX + 1):
        clients.deliver(client, feed_update("user:1"))
    assert clients.get(client.sid) is None
