"""Pure parts of the firehose: the JSON of a batch of updates (Stream's firehose shape, one
element per feed), split into messages of bounded size, their ids, and the retry delays."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

Update = tuple[Sequence[str], dict[str, Any]]  # feeds, and their event (`feed` set per feed)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def elements(update: Update, wanted: Any = None) -> Iterator[str]:
    """The JSON of `{feed, new, deleted, deleted_foreign_ids, published_at}` for each feed of
    the update (those `wanted(feed)` accepts): the event is encoded once, the feed spliced in."""
    feeds, event = update
    rest = _dumps({k: v for k, v in event.items() if k != "feed"})
    tail = "}" if rest == "{}" else "," + rest[1:]
    for feed in feeds:
        if wanted is None or wanted(feed):
            yield '{"feed":' + _dumps(feed) + tail


def bodies(parts: Sequence[str], max_bytes: int) -> list[str]:
    """JSON lists of the elements, each at most `max_bytes` (UTF-8) unless one element alone is
    larger (it goes alone)."""
    out: list[str] = []
    chunk: list[str] = []
    size = 2
    for part in parts:
        length = len(part.encode()) + 1
        if chunk and size + length > max_bytes:
            out.append("[" + ",".join(chunk) + "]")
            chunk, size = [], 2
        chunk.append(part)
        size += length
    if chunk:
        out.append("[" + ",".join(chunk) + "]")
    return out


def message_id(key: str | None, endpoint: str, part: int) -> str:
    """The message's id (its webhook-id): derived from `key` when the step that makes it due
    may run again (a fanout batch after a takeover), so that the rerun writes the same
    message; random otherwise."""
    if key is None:
        return f"msg_{uuid.uuid4().hex}"
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
