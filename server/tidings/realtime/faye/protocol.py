"""Bayeux 1.0 as the Faye client speaks it, and Stream's channels on it: pure, no I/O.

A request is one JSON message or an array of them; each `/meta/*` message is answered with a
reply of the same `channel` and `id`, `successful`, and `error` when it failed, written as the
Bayeux spec's `code:args:message` (`401:abc:Unknown client`). Handshake and connect replies
carry `advice` (`reconnect`, `interval`, `timeout` in milliseconds); a failed one advises
`reconnect: handshake`, which makes the client start over with a new `clientId` (as the faye
server does when it forgot a client).

Stream's SDKs subscribe to `/site-{app_id}-feed-{slug}{user_id}` (stream-js `feed.subscribe`:
`site-${appId}-feed-${slug}${userId}`), the feed's group and user id written together; the
group is found as in a token's compact `feed_id` (domain/feeds.py `scope_feed`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from ...domain.feeds import FeedId, scope_feed

BAYEUX_VERSION = "1.0"
CONNECTION_TYPES = ("long-polling", "cross-origin-long-polling", "callback-polling", "websocket")
HANDSHAKE, CONNECT = "/meta/handshake", "/meta/connect"
SUBSCRIBE, UNSUBSCRIBE, DISCONNECT = "/meta/subscribe", "/meta/unsubscribe", "/meta/disconnect"
MAX_MESSAGES = 64  # messages in one request (a client batches a few)
MAX_REQUEST_BYTES = 65536  # one request's JSON (subscribes carry a token each: ~0.5 KB)
MAX_SUBSCRIPTIONS = 100  # channels one client may hold
MAX_ID = 64  # longest message `id` echoed back
# The Bayeux channel grammar (faye's protocol/grammar.js): segments of these characters.
CHANNEL_RE = re.compile(r"^(/[A-Za-z0-9\-_!~()$@]+)+$")
ERROR_TEXT_RE = re.compile(r"[^A-Za-z0-9\-_!~()$@ /*.]")  # what an error's args and text may hold
JSONP_RE = re.compile(r"^[a-z_$][a-z0-9_$]*(\.[a-z_$][a-z0-9_$]*)*$", re.IGNORECASE)

Message = dict[str, Any]

# The error codes of the Bayeux spec, as faye's protocol/error.js names them.
VERSION_MISMATCH = (300, "Version mismatch")
CONNTYPE_MISMATCH = (301, "Connection types not supported")
BAD_REQUEST = (400, "Bad request")
CLIENT_UNKNOWN = (401, "Unknown client")
PARAMETER_MISSING = (402, "Missing required parameter")
CHANNEL_FORBIDDEN = (403, "Forbidden channel")
CHANNEL_INVALID = (405, "Invalid channel")
SERVER_ERROR = (500, "Internal server error")


class BayeuxError(Exception):
    """A message refused: `str()` is its `error` field."""

    def __init__(self, kind: tuple[int, str], *args: str, text: str | None = None) -> None:
        code, default = kind
        self.code = code
        clean = [ERROR_TEXT_RE.sub("", a)[:200] for a in args]
        message = ERROR_TEXT_RE.sub("", text if text is not None else default)[:200]
        super().__init__(f"{code}:{','.join(clean)}:{message}")


class BadRequest(ValueError):
    """A request that holds no Bayeux messages (answered 400, as faye's adapter does)."""


def parse_request(raw: str | bytes) -> list[Message]:
    """The messages of a request body (one message or an array), bounded."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise BadRequest(f"a request holds at most {MAX_REQUEST_BYTES} bytes")
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    messages = decoded if isinstance(decoded, list) else [decoded]
    if not messages or len(messages) > MAX_MESSAGES:
        raise BadRequest(f"a request holds 1 to {MAX_MESSAGES} messages")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("a Bayeux message is a JSON object")
    return messages


def reply(message: Message) -> Message:
    """The reply of `message` before it is handled (faye's `_makeResponse`)."""
    answer: Message = {"channel": message.get("channel")}
    if isinstance(message.get("id"), (str, int)) and len(str(message["id"])) <= MAX_ID:
        answer["id"] = message["id"]
    if isinstance(message.get("clientId"), str):
        answer["clientId"] = message["clientId"]
    answer["successful"] = True
    return answer


def failed(answer: Message, error: BayeuxError) -> Message:
    answer["successful"] = False
    answer["error"] = str(error)
    return answer


def advise(answer: Message, interval: float, timeout: float) -> Message:
    """Handshake and connect replies: `retry` after `interval`, a connect held up to `timeout`
    (seconds here, milliseconds on the wire); a failure says start over with a handshake."""
    if answer.get("channel") not in (HANDSHAKE, CONNECT):
        return answer
    if answer.get("successful"):
        answer["advice"] = {
            "reconnect": "retry", "interval": int(interval * 1000), "timeout": int(timeout * 1000),
        }  # fmt: skip
    else:
        answer["advice"] = {"reconnect": "handshake", "interval": int(interval * 1000)}
    return answer


def check_handshake(message: Message) -> None:
    if not message.get("version"):
        raise BayeuxError(PARAMETER_MISSING, "version")
    offered = message.get("supportedConnectionTypes")
    if not isinstance(offered, list):
        raise BayeuxError(PARAMETER_MISSING, "supportedConnectionTypes")
    if not any(kind in CONNECTION_TYPES for kind in offered):
        raise BayeuxError(CONNTYPE_MISMATCH, *(str(kind) for kind in offered[:8]))


def check_connection_type(message: Message) -> None:
    kind = message.get("connectionType")
    if not kind:
        raise BayeuxError(PARAMETER_MISSING, "connectionType")
    if kind not in CONNECTION_TYPES:
        raise BayeuxError(CONNTYPE_MISMATCH, str(kind))


def subscriptions(message: Message) -> list[str]:
    """The channels of a subscribe or unsubscribe (one or a list), each a valid name."""
    value = message.get("subscription")
    if not value:
        raise BayeuxError(PARAMETER_MISSING, "subscription")
    channels = value if isinstance(value, list) else [value]
    if len(channels) > MAX_SUBSCRIPTIONS:
        raise BayeuxError(BAD_REQUEST, text=f"at most {MAX_SUBSCRIPTIONS} channels at once")
    for channel in channels:
        if not isinstance(channel, str) or not CHANNEL_RE.match(channel):
            raise BayeuxError(CHANNEL_INVALID, str(channel))
        if channel.startswith(("/meta/", "/service/")):
            raise BayeuxError(CHANNEL_FORBIDDEN, channel)
    return channels


def channel_prefix(app_id: str) -> str:
    return f"/site-{app_id}-feed-"


def feed_channel(app_id: str, feed: str) -> str:
    """The channel Stream's SDKs subscribe to for `feed` (`group:user_id`)."""
    group, _, user_id = feed.partition(":")
    return f"{channel_prefix(app_id)}{group}{user_id}"


def channel_feed(channel: str, app_id: str, groups: Collection[str]) -> FeedId | None:
    """The feed of one of Stream's feed channels, None for any other channel."""
    prefix = channel_prefix(app_id)
    if not channel.startswith(prefix):
        return None
    return scope_feed(channel[len(prefix) :], groups)


def stream_data(event: dict[str, Any], app_id: str) -> dict[str, Any]:
    """A `feed.update` event as Stream publishes it on a feed's channel: the same fields (the
    event was modelled on Stream's messages) and the `app_id`."""
    return {**event, "app_id": app_id}


def jsonp_body(callback: str, replies: list[Message]) -> str:
    """A callback-polling answer (faye's adapter: a script calling `callback`)."""
    body = json.dumps(replies).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f"/**/{callback}({body});"
