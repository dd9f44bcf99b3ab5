"""The raid-room events of namespace "/", on both transports:

- `presence {feed, limit?, cursor?}` -> `{ok, feed, count, members: [{user_id, info,
  connections}], cursor}`: the room's members by user id, at most 1,000 a page; `cursor` (the
  last user id given, null on the last page) asks for the next;
- `publish {feed, activity}` -> `{ok: true, activity}` once the feed holds it: exactly the REST
  add (`FeedService.add_body`: validation, authorisation by the socket's token, ids,
  idempotency by foreign_id + time, fanout), errors as acks; at most `realtime.publish_rate` a
  second per socket (bursts of `publish_burst`), more are refused RateLimitReached at once.
"""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ...domain.errors import FeedConfigError, InputError, RateLimitError, TidingsError
from ...domain.feeds import USER_ID_RE, parse_feed_id
from ...feeds.service import FeedService
from ...metrics import SOCKET_PUBLISHES
from ..presence.service import DEFAULT_PAGE, MAX_PAGE, Presence
from ..transport.dispatch import Ack
from ..transport.peers import Peer
from ..transport.rate import TokenBucket
from .handlers import Event, grant_of, payload


class RaidEvents:
    def __init__(
        self,
        settings: Settings,
        service: FeedService,
        presence: Presence,
    ) -> None:
        self._groups = settings.feeds.keys()
        self._rate = settings.realtime.publish_rate
        self._burst = settings.realtime.publish_burst
        self._service, self.presence = service, presence

    def events(self) -> dict[str, Event]:
        """The socket events of raid rooms, for the handlers."""
        return {"presence": self.members, "publish": self.publish}

    async def members(self, peer: Peer, data: Any) -> Ack:
        data = payload(data, "{feed, limit?, cursor?}")
        feed = parse_feed_id(data.get("feed"), self._groups)
        grant_of(peer).require("feed", "read", feed)
        if not self.presence.enabled(feed):
            raise FeedConfigError(f"feed group {feed.group} has no presence (presence = false)")
        limit = data.get("limit", DEFAULT_PAGE)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InputError(f"limit must be an integer from 1 to {MAX_PAGE}",
                             {"limit": [f"from 1 to {MAX_PAGE}"]})  # fmt: skip
        cursor = data.get("cursor")
        if cursor is not None and not (isinstance(cursor, str) and USER_ID_RE.match(cursor)):
            raise InputError("cursor must be the cursor of a previous answer",
                             {"cursor": ["not a cursor"]})  # fmt: skip
        count, members, following = self.presence.page(str(feed), limit, cursor)
        return {"ok": True, "feed": str(feed), "count": count,
                "members": [m.public() for m in members], "cursor": following}  # fmt: skip

    async def publish(self, peer: Peer, data: Any) -> Ack:
        try:
            ack = await self._publish(peer, data)
        except RateLimitError:
            SOCKET_PUBLISHES.labels("limited").inc()
            raise
        except TidingsError:
            SOCKET_PUBLISHES.labels("refused").inc()
            raise
        SOCKET_PUBLISHES.labels("ok").inc()
        return ack

    async def _publish(self, peer: Peer, data: Any) -> Ack:
        data = payload(data, "{feed, activity}")
        grant = grant_of(peer)
        bucket = peer.bucket
        if bucket is None:
            bucket = peer.bucket = TokenBucket(self._rate, self._burst)
        if not bucket.take():
            raise RateLimitError(
                f"more than {self._rate:g} publishes a second on this socket; retry in "
                f"{bucket.retry_after():.2f} s"
            )
        feed = parse_feed_id(data.get("feed"), self._groups)
        activity = data.get("activity")
        if not isinstance(activity, dict) or ("activities" in activity and "actor" not in activity):
            raise InputError("activity must be one activity (an object)",
                             {"activity": ["expected one activity"]})  # fmt: skip
        added, _ = await self._service.add_body(feed, activity, grant)
        return {"ok": True, "activity": added[0]}
