"""Per-feed metadata (`feeds`): follower count, follower chunk slots, fanout mode.

`{_id: feed, followers, slots, mode, period, pull_since, max_id, switching?}`:
- `followers`: how many feeds follow it (moves by one per follow / unfollow stored). It is
  written apart from the follows, so a crash between the two leaves it off: `changed_at` (the
  time of the last follow or unfollow begun) marks a feed whose counter is recounted from its
  follows once no change is in flight any more (FollowStore.repair_counters), and a switch of
  mode is decided on a recount too;
- `slots`: follower chunk slots handed out so far (never decreases): slot k is in chunk
  k // CHUNK_SIZE (store/mongo/follows.py), so the chunks of a feed are 0..(slots-1)//CHUNK_SIZE;
  `holes`: the chunks of slots that unfollows freed (one entry per slot, at most MAX_HOLES),
  taken by new follows before any new slot: follow and unfollow cycles do not grow the chunks
  (a hole lost in a crash only wastes its slot);
- `mode`: "push" (activities are copied into follower feeds), "pull" (readers merge them in),
  or "draining" (going back to push: copied again, and still merged until the follower feeds
  have been backfilled); `switching`: on the way from push to pull;
- `period`: how many times it became a pull feed; `pull_since`: its newest own activity id when
  it last did (what its older followers already hold);
- `max_id`: the highest activity id it was given since it has had followers: an id at or below
  it is *back-dated* (or a repeat) and must be copied even into a pull feed's followers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from .client import Database, Document

PUSH, PULL, DRAINING = "push", "pull", "draining"


UPSERT_TRIES = 5
MAX_HOLES = 1000


@dataclass(frozen=True)
class FeedMeta:
    feed: str
    followers: int = 0
    slots: int = 0
    mode: str = PUSH
    period: int = 0
    pull_since: str = ""
    max_id: str = ""
    switching: bool = False

    @property
    def merged(self) -> bool:
        """Readers of its follower feeds merge its activities in."""
        return self.mode in (PULL, DRAINING)

    @property
    def pulls(self) -> bool:
        """A pull feed with followers: its new activities go to no fanout job, its followers'
        readers merge them in (and its updates go to its pull room)."""
        return self.mode == PULL and bool(self.slots)

    def merges(self, pulled: int | None) -> bool:
        """An entry of this feed marked `pulled` in that pull period is merged into its
        followers, not copied (their copies come from no fanout job)."""
        return self.pulls and pulled == self.period

    @property
    def pull_rooms(self) -> bool:
        """Its subscribers and its followers' get (or are about to get) its pull updates."""
        return self.merged or self.switching


def _meta(feed: str, doc: Document | None) -> FeedMeta:
    if doc is None:
        return FeedMeta(feed)
    return FeedMeta(
        feed=feed,
        followers=int(doc.get("followers", 0)),
        slots=int(doc.get("slots", 0)),
        mode=str(doc.get("mode", PUSH)),
        period=int(doc.get("period", 0)),
        pull_since=str(doc.get("pull_since", "")),
        max_id=str(doc.get("max_id", "")),
        switching=bool(doc.get("switching")),
    )


class FeedMetaStore:
    def __init__(self, db: Database) -> None:
        self.feeds = db["feeds"]

    async def get(self, feed: str) -> FeedMeta:
        return _meta(feed, await self.feeds.find_one({"_id": feed}))

    async def get_many(self, feeds: Iterable[str]) -> dict[str, FeedMeta]:
        """The metadata of `feeds` (a feed never followed has the defaults)."""
        wanted = list(dict.fromkeys(feeds))
        found = {d["_id"]: d async for d in self.feeds.find({"_id": {"$in": wanted}})}
        return {feed: _meta(feed, found.get(feed)) for feed in wanted}

    async def mark_changing(self, feed: str) -> None:
        """A follow or unfollow of `feed` begins: its counter is to be recounted once it is
        settled (it may crash between its writes)."""
        await self.feeds.update_one({"_id": feed}, {"$max": {"changed_at": datetime.now(UTC)}})

    async def changed_before(self, when: datetime, limit: int) -> list[tuple[str, datetime]]:
        """Feeds marked changing, whose last change began before `when` (index read)."""
        docs = self.feeds.find({"changed_at": {"$lt": when}}, {"changed_at": 1}, limit=limit)
        return [(d["_id"], d["changed_at"]) async for d in docs]

    async def settle(self, feed: str, changed_at: datetime, followers: int) -> bool:
        """Set the counter from a recount, unless a change began since `changed_at`."""
        result = await self.feeds.update_one(
            {"_id": feed, "changed_at": changed_at},
            {"$set": {"followers": followers}, "$unset": {"changed_at": ""}},
        )
        return result.modified_count == 1

    async def take_hole(self, feed: str) -> int | None:
        """Take a slot an unfollow freed: answer its chunk (None: there is none)."""
        doc = await self.feeds.find_one_and_update(
            {"_id": feed, "holes.0": {"$exists": True}},
            {"$pop": {"holes": 1}, "$max": {"changed_at": datetime.now(UTC)}},
            {"holes": 1},
        )  # the document before the update: its last hole is the one taken
        return None if doc is None else int(doc["holes"][-1])

    async def add_hole(self, feed: str, chunk: int) -> None:
        """An unfollow freed a slot in `chunk`."""
        await self.feeds.update_one(
            {"_id": feed}, {"$push": {"holes": {"$each": [chunk], "$slice": -MAX_HOLES}}}
        )

    async def take_slots(self, feed: str, count: int) -> int:
        """Hand out `count` follower chunk slots; answer the first.

        Concurrent first follows of one feed race on the upsert: MongoDB may answer one of them
        with a duplicate key error and the embedded store with no document; both are retried."""
        for _ in range(UPSERT_TRIES):
            try:
                doc = await self.feeds.find_one_and_update(
                    {"_id": feed},
                    {
                        "$inc": {"slots": count},
                        "$max": {"changed_at": datetime.now(UTC)},  # see mark_changing
                        "$setOnInsert": {
                            "followers": 0,
                            "mode": PUSH,
                            "period": 0,
                            "pull_since": "",
                        },
                    },
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue
            if doc is not None:
                return int(doc["slots"]) - count
        raise RuntimeError(f"could not take follower slots of {feed}")

    async def take_many(self, feed: str, count: int, chunk_size: int) -> tuple[list[int], FeedMeta]:
        """`count` new follows of `feed` at once: take that many chunk slots (holes first, the
        last ones first, as take_hole does; then new slots), count them as followers and mark
        the feed changing, in ONE write to its document. Answers the chunk of each slot and
        the metadata after the write. The holes are taken by compare-and-set on the list (at
        most MAX_HOLES entries): a concurrent change of the holes retries with a fresh read."""
        for _ in range(UPSERT_TRIES):
            doc = await self.feeds.find_one({"_id": feed}, {"holes": 1})
            holes = [int(h) for h in (doc or {}).get("holes", ())]
            reuse = min(count, len(holes))
            now = datetime.now(UTC)
            update: Document = {
                "$inc": {"slots": count - reuse, "followers": count},
                "$max": {"changed_at": now},  # see mark_changing
            }
            if reuse:
                query: Document = {"_id": feed, "holes": holes}
                update["$set"] = {"holes": holes[: len(holes) - reuse]}
            else:
                query = {"_id": feed}
                update["$setOnInsert"] = {"mode": PUSH, "period": 0, "pull_since": ""}
            try:
                after = await self.feeds.find_one_and_update(
                    query, update, upsert=not reuse, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:  # concurrent first follows raced on the upsert
                continue
            if after is None:  # the holes changed meanwhile (or the embedded store's race)
                continue
            first = int(after["slots"]) - (count - reuse)
            taken = holes[len(holes) - reuse :][::-1]
            chunks = taken + [(first + i) // chunk_size for i in range(count - reuse)]
            return chunks, _meta(feed, after)
        raise RuntimeError(f"could not take follower slots of {feed}")

    async def give_back(self, feed: str, chunks: list[int]) -> None:
        """Slots taken by take_many that no follow used (a concurrent first follow of the same
        feeds won): holes again, and not followers."""
        if chunks:
            await self.feeds.update_one(
                {"_id": feed},
                {
                    "$push": {"holes": {"$each": chunks, "$slice": -MAX_HOLES}},
                    "$inc": {"followers": -len(chunks)},
                },
            )

    async def release(self, feed: str, holes: list[int], followers: int) -> FeedMeta:
        """Unfollows of `feed` deleted `followers` follows and freed the slots of `holes`: one
        write of its document (the holes for the next follows, the counter); the metadata
        after."""
        update: Document = {"$inc": {"followers": -followers}}
        if holes:
            update["$push"] = {"holes": {"$each": holes, "$slice": -MAX_HOLES}}
        doc = await self.feeds.find_one_and_update(
            {"_id": feed}, update, return_document=ReturnDocument.AFTER
        )
        return _meta(feed, doc)

    async def count(self, feed: str, delta: int) -> FeedMeta:
        doc = await self.feeds.find_one_and_update(
            {"_id": feed}, {"$inc": {"followers": delta}}, return_document=ReturnDocument.AFTER
        )
        return _meta(feed, doc)

    async def set_followers(self, feed: str, followers: int) -> FeedMeta:
        """Repair the follower counter (see FollowStore.recount)."""
        doc = await self.feeds.find_one_and_update(
            {"_id": feed}, {"$set": {"followers": followers}}, return_document=ReturnDocument.AFTER
        )
        return _meta(feed, doc)

    async def raise_max(self, feed: str, activity_id: str) -> str:
        """Record that `feed` holds `activity_id`; answer the highest id it held before."""
        doc = await self.feeds.find_one_and_update(
            {"_id": feed}, {"$max": {"max_id": activity_id}}, {"max_id": 1}
        )
        return "" if doc is None else str(doc.get("max_id", ""))

    async def raise_max_many(self, highest: Mapping[str, str]) -> None:
        """`raise_max` of many feeds (feed → the highest id it holds) in one unordered bulk
        write, the ids held before unanswered: a bulk follow's targets, an import's feeds."""
        if highest:
            await self.feeds.bulk_write(
                [UpdateOne({"_id": f}, {"$max": {"max_id": i}}) for f, i in highest.items()],
                ordered=False,
            )

    async def start_switch(self, feed: str) -> FeedMeta | None:
        """Push → switching (to pull); None when the feed is not a push feed."""
        doc = await self.feeds.find_one_and_update(
            {"_id": feed, "mode": PUSH},
            {"$set": {"switching": True}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _meta(feed, doc)

    async def flip_to_pull(self, feed: str) -> bool:
        """Switching → pull: a new period, since the newest activity the feed holds."""
        while True:
            meta = await self.get(feed)
            if meta.mode != PUSH:
                return False
            result = await self.feeds.update_one(
                {"_id": feed, "mode": PUSH, "max_id": {"$in": [meta.max_id, None]}},
                {
                    "$set": {"mode": PULL, "pull_since": meta.max_id, "max_id": meta.max_id},
                    "$inc": {"period": 1},
                    "$unset": {"switching": ""},
                },
            )
            if result.modified_count == 1:
                return True
            # An insert raised max_id meanwhile: read it again.

    async def start_draining(self, feed: str) -> FeedMeta | None:
        """Pull → draining (back to push); None when the feed is not a pull feed."""
        doc = await self.feeds.find_one_and_update(
            {"_id": feed, "mode": PULL},
            {"$set": {"mode": DRAINING}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _meta(feed, doc)

    async def flip_to_push(self, feed: str, period: int) -> bool:
        result = await self.feeds.update_one(
            {"_id": feed, "mode": DRAINING, "period": period}, {"$set": {"mode": PUSH}}
        )
        return result.modified_count == 1
