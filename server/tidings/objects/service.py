"""The objects Stream keeps beside feeds, users and collection entries, as one piece of app
state. They are not feeds: no fanout, no events, nothing to announce; so they live apart from
`feeds/`, and an enrichment of activities reads them through `users.many` and
`collections.many`."""

from __future__ import annotations

from dataclasses import dataclass

from .collections import Collections
from .users import Users


@dataclass(frozen=True)
class Objects:
    users: Users
    collections: Collections
