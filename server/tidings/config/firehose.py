"""The `[firehose]` settings: its scalar keys and its two arrays of tables, `[[firehose.webhook]]`
and `[[firehose.sqs]]`, loaded by the one loader (schema.py nests `FirehoseSchema`); from the
environment an array of tables is a JSON array."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from marshmallow import (
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from .sections import GROUP_NAME, Section, positive
from .values import Secret


@dataclass(frozen=True)
class WebhookEndpoint:
    """A `[[firehose.webhook]]`: signed POSTs of feed updates (and, with `reactions`, of
    reaction events) to `url`."""

    url: str
    secret: Secret
    feed_groups: tuple[str, ...] = ()
    reactions: bool = False


@dataclass(frozen=True)
class SqsEndpoint:
    """A `[[firehose.sqs]]`: feed updates sent to an SQS queue (AWS credentials: AWS's chain)."""

    queue_url: str
    region: str
    endpoint_url: str | None = None
    feed_groups: tuple[str, ...] = ()
    reactions: bool = False  # reaction events too (opt-in: Stream v2 consumers expect feeds)

    @property
    def fifo(self) -> bool:
        return self.queue_url.endswith(".fifo")


@dataclass(frozen=True)
class FirehoseSettings:
    webhook: tuple[WebhookEndpoint, ...] = ()
    sqs: tuple[SqsEndpoint, ...] = ()
    retry_initial_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    give_up_after_seconds: float = 86400.0
    timeout_seconds: float = 10.0
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    claim_batch: int = 100
    max_message_bytes: int = 250_000
    concurrency: int = 8
    dead_retention_days: float = 14.0


class _TableList(fields.List):  # type: ignore[type-arg]
    """An array of tables (`[[firehose.webhook]]`); from the environment, the same as JSON
    (`TIDINGS_FIREHOSE_WEBHOOK='[{"url": "...", "secret": "whsec_..."}]'`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValidationError("not a JSON array of tables") from None
        return super()._deserialize(value, attr, data, **kwargs)


def _http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("must be an http:// or https:// URL")


def _webhook_secret(secret: str) -> None:
    """A Standard Webhooks secret: `whsec_` and the base64 of at least 24 bytes."""
    if not secret.startswith("whsec_"):
        raise ValidationError("must be a Standard Webhooks secret: whsec_ + base64")
    try:
        key = base64.b64decode(secret[len("whsec_") :] + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValidationError("the part after whsec_ is not base64") from None
    if len(key) < 24:
        raise ValidationError("must encode at least 24 bytes (whsec_ + base64)")


_GROUPS = fields.List(fields.String(validate=validate.Regexp(GROUP_NAME)), load_default=list)
# Reaction events as well as feed updates: opt-in, since a Stream v2 consumer parses a list of
# feed updates only.
_REACTIONS = fields.Boolean(load_default=False)


class _WebhookSchema(Section):
    url = fields.String(required=True, validate=_http_url)
    secret = fields.String(required=True, validate=_webhook_secret)
    feed_groups = _GROUPS
    reactions = _REACTIONS

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> WebhookEndpoint:
        return WebhookEndpoint(
            url=data["url"], secret=Secret(data["secret"]),
            feed_groups=tuple(data["feed_groups"]), reactions=data["reactions"],
        )  # fmt: skip


class _SqsSchema(Section):
    queue_url = fields.String(required=True, validate=_http_url)
    region = fields.String(required=True, validate=validate.Length(min=1, max=64))
    endpoint_url = fields.String(load_default=None, allow_none=True, validate=_http_url)
    feed_groups = _GROUPS
    reactions = _REACTIONS

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SqsEndpoint:
        return SqsEndpoint(**{**data, "feed_groups": tuple(data["feed_groups"])})


class FirehoseSchema(Section):
    webhook = _TableList(fields.Nested(_WebhookSchema), load_default=list)
    sqs = _TableList(fields.Nested(_SqsSchema), load_default=list)
    retry_initial_seconds = fields.Float(required=True, validate=validate.Range(min=0.01))
    retry_max_seconds = fields.Float(required=True, validate=validate.Range(min=0.01))
    give_up_after_seconds = fields.Float(required=True, validate=validate.Range(min=0))
    timeout_seconds = fields.Float(required=True, validate=validate.Range(min=0.1))
    lease_seconds = fields.Float(required=True, validate=validate.Range(min=1))
    poll_seconds = fields.Float(required=True, validate=validate.Range(min=0.05))
    claim_batch = fields.Integer(required=True, validate=positive(max=10_000))
    # SQS takes at most 256 KiB per message (and per SendMessageBatch call) by default; a
    # queue's own MaximumMessageSize, read at start, may be lower (firehose/setup.py).
    max_message_bytes = fields.Integer(
        required=True, validate=validate.Range(min=16_384, max=262_144)
    )
    concurrency = fields.Integer(required=True, validate=positive(max=256))
    dead_retention_days = fields.Float(required=True, validate=validate.Range(min=0))

    @validates_schema
    def retry_range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("retry_initial_seconds", 0) > data.get("retry_max_seconds", 1):
            raise ValidationError("must not be above retry_max_seconds", "retry_initial_seconds")

    @validates_schema
    def distinct_endpoints(self, data: dict[str, Any], **_: Any) -> None:
        """An endpoint is known by its URL (a message names it so): each one once."""
        for kind, attr in (("webhook", "url"), ("sqs", "queue_url")):
            seen: set[str] = set()
            for index, endpoint in enumerate(data.get(kind) or ()):
                url = getattr(endpoint, attr)
                if url in seen:
                    raise ValidationError({index: {attr: [f"{url} is listed twice"]}}, kind)
                seen.add(url)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> FirehoseSettings:
        return FirehoseSettings(**{**data, "webhook": tuple(data["webhook"]),
                                   "sqs": tuple(data["sqs"])})  # fmt: skip


def check_feed_groups(firehose: Any, feeds: Mapping[str, Any]) -> None:
    """Every `feed_groups` entry names a configured feed group."""
    if not isinstance(firehose, FirehoseSettings):
        return
    for kind in ("webhook", "sqs"):
        for index, endpoint in enumerate(getattr(firehose, kind)):
            unknown = [g for g in endpoint.feed_groups if g not in feeds]
            if unknown:
                raise ValidationError(
                    {kind: {index: {"feed_groups": [f"no feed group {unknown[0]!r}"]}}},
                    "firehose",
                )
