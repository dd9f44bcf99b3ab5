"""What every use case of feeds/ works with: one small object, built once by the app."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..domain.events import Broadcaster
from ..fanout.runner import FanoutRunner
from ..store.mongo.activities import ActivityStore
from ..store.mongo.follows import FollowStore
from ..store.mongo.jobs import JobStore
from .announce import Announcer


@dataclass(frozen=True)
class FeedContext:
    settings: Settings
    activities: ActivityStore
    follows: FollowStore
    jobs: JobStore
    runner: FanoutRunner  # starts the fanout jobs a write creates
    announcer: Announcer  # "the feeds now hold it": firehose, then sockets
    broadcaster: Broadcaster  # follow changes, which are no feed updates
