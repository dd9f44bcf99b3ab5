"""Tidings' settings: typed, checked at start, built-in defaults < config file < environment <
command-line flags.

- `settings.py`: the frozen dataclasses the code reads (one per section of `default.toml`);
- `firehose.py`: the `[firehose]` section and its webhook and SQS endpoints;
- `limits.py`: the `[limits]` section (rate limits);
- `schema.py`: the marshmallow schemas that check every key and name a bad one;
- `loader.py`: `load_settings`, the one loader, and the packaged defaults (`default.toml`, data
  inside the package, so an installed wheel starts with them);
- `values.py`: what settings hold and the code around them reads: `Secret`, URLs for log lines,
  loopback hosts.
"""

from .firehose import FirehoseSettings, SqsEndpoint, WebhookEndpoint
from .limits import LimitSettings
from .loader import ENV_PREFIX, check_serving, defaults_text, load_settings, read_defaults
from .settings import (
    AGGREGATED,
    FLAT,
    FOLLOW_OPEN,
    FOLLOW_READERS,
    GROUPED_TYPES,
    NOTIFICATION,
    ActivitySettings,
    AuthSettings,
    CacheSettings,
    FanoutSettings,
    FeedGroup,
    MongoSettings,
    ObjectSettings,
    RealtimeSettings,
    RedisSettings,
    ServerSettings,
    Settings,
    allowed_origins,
)
from .values import ConfigError, Secret, is_loopback, url_location

__all__ = [
    "AGGREGATED",
    "ENV_PREFIX",
    "FLAT",
    "FOLLOW_OPEN",
    "FOLLOW_READERS",
    "GROUPED_TYPES",
    "NOTIFICATION",
    "ActivitySettings",
    "AuthSettings",
    "CacheSettings",
    "ConfigError",
    "FanoutSettings",
    "FeedGroup",
    "FirehoseSettings",
    "LimitSettings",
    "MongoSettings",
    "ObjectSettings",
    "RealtimeSettings",
    "RedisSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "SqsEndpoint",
    "WebhookEndpoint",
    "allowed_origins",
    "check_serving",
    "defaults_text",
    "is_loopback",
    "load_settings",
    "read_defaults",
    "url_location",
]
