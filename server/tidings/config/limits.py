"""The `[limits]` settings: rate limits as Stream's API has them, per endpoint class and per
scope (the API key, the user of a token, the client's address), in fixed windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import fields as mfields
from marshmallow import post_load, validate

from .sections import Section, positive

# What is counted apart: Stream limits each kind of call on its own ("hitting a rate limit on
# follows will still allow you to read feeds").
CLASSES = ("reads", "writes", "follows", "batch", "reactions", "files", "subscribes", "publishes")
SCOPES = ("key", "user", "ip")


@dataclass(frozen=True)
class LimitSettings:
    """`<class>_per_<scope>`: calls of that class in one window (0: no limit of that scope)."""

    enabled: bool = True
    window_seconds: int = 60
    exempt_server_tokens: bool = True
    trust_forwarded_for: bool = False
    # per API key: the app's calls as a whole (Stream's documented per-minute defaults)
    reads_per_key: int = 2000
    writes_per_key: int = 1000
    follows_per_key: int = 500
    batch_per_key: int = 250
    reactions_per_key: int = 1000
    files_per_key: int = 1000
    subscribes_per_key: int = 10000
    publishes_per_key: int = 1000
    # per user (the `user_id` of a token)
    reads_per_user: int = 600
    writes_per_user: int = 300
    follows_per_user: int = 300
    batch_per_user: int = 60
    reactions_per_user: int = 300
    files_per_user: int = 60
    subscribes_per_user: int = 600
    publishes_per_user: int = 600
    # per client address
    reads_per_ip: int = 0
    writes_per_ip: int = 0
    follows_per_ip: int = 0
    batch_per_ip: int = 0
    reactions_per_ip: int = 0
    files_per_ip: int = 0
    subscribes_per_ip: int = 0
    publishes_per_ip: int = 0

    def limit(self, kind: str, scope: str) -> int:
        """The calls of class `kind` one `scope` may make in a window; 0: unlimited."""
        return int(getattr(self, f"{kind}_per_{scope}"))


_DEFAULTS = LimitSettings()


def _schema_fields() -> dict[str, Any]:
    counts = {
        f"{kind}_per_{scope}": mfields.Integer(
            load_default=_DEFAULTS.limit(kind, scope), validate=validate.Range(min=0)
        )
        for kind in CLASSES
        for scope in SCOPES
    }
    return {
        "enabled": mfields.Boolean(load_default=True),
        "window_seconds": mfields.Integer(load_default=60, validate=positive(max=86400)),
        "exempt_server_tokens": mfields.Boolean(load_default=True),
        "trust_forwarded_for": mfields.Boolean(load_default=False),
        **counts,
    }


class _Make(Section):
    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> LimitSettings:
        return LimitSettings(**data)


LimitsSchema = _Make.from_dict(_schema_fields(), name="LimitsSchema")
