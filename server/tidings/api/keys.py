"""Typed application state: every shared object of the aiohttp app, by `web.AppKey`."""

from __future__ import annotations

from aiohttp import web

from ..bus.base import Bus
from ..bus.node_stats import StatsBoard
from ..config import Settings
from ..fanout.runner import FanoutRunner
from ..feeds.enrich import Enricher
from ..feeds.privacy import DataPrivacy
from ..feeds.reactions import Reactions
from ..feeds.service import FeedService
from ..firehose.outbox import Firehose
from ..media.service import MediaService
from ..objects.service import Objects
from ..og.previews import LinkPreviews
from ..ratelimit import Limiter
from ..realtime.broadcaster import Broadcaster
from ..realtime.presence.service import Presence
from ..realtime.transport.heartbeat import Heartbeat
from ..realtime.transport.hub import Hub
from ..realtime.transport.sio import Server
from ..store.mongo.client import Database

SETTINGS = web.AppKey("settings", Settings)
NODE_ID = web.AppKey("node_id", str)  # this process's, in job leases and Redis publishes
DATABASE = web.AppKey("database", Database)
SERVICE = web.AppKey("service", FeedService)
RUNNER = web.AppKey("runner", FanoutRunner)
SIO = web.AppKey("sio", Server)
HUB = web.AppKey("hub", Hub)
BROADCASTER = web.AppKey("broadcaster", Broadcaster)
BUS = web.AppKey("bus", Bus)  # the other nodes: Redis, or this node alone
HEARTBEAT = web.AppKey("heartbeat", Heartbeat)
PRESENCE = web.AppKey("presence", Presence)
FIREHOSE = web.AppKey("firehose", Firehose)  # the outbox writer (a no-op with no endpoints)
STATS = web.AppKey("stats", StatsBoard)  # this node's reports, and the others' (admin stats)
MEDIA = web.AppKey("media", MediaService)  # uploaded files and images (api/media.py)
PREVIEWS = web.AppKey("previews", LinkPreviews)  # og/ link previews
OBJECTS = web.AppKey("objects", Objects)  # users and collection entries (objects/)
REACTIONS = web.AppKey("reactions", Reactions)  # the Reactions API's use cases
ENRICHER = web.AppKey("enricher", Enricher)  # enriched reads (feeds/enrich.py)
PRIVACY = web.AppKey("privacy", DataPrivacy)  # data_privacy/ (feeds/privacy.py)
LIMITER = web.AppKey("limiter", Limiter)  # the rate limits (ratelimit/, api/limits.py)
