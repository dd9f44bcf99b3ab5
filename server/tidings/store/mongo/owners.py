"""The ownership part of an activity document (store/mongo/activities.py): who owns it, who set its
fields, and the conditional writes that keep concurrent adds and removals from losing an owner.

`owners: [{feed, to}]` (each owning feed with the `to` feeds it named), `by` (the owner whose
add set the fields), `v` (a change counter every write of these is conditional on). Documents of
the older single-owner shape (`feed`, `to`, no `v`) read as one owner, `by` that feed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...domain.activities import Activity
from ...domain.errors import NotAllowedError
from .client import Document

Owners = dict[str, tuple[str, ...]]  # owning feed -> the `to` feeds it named

OWNERSHIP = {"owners": 1, "by": 1, "feed": 1, "to": 1, "v": 1, "removed": 1, "data": 1}
LEGACY = {"feed": "", "to": ""}
LEGACY_AND_TOMBSTONE = {**LEGACY, "removed": ""}


def owners_of(doc: Document) -> Owners:
    """The owners of a document, of either shape (`owners`, or an older single `feed`)."""
    if "owners" in doc:
        return {o["feed"]: tuple(o.get("to") or ()) for o in doc["owners"]}
    if "feed" in doc:
        return {doc["feed"]: tuple(doc.get("to") or ())}
    return {}


def owner_list(owners: Mapping[str, Sequence[str]]) -> list[Document]:
    return [{"feed": feed, "to": list(to)} for feed, to in owners.items()]


def author(doc: Document) -> str | None:
    """The owner whose add set the fields (`by`; the single `feed` of an older document)."""
    by = doc.get("by", doc.get("feed"))
    return None if by is None else str(by)


def unchanged(doc: Document) -> Document:
    """A filter that matches the document only as it was read."""
    return {"_id": doc["_id"], "v": doc.get("v", {"$exists": False})}


def check_owners(
    activity: Activity, doc: Document | None, feed: str, may_change: Callable[[str], bool]
) -> bool:
    """Whether adding `activity` through `feed` may replace the stored fields: yes when the
    feed that set them (`by`; else every other owner) is `feed` or the caller may write it.
    Else the content must be what that feed published (the same time and content added to two
    feeds, as in Stream: `feed` joins the owners, nothing changes), or NotAllowedError."""
    if doc is None or doc.get("removed"):
        return True
    owners = owners_of(doc)
    by = author(doc)
    if by in owners:  # who set the fields decides; an owner that joined does not
        barred = [] if by == feed or may_change(by) else [by]
    else:
        barred = [o for o in owners if o != feed and not may_change(o)]
    if not barred:
        return True
    stored = json.loads(doc["data"]) if "data" in doc else None
    if stored is not None and _content(stored) == _content(activity.data):
        return False
    raise NotAllowedError(
        f"activity {activity.id} was published by {barred[0]}: only a token that may write "
        f"{barred[0]} may change it",
        {"activity": [f"{activity.id} belongs to {barred[0]}"]},
    )


def _content(data: Mapping[str, Any]) -> dict[str, Any]:
    """An activity's fields but its `to` (each owner names its own)."""
    return {k: v for k, v in data.items() if k != "to"}


def activity_doc(activity: Activity, owners: Mapping[str, Sequence[str]], by: str) -> Document:
    doc: Document = {
        "_id": activity.id,
        "owners": owner_list(owners),
        "by": by,  # the owner whose add set the fields
        "v": 1,
        "time": activity.time,
        # Custom fields are the client's: kept as JSON text so that no field name of theirs
        # ($-prefixed, dotted) can clash with MongoDB's rules.
        "data": json.dumps(activity.data, separators=(",", ":")),
    }
    if activity.foreign_id is not None:
        doc["foreign_id"] = activity.foreign_id
    return doc
