"""Enrichment, pure: what a page of activities refers to, and the page with those references
replaced by their objects and the reactions attached, as Stream's `enrich/` reads answer.

A reference is a top-level field of an activity whose value is a string `SU:<user id>`,
`SO:<collection>:<entry id>`, `SA:<activity id>` or `SR:<reaction id>` (Stream enriches the
top-level fields only: a reference inside a list or an object stays as written). One that names
nothing becomes Stream's `{error: "ReferenceNotFound", reference, reference_type, id}` (and
`collection` for an entry). An activity named by `SA:` is itself enriched (its references, but
another `SA:` in it stays a string, and its reactions); a reaction named by `SR:`, like every
reaction attached, carries its user as `user`.

The I/O is `feeds/enrich.py`'s: this module says what to load (`References`) and assembles
what was loaded (`Loaded`, `enrich_activity`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol
from urllib.parse import urlencode

from .ids import lookup_id
from .objects import (
    ENTRY_PREFIX,
    USER_PREFIX,
    Entry,
    EntryKey,
    User,
    entry_reference,
    user_reference,
)
from .reactions import Reaction

RECENT_DEFAULT = 5  # Stream: "the 5 most recent reactions per type"
RECENT_MAX = 25  # the most `recentReactionsLimit` may ask (Stream's page of reactions)
MAX_KINDS = 20  # kinds in one `reactionKindsFilter`
ACTIVITY_PREFIX, REACTION_PREFIX = "SA:", "SR:"
PREFIXES = frozenset({USER_PREFIX, ENTRY_PREFIX, ACTIVITY_PREFIX, REACTION_PREFIX})


@dataclass(frozen=True)
class Options:
    """What an enriched read attaches besides the references. `user_id`: whose reactions are
    `own_reactions` and `own_children` (None: nobody's, so those are empty)."""

    own: bool = False
    recent: bool = False
    counts: bool = False
    own_children: bool = False
    recent_limit: int = RECENT_DEFAULT
    kinds: tuple[str, ...] | None = None
    user_id: str | None = None
    # where `latest_reactions_extra`'s `next` links point: Stream writes absolute URLs
    link_base: str = "/api/v1.0"

    @property
    def reactions(self) -> bool:
        return self.own or self.recent or self.counts

    @cached_property
    def shared(self) -> tuple[Any, ...]:
        """What of these options shapes the part of an activity every reader sees alike."""
        return (self.recent, self.counts, self.recent_limit, self.kinds, self.link_base)


@dataclass
class References:
    """Everything a page refers to, by kind: each kind is then loaded in one query."""

    users: set[str] = field(default_factory=set)
    entries: set[EntryKey] = field(default_factory=set)
    activities: set[str] = field(default_factory=set)
    reactions: set[str] = field(default_factory=set)

    def add(self, activity: Mapping[str, Any], with_activities: bool = True) -> None:
        for value in activity.values():
            if not isinstance(value, str) or value[:3] not in PREFIXES:
                continue
            if (user := user_reference(value)) is not None:
                self.users.add(user)
            elif (key := entry_reference(value)) is not None:
                self.entries.add(key)
            elif with_activities and (found := _uuid_reference(value, ACTIVITY_PREFIX)):
                self.activities.add(found)
            elif found := _uuid_reference(value, REACTION_PREFIX):
                self.reactions.add(found)


# A reaction without children as shown with its user (None: no such user): made by `Loaded`'s
# `shown_with`, which may keep it across pages (feeds/enrich.py keeps it encoded once).
ShownWith = Callable[[Reaction, User | None], Any]


def shown_with(reaction: Reaction, user: User | None) -> dict[str, Any]:
    """A reaction without children as enriched reads show it: its shared form, with its user."""
    return reaction.shown if user is None else {**reaction.shown, "user": user.shown}


@dataclass(frozen=True)
class MadeOf:
    """What the shared part of an enriched activity (all but the reading user's own reactions)
    is made of: equal inputs make equal parts. `named`: the users and entries its references
    name, as loaded (None: not found); `users`: those of its latest reactions."""

    activity: Mapping[str, Any]
    options: tuple[Any, ...]
    named: tuple[Any, ...]
    counts: Mapping[str, int] | None
    latest: Mapping[str, Sequence[Reaction]] | None
    users: tuple[User | None, ...]


class KeptParts(Protocol):
    """Shared parts of enriched activities kept across pages (store/memory/enriched_parts.py):
    one is answered only for inputs equal to those it was made of."""

    def get(self, activity_id: str, made_of: MadeOf) -> dict[str, Any] | None: ...

    def put(self, activity_id: str, made_of: MadeOf, part: dict[str, Any]) -> None: ...


@dataclass
class Loaded:
    """What was loaded for a page: the referenced objects and the reactions of its activities
    (`latest`, `own` by activity id then kind, newest first, `recent_limit + 1` of them so that
    `next` can tell whether there are more; `children` and `own_children` by reaction id)."""

    users: Mapping[str, User] = field(default_factory=dict)
    entries: Mapping[EntryKey, Entry] = field(default_factory=dict)
    activities: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    reactions: Mapping[str, Reaction] = field(default_factory=dict)
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    latest: Mapping[str, Mapping[str, Sequence[Reaction]]] = field(default_factory=dict)
    own: Mapping[str, Mapping[str, Sequence[Reaction]]] = field(default_factory=dict)
    children: Mapping[str, Mapping[str, Sequence[Reaction]]] = field(default_factory=dict)
    own_children: Mapping[str, Mapping[str, Sequence[Reaction]]] | None = None
    # The reactions as shown on this page, each made once however often it is shown (both
    # own and latest): shared, never changed once made. Users, entries and reactions without
    # children keep their shown forms themselves (`shown`), across pages.
    shown_reactions: dict[str, Any] = field(default_factory=dict)
    shown_with: ShownWith = shown_with
    kept: KeptParts | None = None

    def user(self, user_id: str) -> dict[str, Any] | None:
        user = self.users.get(user_id)
        return None if user is None else user.shown


def parse_kinds(raw: str) -> tuple[str, ...] | None:
    """`reactionKindsFilter`: comma-separated kinds, blanks dropped (stream-python strips
    them); none at all: no filter."""
    kinds = tuple(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
    return kinds or None


def enrich_activity(
    activity: Mapping[str, Any], loaded: Loaded, options: Options, nested: bool = False
) -> dict[str, Any]:
    """The activity with its references replaced and, when asked, its reactions attached.
    Its shared part may be one kept from an earlier page (`loaded.kept`): never to be changed."""
    activity_id = str(activity.get("id", ""))
    kept = None if nested else loaded.kept
    made_of = None if kept is None else made_of_shared(activity, loaded, options)
    part = None
    if kept is not None and made_of is not None:
        part = kept.get(activity_id, made_of)
    if part is None:
        part = _shared_part(activity, activity_id, loaded, options, nested)
        if kept is not None and made_of is not None:
            kept.put(activity_id, made_of, part)
    if not options.own:
        return part
    own = _by_kind(loaded.own.get(activity_id, {}), loaded, options)
    return {**part, "own_reactions": own}


def made_of_shared(activity: Mapping[str, Any], loaded: Loaded, options: Options) -> MadeOf | None:
    """What the activity's shared part is made of; None when it depends on more than that
    (an activity or a reaction it names, reactions with children, own children)."""
    if loaded.own_children is not None:
        return None
    named: list[Any] = []
    for value in activity.values():
        if not isinstance(value, str) or value[:3] not in PREFIXES:
            continue
        if (user_id := user_reference(value)) is not None:
            named.append(loaded.users.get(user_id))
        elif (key := entry_reference(value)) is not None:
            named.append(loaded.entries.get(key))
        elif value[:3] in (ACTIVITY_PREFIX, REACTION_PREFIX):
            return None
    activity_id = str(activity.get("id", ""))
    latest, users = None, []
    if options.recent:
        latest = loaded.latest.get(activity_id)
        for items in (latest or {}).values():
            for reaction in items[: options.recent_limit]:
                if any(reaction.children_counts.values()):
                    return None
                users.append(loaded.users.get(reaction.user_id))
    counts = loaded.counts.get(activity_id) if options.counts else None
    return MadeOf(activity, options.shared, tuple(named), counts, latest, tuple(users))


def _shared_part(
    activity: Mapping[str, Any], activity_id: str, loaded: Loaded, options: Options, nested: bool
) -> dict[str, Any]:
    enriched = {key: _replaced(value, loaded, options, nested) for key, value in activity.items()}
    enriched.setdefault("target", "")  # Stream's enriched activities always carry both
    enriched.setdefault("foreign_id", "")
    enriched.setdefault("origin", None)
    if options.recent:
        latest = loaded.latest.get(activity_id, {})
        enriched["latest_reactions"] = _by_kind(latest, loaded, options)
        enriched["latest_reactions_extra"] = {
            kind: {"next": _next(activity_id, kind, items, options)}
            for kind, items in latest.items()
        }
    if options.counts:
        counts = loaded.counts.get(activity_id, {})
        if options.kinds is not None:
            counts = {k: n for k, n in counts.items() if k in options.kinds}
        enriched["reaction_counts"] = dict(counts)
    return enriched


def enriched_reaction(reaction: Reaction, loaded: Loaded, options: Options) -> Any:
    """A reaction as enriched reads show it: its user (when the user exists), its latest
    children and, with `withOwnChildren`, the reading user's own children."""
    shown = loaded.shown_reactions.get(reaction.id)
    if shown is not None:
        return shown
    children = loaded.children.get(reaction.id)
    if not children and loaded.own_children is None:  # the common case: made of shared parts
        body = loaded.shown_with(reaction, loaded.users.get(reaction.user_id))
        loaded.shown_reactions[reaction.id] = body
        return body
    user = loaded.user(reaction.user_id)
    body = loaded.shown_reactions[reaction.id] = reaction.public(
        {k: [enriched_reaction(c, loaded, options) for c in v] for k, v in (children or {}).items()}
    )
    if user is not None:
        body["user"] = user
    if loaded.own_children is not None:
        own = loaded.own_children.get(reaction.id, {})
        body["own_children"] = {
            k: [enriched_reaction(c, loaded, options) for c in v] for k, v in own.items()
        }
    return body


def not_found(reference: str) -> dict[str, Any]:
    """Stream's placeholder for a reference to nothing."""
    if (user := user_reference(reference)) is not None:
        return _missing(reference, "user", user)
    if (key := entry_reference(reference)) is not None:
        return {"collection": key.collection, **_missing(reference, "object", key.id)}
    kind = "activity" if reference.startswith(ACTIVITY_PREFIX) else "reaction"
    return _missing(reference, kind, reference[3:])


def _missing(reference: str, kind: str, identifier: str) -> dict[str, Any]:
    return {
        "error": "ReferenceNotFound",
        "reference": reference,
        "reference_type": kind,
        "id": identifier,
    }


def _replaced(value: Any, loaded: Loaded, options: Options, nested: bool) -> Any:
    if not isinstance(value, str) or value[:3] not in PREFIXES:
        return value
    if (user_id := user_reference(value)) is not None:
        user = loaded.user(user_id)
        return not_found(value) if user is None else user
    if (key := entry_reference(value)) is not None:
        entry = loaded.entries.get(key)
        return not_found(value) if entry is None else entry.shown
    if not nested and (activity_id := _uuid_reference(value, ACTIVITY_PREFIX)):
        activity = loaded.activities.get(activity_id)
        if activity is None:
            return not_found(value)
        return enrich_activity(activity, loaded, options, nested=True)
    if reaction_id := _uuid_reference(value, REACTION_PREFIX):
        reaction = loaded.reactions.get(reaction_id)
        if reaction is None:
            return not_found(value)
        return enriched_reaction(reaction, loaded, options)
    return value


def _by_kind(
    found: Mapping[str, Sequence[Reaction]], loaded: Loaded, options: Options
) -> dict[str, list[Any]]:
    return {
        kind: [enriched_reaction(r, loaded, options) for r in items[: options.recent_limit]]
        for kind, items in found.items()
    }


def _next(activity_id: str, kind: str, items: Sequence[Reaction], options: Options) -> str:
    """Where the rest of a kind's reactions are: the filter page older than the last shown,
    as Stream writes it (`id_lt`, `limit`, `withOwnChildren`, and `user_id` when own children
    are asked for), or "" when none are left. react-activity-feed reads its query."""
    limit = options.recent_limit
    if len(items) <= limit:
        return ""
    query = {
        "id_lt": items[limit - 1].id,
        "limit": limit,
        "withOwnChildren": "true" if options.own_children else "false",
    }
    if options.own_children and options.user_id is not None:
        query["user_id"] = options.user_id
    path = f"/reaction/activity_id/{activity_id}/{kind}/"
    return f"{options.link_base}{path}?{urlencode(query)}"


def _uuid_reference(value: str, prefix: str) -> str | None:
    if not value.startswith(prefix):
        return None
    return lookup_id(value[len(prefix) :])
