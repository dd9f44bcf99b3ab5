"""`tidings export`: the store as an import file (transfer/records.py), kind by kind in the
order an import needs them: users, collection entries, activities feed by feed (each as a read
of that feed answers it, `origin` naming the followed feed of a copy), follows, reactions
(parents before their children).

Follows are written with `activity_copy_limit: 0`: what the follower feeds hold is in the file
already, as their own activities' lines, so an import of the file into an empty store holds
the same feeds (and not also the copies a follow would add of older activities).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any

from ..store.mongo.collections import EntryStore
from ..store.mongo.dump import Dump
from ..store.mongo.reactions import ReactionStore
from ..store.mongo.users import UserStore


@dataclass(frozen=True)
class Sources:
    dump: Dump
    users: UserStore
    entries: EntryStore
    reactions: ReactionStore


async def records(sources: Sources) -> AsyncIterator[dict[str, Any]]:
    async for user in sources.users.scan():
        yield {"type": "user", "user": user.public()}
    async for entry in sources.entries.scan():
        body = entry.public()
        if entry.user_id is not None:
            body["user_id"] = entry.user_id
        yield {"type": "collection", "collection": body}
    async for feed, activity in sources.dump.feed_activities():
        yield {"type": "activity", "feed": feed, "activity": activity}
    async for follow in sources.dump.follows_all():
        yield {"type": "follow", "follow": {**follow.public(), "activity_copy_limit": 0}}
    async for reaction in sources.reactions.scan():
        yield {"type": "reaction", "reaction": reaction.public(extra_data=True)}


async def export(sources: Sources, out: IO[str]) -> Counter[str]:
    """Write every record, one line each; answer how many of each kind."""
    counts: Counter[str] = Counter()
    async for record in records(sources):
        out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
        counts[record["type"]] += 1
    out.flush()
    return counts
