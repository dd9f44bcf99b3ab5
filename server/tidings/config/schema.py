"""The marshmallow schemas that check every key of the settings at start; a bad value names
its key (`fanout.batch_size: Must be greater than or equal to 1.`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import (
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from ..domain.aggregation import DEFAULT_FORMAT, AggregationFormat, AggregationFormatError
from ..domain.feeds import CLIENT_PERMISSIONS, PRIVATE
from .firehose import FirehoseSchema, check_feed_groups
from .limits import LimitSettings, LimitsSchema
from .media import MediaSchema, OgSchema
from .sections import GROUP_NAME, Section, positive
from .settings import (
    FLAT,
    FOLLOW_OPEN,
    FOLLOW_READERS,
    GROUPED_TYPES,
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
)
from .values import Secret, cluster_nodes


class _ServerSchema(Section):
    host = fields.String(required=True)
    port = fields.Integer(required=True, validate=validate.Range(min=0, max=65535))
    data_dir = fields.String(required=True)
    cors_allowed_origins = fields.String(required=True)
    max_body_bytes = fields.Integer(required=True, validate=positive())
    shutdown_timeout = fields.Float(required=True, validate=validate.Range(min=0))
    workers = fields.Integer(required=True, validate=positive(max=256))
    reuse_port = fields.Boolean(required=True)
    max_url_bytes = fields.Integer(load_default=65536, validate=positive(max=1_048_576))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ServerSettings:
        return ServerSettings(**{**data, "data_dir": Path(data["data_dir"])})


class _MongoSchema(Section):
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


class _RedisSchema(Section):
    url = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.Length(min=1))
    routed_rooms = fields.Integer(load_default=64, validate=validate.Range(min=0, max=10_000))

    @validates_schema
    def check_cluster(self, data: dict[str, Any], **_: Any) -> None:
        if data["url"].split("://", 1)[0] in ("redis+cluster", "rediss+cluster"):
            try:
                cluster_nodes(data["url"])
            except ValueError as exc:
                raise ValidationError(str(exc), "url") from None

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> RedisSettings:
        return RedisSettings(
            url=Secret(data["url"]), channel=data["channel"], routed_rooms=data["routed_rooms"]
        )


class _AuthSchema(Section):
    api_key = fields.String(required=True, validate=validate.Length(min=1))
    api_secret = fields.String(required=True, validate=validate.Length(min=32))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> AuthSettings:
        return AuthSettings(api_key=data["api_key"], api_secret=Secret(data["api_secret"]))


class _FanoutSchema(Section):
    batch_size = fields.Integer(required=True, validate=positive(max=10_000))
    concurrency = fields.Integer(required=True, validate=positive(max=256))
    lease_seconds = fields.Float(required=True, validate=validate.Range(min=1))
    poll_seconds = fields.Float(required=True, validate=validate.Range(min=0.05))
    default_copy_limit = fields.Integer(required=True, validate=validate.Range(min=0))
    max_copy_limit = fields.Integer(required=True, validate=validate.Range(min=0))
    pull_threshold = fields.Integer(required=True, validate=positive())
    push_threshold = fields.Integer(required=True, validate=validate.Range(min=0))
    max_following = fields.Integer(required=True, validate=positive())
    max_follow_many = fields.Integer(load_default=2500, validate=positive())
    sync_max_feeds = fields.Integer(load_default=1000, validate=validate.Range(min=0))
    sync_budget_ms = fields.Float(load_default=50.0, validate=validate.Range(min=0))
    active_first = fields.Boolean(load_default=True)
    active_seconds = fields.Float(load_default=300.0, validate=validate.Range(min=1))
    push_budget_ms = fields.Float(load_default=250.0, validate=validate.Range(min=0))
    min_pull_followers = fields.Integer(load_default=250, validate=validate.Range(min=0))

    @validates_schema
    def hysteresis(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("push_threshold", 0) > data.get("pull_threshold", 1):
            raise ValidationError("must not be above pull_threshold", "push_threshold")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> FanoutSettings:
        return FanoutSettings(**data)


class _RealtimeSchema(Section):
    fast_websocket = fields.Boolean(required=True)
    websocket_compression = fields.Boolean(required=True)
    ping_interval = fields.Float(required=True, validate=validate.Range(min=1))
    ping_timeout = fields.Float(required=True, validate=validate.Range(min=1))
    max_missed = fields.Integer(required=True, validate=positive(max=1000))
    max_queue_packets = fields.Integer(required=True, validate=positive())
    max_queue_bytes = fields.Integer(required=True, validate=validate.Range(min=65536))
    write_buffer_bytes = fields.Integer(required=True, validate=positive())
    gc_threshold = fields.Integer(required=True, validate=validate.Range(min=0))
    token_grace_seconds = fields.Float(required=True, validate=validate.Range(min=0))
    connect_timeout = fields.Float(required=True, validate=validate.Range(min=0.5))
    max_events_in_flight = fields.Integer(required=True, validate=positive(max=1000))
    presence_ttl = fields.Float(load_default=15.0, validate=validate.Range(min=1, max=3600))
    presence_info_bytes = fields.Integer(load_default=1024, validate=positive(max=65536))
    publish_rate = fields.Float(load_default=10.0, validate=validate.Range(min=0.01))
    publish_burst = fields.Integer(load_default=20, validate=positive(max=10_000))
    faye_app_id = fields.String(
        load_default="tidings", validate=validate.Regexp(r"^[A-Za-z0-9_]{1,64}$")
    )
    faye_timeout = fields.Float(load_default=25.0, validate=validate.Range(min=1, max=300))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> RealtimeSettings:
        return RealtimeSettings(**data)


class _ActivitiesSchema(Section):
    max_bytes = fields.Integer(required=True, validate=positive())
    max_to = fields.Integer(required=True, validate=validate.Range(min=0, max=1000))
    max_batch = fields.Integer(required=True, validate=positive())
    max_batch_bytes = fields.Integer(required=True, validate=positive())
    max_future_seconds = fields.Float(required=True, validate=validate.Range(min=0))
    max_offset = fields.Integer(required=True, validate=validate.Range(min=0))
    max_ids = fields.Integer(load_default=100, validate=positive())
    max_changes = fields.Integer(load_default=100, validate=positive())
    max_add_to_many_feeds = fields.Integer(load_default=5000, validate=positive())
    max_stats_slugs = fields.Integer(load_default=50, validate=positive())

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ActivitySettings:
        return ActivitySettings(**data)


class _CacheSchema(Section):
    max_staleness_seconds = fields.Float(load_default=2.0, validate=validate.Range(min=0))
    activities_mb = fields.Float(load_default=64.0, validate=validate.Range(min=0))
    heads_mb = fields.Float(load_default=64.0, validate=validate.Range(min=0))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CacheSettings:
        return CacheSettings(**data)


class _ObjectsSchema(Section):
    max_bytes = fields.Integer(load_default=10240, validate=positive(max=1_048_576))
    max_batch = fields.Integer(load_default=1000, validate=positive(max=10_000))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ObjectSettings:
        return ObjectSettings(**data)


class _FeedGroupSchema(Section):
    type = fields.String(load_default=FLAT, validate=validate.OneOf([FLAT, *GROUPED_TYPES]))
    followable = fields.Boolean()
    follow = fields.String(
        load_default=FOLLOW_OPEN, validate=validate.OneOf([FOLLOW_OPEN, FOLLOW_READERS])
    )
    realtime = fields.Boolean(load_default=True)
    presence = fields.Boolean(load_default=False)
    aggregation_format = fields.String(validate=validate.Length(min=1, max=4096))
    max_length = fields.Integer(load_default=100, validate=positive(max=10_000))
    client_permissions = fields.String(
        load_default=PRIVATE, validate=validate.OneOf(CLIENT_PERMISSIONS)
    )

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


class SettingsSchema(Section):
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
    media = fields.Nested(MediaSchema, required=True)
    og = fields.Nested(OgSchema, required=True)
    objects = fields.Nested(_ObjectsSchema, load_default=ObjectSettings)
    limits = fields.Nested(LimitsSchema, load_default=LimitSettings)

    @validates_schema
    def firehose_groups(self, data: dict[str, Any], **_: Any) -> None:
        check_feed_groups(data.get("firehose"), data.get("feeds") or {})

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Settings:
        feeds = {name: FeedGroup(name=name, **opts) for name, opts in data.pop("feeds").items()}
        return Settings(**data, feeds=feeds)
