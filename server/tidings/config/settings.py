"""The typed settings: frozen dataclasses, one per section of the defaults file
(default.toml beside this module), built once at start by `load_settings` (loader.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..domain.aggregation import AggregationFormat
from ..domain.feeds import PRIVATE
from .firehose import FirehoseSettings
from .limits import LimitSettings
from .media import MediaSettings, OgSettings
from .values import Secret


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    data_dir: Path
    cors_allowed_origins: str
    max_body_bytes: int
    shutdown_timeout: float
    workers: int
    reuse_port: bool
    max_url_bytes: int = 65536


@dataclass(frozen=True)
class MongoSettings:
    url: Secret
    database: str
    embedded_cache_size: str
    write_concern: str
    journal: bool


@dataclass(frozen=True)
class RedisSettings:
    url: Secret
    channel: str
    routed_rooms: int = 64  # events for at most this many rooms go to the nodes holding them


@dataclass(frozen=True)
class AuthSettings:
    api_key: str
    api_secret: Secret


@dataclass(frozen=True)
class FanoutSettings:
    batch_size: int
    concurrency: int
    lease_seconds: float
    poll_seconds: float
    default_copy_limit: int
    max_copy_limit: int
    pull_threshold: int
    push_threshold: int
    max_following: int
    max_follow_many: int = 2500
    sync_max_feeds: int = 1000
    sync_budget_ms: float = 50.0
    active_first: bool = True
    active_seconds: float = 300.0
    push_budget_ms: float = 250.0
    min_pull_followers: int = 250


@dataclass(frozen=True)
class RealtimeSettings:
    fast_websocket: bool
    websocket_compression: bool
    ping_interval: float
    ping_timeout: float
    max_missed: int
    max_queue_packets: int
    max_queue_bytes: int
    write_buffer_bytes: int
    gc_threshold: int
    token_grace_seconds: float
    connect_timeout: float
    max_events_in_flight: int
    presence_ttl: float = 15.0
    presence_info_bytes: int = 1024
    publish_rate: float = 10.0
    publish_burst: int = 20
    faye_app_id: str = "tidings"
    faye_timeout: float = 25.0


@dataclass(frozen=True)
class ActivitySettings:
    max_bytes: int
    max_to: int
    max_batch: int = 100
    max_batch_bytes: int = 524288
    max_future_seconds: float = 600.0
    max_offset: int = 1000
    max_ids: int = 100
    max_changes: int = 100
    max_add_to_many_feeds: int = 5000
    max_stats_slugs: int = 50


@dataclass(frozen=True)
class CacheSettings:
    """Each node's memory of the store (store/activity_cache.py, store/feed_heads.py)."""

    max_staleness_seconds: float = 2.0
    activities_mb: float = 64.0
    heads_mb: float = 64.0


@dataclass(frozen=True)
class ObjectSettings:
    """Users and collection entries (objects/)."""

    max_bytes: int = 10240
    max_batch: int = 1000


FLAT, AGGREGATED, NOTIFICATION = "flat", "aggregated", "notification"
GROUPED_TYPES = (AGGREGATED, NOTIFICATION)
# Who may follow a group's feeds: whoever may write the follower feed (Stream's rule), or only
# a token that may read the followed feed too (private feeds: raid rooms).
FOLLOW_OPEN, FOLLOW_READERS = "open", "readers"


@dataclass(frozen=True)
class FeedGroup:
    """A feed group. Aggregated and notification groups (`aggregation` set) keep groups of
    activities (store/groups.py); `max_length` bounds the groups of one feed."""

    name: str
    type: str = FLAT
    followable: bool = True
    follow: str = FOLLOW_OPEN
    realtime: bool = True
    presence: bool = False
    aggregation: AggregationFormat | None = None
    max_length: int = 100
    client_permissions: str = PRIVATE  # a user token and other users' feeds (domain/feeds.py)

    @property
    def grouped(self) -> bool:
        return self.aggregation is not None


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    mongodb: MongoSettings
    redis: RedisSettings
    auth: AuthSettings
    fanout: FanoutSettings
    realtime: RealtimeSettings
    activities: ActivitySettings
    feeds: Mapping[str, FeedGroup] = field(default_factory=dict)
    firehose: FirehoseSettings = field(default_factory=FirehoseSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    og: OgSettings = field(default_factory=OgSettings)
    objects: ObjectSettings = field(default_factory=ObjectSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)


def allowed_origins(settings: Settings) -> list[str] | None:
    """The CORS origins of `server.cors_allowed_origins`; None for any."""
    origins = settings.server.cors_allowed_origins
    if origins.strip() == "*":
        return None
    return [o.strip() for o in origins.split(",") if o.strip()]
