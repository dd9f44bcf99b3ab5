"""The order of a push's batches: the follower feeds someone watches first, then the rest.

The runner reads a window of follower chunks at once (one query), asks which of their feeds are
active (domain/ports.py ActiveFeeds: a socket subscribed on any node, or read lately), and cuts
the window into batches: first the active members of every chunk of the window, then the others
chunk by chunk, as they were. Each batch says which chunks it holds members of; a chunk is done
once all of them are, so the job's cursor (which only moves past whole chunks, in order) means
what it meant: every follower of the chunks behind it holds the activity. Nothing is skipped or
written twice in one run: each member is in exactly one batch.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ..store.mongo.follows import Member

WINDOW_CHUNKS = 40  # follower chunks ordered together (20,000 followers): a push feed fits


@dataclass(frozen=True)
class Part:
    """One batch: its members, and the chunks they come from."""

    members: list[Member]
    chunks: tuple[int, ...]


def parts_of(
    chunks: list[list[Member]], first: int, active: Collection[str], size: int
) -> list[Part]:
    """The batches of the chunks `first`, `first + 1`, ... (their members in `chunks`), at most
    `size` members each: the `active` members of all of them first, then the rest. Members
    that fit in one batch are not reordered: they are written in one bulk insert anyway, and
    a split would only cost a batch (and a firehose message) more."""
    if sum(len(members) for members in chunks) <= size:
        active = ()
    parts: list[Part] = []
    hot: list[Member] = []
    hot_chunks: list[int] = []
    rest: list[tuple[int, list[Member]]] = []
    for n, members in enumerate(chunks, first):
        if active:
            cold = [m for m in members if m[0] not in active]
            if len(cold) < len(members):
                hot += [m for m in members if m[0] in active]
                hot_chunks += [n] * (len(members) - len(cold))
            members = cold
        rest.append((n, members))
    for i in range(0, len(hot), size):
        parts.append(Part(hot[i : i + size], tuple(sorted(set(hot_chunks[i : i + size])))))
    for n, members in rest:
        parts += [Part(members[i : i + size], (n,)) for i in range(0, len(members), size)]
    return parts
