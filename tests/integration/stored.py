"""What a write may leave in the store for some feeds, collection by collection: the helper of
every "bad input stores nothing" check, so that a refused write is seen to leave nothing
anywhere (an activity, an entry, a fanout job, a firehose message, a group, a follow), not only
in the collections of activities and entries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

Counts = dict[str, int]


def stored(db: Any, feeds: Iterable[str]) -> Counts:
    """How many documents of each collection concern `feeds`, straight from the store (a
    pymongo database): activities added to them (either document shape), their entries, fanout
    jobs from them, firehose messages naming them, their groups, and follows from or to them."""
    wanted = {"$in": list(feeds)}
    named = {"$regex": "|".join(re.escape(json.dumps(feed)) for feed in wanted["$in"])}
    queries: dict[str, dict[str, Any]] = {
        "activities": {"$or": [{"feed": wanted}, {"owners.feed": wanted}]},
        "feed_entries": {"feed": wanted},
        "fanout_jobs": {"sources": wanted},
        "deliveries": {"body": named},
        "feed_groups": {"feed": wanted},
        "follows": {"$or": [{"source": wanted}, {"target": wanted}]},
    }
    return {name: int(db[name].count_documents(query)) for name, query in queries.items()}


NOTHING: Counts = dict.fromkeys(
    ("activities", "feed_entries", "fanout_jobs", "deliveries", "feed_groups", "follows"), 0
)
