"""Settings: built-in defaults < config file < environment < command-line flags.

`load_settings` is the one loader. Every key is checked by a marshmallow schema at start, and a bad
value fails with the key's full name (`fanout.batch_size: Must be greater than or equal to 1.`).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from .config_firehose import FirehoseSchema, FirehoseSettings, check_feed_groups
from .domain.aggregation import DEFAULT_FORMAT, AggregationFormat, AggregationFormatError

DEFAULTS_FILE = Path(__file__).resolve().parents[2] / "config" / "default.toml"
ENV_PREFIX = "TIDINGS_"
GROUP_NAME = r"^[a-z0-9_]{1,32}$"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class Secret(str):
    """A string that never shows itself in a repr or a log line."""

    def __repr__(self) -> str:
        return "Secret('**********')"


def url_location(url: str) -> str:
    """The host:port of a service URL (a Unix socket's path), for log lines: never its
    credentials, database or options."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "?"
    return parts.netloc.rpartition("@")[2] or "?"


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


class _Section(Schema):
    class Meta:
        unknown = RAISE


def _positive(**kw: Any) -> Any:
    return validate.Range(min=1, **kw)


class _ServerSchema(_Section):
    host = fields.String(required=True)
    port = fields.Integer(required=True, validate=validate.Range(min=0, max=65535))
    data_dir = fields.String(required=True)
    cors_allowed_origins = fields.String(required=True)
    max_body_bytes = fields.Integer(required=True, validate=_positive())
    shutdown_timeout = fields.Float(required=True, validate=validate.Range(min=0))
    workers = fields.Integer(required=True, validate=_positive(max=256))
    reuse_port = fields.Boolean(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ServerSettings:
        return ServerSettings(**{**data, "data_dir": Path(data["data_dir"])})


class _MongoSchema(_Section):
    url = fields.String(required=True)
    database = fields.String(required=True, validate=validate.Length(min=1))
    embedded_cache_size = fields.String(required=True, validate=validate.Regexp(r"^\d+[MG]$"))
    write_concern = fields.String(
        required=True, validate=validate.Regexp(r"^(majority|[1-9]\d{0,1})$")
    )
    journal = fields.Boolean(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> MongoSettings:
        return MongoSettings(**{**data, "url": Secret(data["url"])})


class _RedisSchema(_Section):
    url = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.Length(min=1))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> RedisSettings:
        return RedisSettings(url=Secret(data["url"]), channel=data["channel"])


class _AuthSchema(_Section):
    api_key = fields.String(required=True, validate=validate.Length(min=1))
    api_secret = fields.String(required=True, validate=validate.Length(min=32))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> AuthSettings:
        return AuthSettings(api_key=data["api_key"], api_secret=Secret(data["api_secret"]))


class _FanoutSchema(_Section):
    batch_size = fields.Integer(required=True, validate=_positive(max=10_000))
    concurrency = fields.Integer(required=True, validate=_positive(max=256))
    lease_seconds = fields.Float(required=True, validate=validate.Range(min=1))
    poll_seconds = fields.Float(required=True, validate=validate.Range(min=0.05))
    default_copy_limit = fields.Integer(required=True, validate=validate.Range(min=0))
    max_copy_limit = fields.Integer(required=True, validate=validate.Range(min=0))
    pull_threshold = fields.Integer(required=True, validate=_positive())
    push_threshold = fields.Integer(required=True, validate=validate.Range(min=0))
    max_following = fields.Integer(required=True, validate=_positive())
    max_follow_many = fields.Integer(load_default=2500, validate=_positive())
    sync_max_feeds = fields.Integer(load_default=1000, validate=validate.Range(min=0))
    sync_budget_ms = fields.Float(load_default=50.0, validate=validate.Range(min=0))

    @validates_schema
    def hysteresis(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("push_threshold", 0) > data.get("pull_threshold", 1):
            raise ValidationError("must not be above pull_threshold", "push_threshold")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> FanoutSettings:
        return FanoutSettings(**data)


class _RealtimeSchema(_Section):
    fast_websocket = fields.Boolean(required=True)
    websocket_compression = fields.Boolean(required=True)
    ping_interval = fields.Float(required=True, validate=validate.Range(min=1))
    ping_timeout = fields.Float(required=True, validate=validate.Range(min=1))
    max_missed = fields.Integer(required=True, validate=_positive(max=1000))
    max_queue_packets = fields.Integer(required=True, validate=_positive())
    max_queue_bytes = fields.Integer(required=True, validate=validate.Range(min=65536))
    write_buffer_bytes = fields.Integer(required=True, validate=_positive())
    gc_threshold = fields.Integer(required=True, validate=validate.Range(min=0))
    token_grace_seconds = fields.Float(required=True, validate=validate.Range(min=0))
    connect_timeout = fields.Float(required=True, validate=validate.Range(min=0.5))
    max_events_in_flight = fields.Integer(required=True, validate=_positive(max=1000))
    presence_ttl = fields.Float(load_default=15.0, validate=validate.Range(min=1, max=3600))
    presence_info_bytes = fields.Integer(load_default=1024, validate=_positive(max=65536))
    publish_rate = fields.Float(load_default=10.0, validate=validate.Range(min=0.01))
    publish_burst = fields.Integer(load_default=20, validate=_positive(max=10_000))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> RealtimeSettings:
        return RealtimeSettings(**data)


class _ActivitiesSchema(_Section):
    max_bytes = fields.Integer(required=True, validate=_positive())
    max_to = fields.Integer(required=True, validate=validate.Range(min=0, max=1000))
    max_batch = fields.Integer(required=True, validate=_positive())
    max_batch_bytes = fields.Integer(required=True, validate=_positive())
    max_future_seconds = fields.Float(required=True, validate=validate.Range(min=0))
    max_offset = fields.Integer(required=True, validate=validate.Range(min=0))
    max_ids = fields.Integer(load_default=100, validate=_positive())
    max_changes = fields.Integer(load_default=100, validate=_positive())
    max_add_to_many_feeds = fields.Integer(load_default=5000, validate=_positive())
    max_stats_slugs = fields.Integer(load_default=50, validate=_positive())

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ActivitySettings:
        return ActivitySettings(**data)


class _CacheSchema(_Section):
    max_staleness_seconds = fields.Float(load_default=2.0, validate=validate.Range(min=0))
    activities_mb = fields.Float(load_default=64.0, validate=validate.Range(min=0))
    heads_mb = fields.Float(load_default=64.0, validate=validate.Range(min=0))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CacheSettings:
        return CacheSettings(**data)


class _FeedGroupSchema(_Section):
    type = fields.String(load_default=FLAT, validate=validate.OneOf([FLAT, *GROUPED_TYPES]))
    followable = fields.Boolean()
    follow = fields.String(
        load_default=FOLLOW_OPEN, validate=validate.OneOf([FOLLOW_OPEN, FOLLOW_READERS])
    )
    realtime = fields.Boolean(load_default=True)
    presence = fields.Boolean(load_default=False)
    aggregation_format = fields.String(validate=validate.Length(min=1, max=4096))
    max_length = fields.Integer(load_default=100, validate=_positive(max=10_000))

    @validates_schema
    def feed_type(self, data: dict[str, Any], **_: Any) -> None:
        grouped = data.get("type") in GROUPED_TYPES
        if not grouped and "aggregation_format" in data:
            raise ValidationError(
                "only aggregated and notification feeds have one", "aggregation_format"
            )
        if grouped and data.get("followable"):
            raise ValidationError(
                "aggregated and notification feeds cannot be followed (as in Stream)", "followable"
            )
        if grouped:
            try:
                AggregationFormat(data.get("aggregation_format", DEFAULT_FORMAT))
            except AggregationFormatError as exc:
                raise ValidationError(f"not a valid format: {exc}", "aggregation_format") from None

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        grouped = data["type"] in GROUPED_TYPES
        source = data.pop("aggregation_format", DEFAULT_FORMAT)
        data["aggregation"] = AggregationFormat(source) if grouped else None
        data.setdefault("followable", not grouped)
        return data


class _SettingsSchema(_Section):
    server = fields.Nested(_ServerSchema, required=True)
    mongodb = fields.Nested(_MongoSchema, required=True)
    redis = fields.Nested(_RedisSchema, required=True)
    auth = fields.Nested(_AuthSchema, required=True)
    fanout = fields.Nested(_FanoutSchema, required=True)
    realtime = fields.Nested(_RealtimeSchema, required=True)
    activities = fields.Nested(_ActivitiesSchema, required=True)
    feeds = fields.Dict(
        keys=fields.String(validate=validate.Regexp(GROUP_NAME)),
        values=fields.Nested(_FeedGroupSchema),
        required=True,
        validate=validate.Length(min=1),
    )
    firehose = fields.Nested(FirehoseSchema, required=True)
    cache = fields.Nested(_CacheSchema, required=True)

    @validates_schema
    def firehose_groups(self, data: dict[str, Any], **_: Any) -> None:
        check_feed_groups(data.get("firehose"), data.get("feeds") or {})

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Settings:
        feeds = {name: FeedGroup(name=name, **opts) for name, opts in data.pop("feeds").items()}
        return Settings(**data, feeds=feeds)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _environment_overrides(
    defaults: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """TIDINGS_<SECTION>_<KEY> for every scalar key of every section (feed groups excepted)."""
    overrides: dict[str, dict[str, str]] = {}
    for section, keys in defaults.items():
        if section == "feeds" or not isinstance(keys, Mapping):
            continue
        for key in keys:
            name = f"{ENV_PREFIX}{section}_{key}".upper()
            if name in environ:
                overrides.setdefault(section, {})[key] = environ[name]
    return overrides


def _flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            if key == "value" and prefix.startswith("feeds."):  # marshmallow's Dict values
                out += _flatten_errors(value, prefix)
                continue
            out += _flatten_errors(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    return [f"{prefix}: {messages}"]


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the settings once, at start. `overrides` are the command-line flags, by section."""
    environ = os.environ if environ is None else environ
    defaults = _read_toml(DEFAULTS_FILE)
    raw = dict(defaults)
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG") or None
    if config_file:
        raw = _merge(raw, _read_toml(Path(config_file)))
    raw = _merge(raw, _environment_overrides(defaults, environ))
    raw = _merge(
        raw,
        {
            k: {kk: vv for kk, vv in v.items() if vv is not None}
            for k, v in (overrides or {}).items()
        },
    )
    try:
        settings: Settings = _SettingsSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError(
            "invalid configuration: " + "; ".join(_flatten_errors(exc.messages))
        ) from None
    return settings


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_serving(settings: Settings) -> None:
    """Refuse to serve anything but loopback with the public development secret of
    config/default.toml: anyone could sign server tokens with it."""
    development = _read_toml(DEFAULTS_FILE)["auth"]["api_secret"]
    host = settings.server.host
    if str(settings.auth.api_secret) == development and not is_loopback(host):
        raise ConfigError(
            f"server.host {host!r} is not a loopback address and auth.api_secret is the public "
            "development secret of config/default.toml: set your own (32+ bytes) in "
            f"{ENV_PREFIX}AUTH_API_SECRET or [auth] api_secret, e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
