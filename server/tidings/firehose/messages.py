"""Pure parts of the firehose: the JSON of a batch of updates (Stream's firehose shape, one
element per feed), split into messages of bounded size, the element of a reaction event, the
messages' ids, and the retry delays."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

Update = tuple[Sequence[str], dict[str, Any]]  # feeds, and their event (`feed` set per feed)
LIST = 2  # the brackets of a message's JSON list
# What a reaction event leaves out, one after the other, while it is larger than a message may
# be (`truncated` lists them): first what other events or reads tell (other reactions, the
# user's object, the target feeds' activity), the reaction's own `data` last. What is left is
# at most about a kilobyte (ids, kind, user id, times).
SHED = (
    ("reaction", "latest_children"), ("reaction", "own_children"), ("reaction", "user"),
    ("reaction", "target_feeds_extra_data"), ("reaction", "target_feeds"),
    ("reaction", "children_counts"), ("", "reaction_counts"), ("reaction", "data"),
)  # fmt: skip


@dataclass(frozen=True)
class Element:
    """One feed's update as sent (`text`), and what it says (`what`: the same without its
    `published_at`), which a message's id is derived from."""

    text: str
    what: str


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _size(text: str) -> int:
    return len(text.encode())


def pieces(event: dict[str, Any], budget: int) -> list[dict[str, Any]]:
    """The event (without its `feed`) as one piece, or, when its JSON is more than `budget`
    bytes, split by activity into pieces of at most `budget` each (an activity larger than
    that alone goes alone); a removal's `deleted` goes with the first."""
    whole = {k: v for k, v in event.items() if k != "feed"}
    new = whole.get("new") or []
    if _size(_dumps(whole)) <= budget or len(new) < 2:
        return [whole]
    empty = {**whole, "new": []}
    bare = {**empty, "deleted": [], "deleted_foreign_ids": []}
    out: list[dict[str, Any]] = []
    chunk: list[Any] = []
    size = _size(_dumps(empty))
    for activity in new:
        length = _size(_dumps(activity)) + 1
        if chunk and size + length > budget:
            out.append({**(bare if out else empty), "new": chunk})
            chunk, size = [], _size(_dumps(bare))
        chunk.append(activity)
        size += length
    out.append({**(bare if out else empty), "new": chunk})
    return out


def elements(update: Update, wanted: Any = None, max_bytes: int | None = None) -> Iterator[Element]:
    """The `{feed, new, deleted, deleted_foreign_ids, published_at}` of each feed of the update
    (those `wanted(feed)` accepts), each encoded once with the feed spliced in. With
    `max_bytes`, a feed's update whose message would be larger is split by activity, so that
    each element fits a message of `max_bytes` on its own."""
    feeds, event = update
    chosen = [f for f in feeds if wanted is None or wanted(f)]
    if not chosen:
        return
    heads = {f: '{"feed":' + _dumps(f) for f in chosen}
    budget = max_bytes - LIST - max(_size(h) for h in heads.values()) if max_bytes else 1 << 62
    split = [
        (_tail(piece), _tail({k: v for k, v in piece.items() if k != "published_at"}))
        for piece in pieces(event, budget)
    ]
    for feed in chosen:
        for tail, what in split:
            yield Element(heads[feed] + tail, heads[feed] + what)


def _tail(rest: dict[str, Any]) -> str:
    text = _dumps(rest)
    return "}" if text == "{}" else "," + text[1:]


def reaction_element(event: dict[str, Any], max_bytes: int | None = None) -> Element:
    """A reaction event (`{type, activity_id, reaction, reaction_counts, published_at}`) as one
    element. With `max_bytes`, one that would not fit a message leaves out fields (`SHED`, in
    that order) until it fits, and names them in `truncated`: the receiver reads the rest from
    the REST API (`GET reaction/{id}/`)."""
    text = _dumps(event)
    if max_bytes is None or _size(text) + LIST <= max_bytes:
        return Element(text, text)
    reaction = dict(event.get("reaction") or {})
    out: dict[str, Any] = {**event, "reaction": reaction}
    left_out: list[str] = []
    for where, name in SHED:
        holder = reaction if where else out
        if name not in holder:
            continue
        del holder[name]
        left_out.append(name)
        text = _dumps({**out, "truncated": left_out})
        if _size(text) + LIST <= max_bytes:
            break
    return Element(text, text)


def bodies(parts: Sequence[Element], max_bytes: int) -> list[tuple[str, str]]:
    """JSON lists of the elements, each at most `max_bytes` (UTF-8) unless one element alone is
    larger (it goes alone); with each, a digest of what its elements say."""
    out: list[tuple[str, str]] = []
    chunk: list[Element] = []
    size = LIST
    for part in parts:
        length = _size(part.text) + 1
        if chunk and size + length > max_bytes:
            out.append(_body(chunk))
            chunk, size = [], LIST
        chunk.append(part)
        size += length
    if chunk:
        out.append(_body(chunk))
    return out


def _body(chunk: Sequence[Element]) -> tuple[str, str]:
    digest = hashlib.sha256("\n".join(p.what for p in chunk).encode()).hexdigest()
    return "[" + ",".join(p.text for p in chunk) + "]", digest


def message_id(key: str, endpoint: str, part: int) -> str:
    """The message's id (its webhook-id), derived from `key`: what the update is (a digest of
    what its elements say: a client's retried add, or a removal run again, writes a message
    with the id of the first), or the step that makes it due when that step may run again
    (a fanout batch after a takeover), so that the rerun writes the same message."""
    digest = hashlib.sha256(f"{key}\n{endpoint}\n{part}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def retry_delay(
    attempts: int, initial: float, maximum: float, rand: random.Random | None = None
) -> float:
    """Seconds before attempt `attempts + 1`: exponential (initial, 2x, 4x, ... up to
    `maximum`), with "equal jitter" (half fixed, half random) so that messages failed together
    do not all come back together."""
    base = min(maximum, initial * float(2 ** min(attempts, 60)))
    jitter: float = (rand or random).uniform(0, base / 2)
    return base / 2 + jitter
