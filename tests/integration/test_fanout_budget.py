"""Push or pull by a time budget (`fanout.push_budget_ms`): a feed goes pull once its push would
take longer than the budget at the fanout rate the node measures from its own batches, so a
slow store makes a feed switch at a follower count that a fast store pushes to.

A real server on the embedded store, with bounds set low (never pull at 10 followers or fewer,
always above 1000) and a hold point inside the metered bulk insert of every fanout batch
(`fanout.insert`): open while the store is "fast", each batch held for a while once it is
"slow". Nothing is lost or doubled across the switch: every follower feed reads each activity
exactly once. Once the store is fast again (measured from other feeds' pushes), the feed goes
back to push, again with nothing lost or doubled.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import requests
from pymongo import MongoClient

from harness.server import Spawn
from tests.integration.fanout_support import (
    add_followers,
    follower_feeds,
    post_activity,
    read_ids,
    wait_jobs_gone,
)
from tests.support import ServerProcess, Store, wait_until

Doc = dict[str, Any]
FOLLOWERS = 60  # three batches of 20
BUDGET_MS = 1000  # a fast store here is one that writes 60 entries a second: any loaded machine
SLOW_BATCH = 1.0  # seconds each insert is held once the store is slow (two at a time: 40/s)
RATE = re.compile(r"^tidings_fanout_rate_entries_per_second (\S+)$", re.MULTILINE)


def measured_rate(node: ServerProcess) -> float:
    text = requests.get(node.url + "/metrics", timeout=5).text
    found = RATE.search(text)
    assert found is not None, "no fanout rate in /metrics"
    return float(found[1])


class SlowStore:
    """Holds every fanout insert SLOW_BATCH seconds while started; lets them all go otherwise."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.opened = folder / "fanout.insert.open"
        self.opened.touch()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.opened.unlink()
        self._stop.clear()
        self._thread = threading.Thread(target=self._release, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.opened.touch()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _release(self) -> None:
        seen: dict[Path, float] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            for held in self.folder.glob("fanout.insert.*.held"):
                release = held.with_suffix(".release")
                if release.exists():
                    continue
                if now - seen.setdefault(held, now) >= SLOW_BATCH:
                    release.touch()
            time.sleep(0.01)


def test_a_slow_store_makes_a_feed_switch_to_pull_at_a_count_a_fast_one_pushes_to(
    spawn: Spawn, store: Store, mongo: MongoClient[Doc], uid: str, tmp_path: Path
) -> None:
    slow = SlowStore(tmp_path)
    node = spawn({
        "TIDINGS_FANOUT_PUSH_BUDGET_MS": str(BUDGET_MS),
        "TIDINGS_FANOUT_MIN_PULL_FOLLOWERS": "10",
        "TIDINGS_FANOUT_PULL_THRESHOLD": "1000",
        "TIDINGS_FANOUT_PUSH_THRESHOLD": "800",
        "TIDINGS_FANOUT_BATCH_SIZE": "20",
        "TIDINGS_FANOUT_CONCURRENCY": "2",
        "TIDINGS_TEST_FAULT": "fanout.insert:hold",
        "TIDINGS_TEST_HOLD_DIR": str(tmp_path),
    })  # fmt: skip
    db = mongo[node.database]
    celeb, feeds = f"user:{uid}", follower_feeds(uid, FOLLOWERS)
    add_followers(store, db, celeb, feeds)

    def mode() -> str:
        doc = db["feeds"].find_one({"_id": celeb}) or {}
        return str(doc.get("mode", "push"))

    def switching() -> bool:
        return db["fanout_jobs"].count_documents({"kind": {"$in": ["to_pull", "to_push"]}}) > 0

    posted: list[str] = []

    def post(n: int, feed: str = celeb) -> None:
        body = {"actor": uid, "verb": "post", "object": f"note:{n}"}
        aid = str(post_activity(node, feed, body)["id"])
        if feed == celeb:
            posted.append(aid)
        wait_jobs_gone(db, aid)
        wait_until(lambda: not switching(), 30, 0.02, what="the mode switch to end")

    # A fast store: each add is metered, and the feed stays push.
    for n in range(6):
        post(n)
        assert mode() == "push"
    fast = measured_rate(node)
    assert fast * BUDGET_MS / 1000 > FOLLOWERS, f"pushes measured at {fast:.0f}/s"

    # A slow store: the same count goes pull within a few adds.
    slow.start()
    try:
        for n in range(6, 20):
            post(n)
            if mode() == "pull":
                break
        assert mode() == "pull", f"still push at {measured_rate(node):.0f}/s"
        slowed = measured_rate(node)
        assert slowed * BUDGET_MS / 1000 < FOLLOWERS
        switched_after = len(posted) - 6
        for n in range(20, 23):  # pull: merged in at read time, no fanout
            post(n)
    finally:
        slow.stop()

    # The store is fast again: other feeds' pushes measure it, and the next add goes back to
    # push (its followers are backfilled with what they merged in).
    other = f"user:{uid}other"
    add_followers(store, db, other, follower_feeds(f"{uid}o", FOLLOWERS))
    for n in range(16):  # as many as a loaded machine needs to measure it fast again
        post(100 + n, other)
        again = measured_rate(node)
        if again * BUDGET_MS / 1000 * 0.8 > FOLLOWERS:
            break
    # A machine busy with other work may not measure the store fast again (the rate is real):
    # then the feed stays pull, and what follows still holds every activity once.
    recovered = again * BUDGET_MS / 1000 * 0.8 > FOLLOWERS
    for n in range(23, 25):
        post(n)
    if recovered:
        # (an add's check runs off its answer: its switch may start after the add's job ended)
        wait_until(lambda: mode() == "push" and not switching(), 30, 0.02, what="push again")
    print(
        f"fast {fast:.0f} entries/s, slow {slowed:.0f} entries/s (pull after {switched_after} "
        f"slow adds), fast again {again:.0f} entries/s"
    )

    # Nothing lost or doubled across the switches, newest first, in every follower feed.
    expected = posted[::-1]
    for feed in feeds:
        assert read_ids(node, feed) == expected, feed
    held = db["feed_entries"].aggregate([
        {"$match": {"feed": {"$in": feeds}}},
        {"$group": {"_id": {"feed": "$feed", "activity": "$activity_id"}, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
    ])  # fmt: skip
    assert list(held) == []
