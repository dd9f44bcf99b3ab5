"""What every section schema of schema.py and firehose.py shares: unknown keys refused, the
feed group name rule of the domain."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, validate

from ..domain.feeds import GROUP_RE

GROUP_NAME = GROUP_RE.pattern


class Section(Schema):
    """A table of the config file: a key it does not know is a mistake, named at start."""

    class Meta:
        unknown = RAISE


def positive(**kw: Any) -> Any:
    return validate.Range(min=1, **kw)
