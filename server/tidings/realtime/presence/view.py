"""Who is in each presence room, on every node: the view one node has of the cluster.

Pure bookkeeping, no I/O. Each node owns its share of a member, an `Entry` (the user's sockets
on that node, and the info of the first of them); the view holds every node's entries, this
node's own included, and answers what changed for the cluster as a whole: a user is *joined*
when the first node gets an entry for them in a room, *left* when the last one drops it. So a
user's second socket (on any node) is no new join, and the last one closing is the leave.

A member's `info` is the one of its earliest entry (by the time its node saw the join, then by
node id), so that every node that holds the same entries shows the same info; within a node, an
entry's info is its earliest socket's that is still connected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

JOIN, LEAVE = "join", "leave"
Key = tuple[str, str]  # (feed, user_id)


@dataclass(frozen=True)
class Entry:
    """One node's share of one member of one room."""

    info: Any
    connections: int
    since: float  # wall-clock time its node saw the user's first socket join

    def wire(self) -> list[Any]:
        return [self.info, self.connections, self.since]

    @classmethod
    def of(cls, wire: Any) -> Entry:
        info, connections, since = wire
        return cls(info, int(connections), float(since))


@dataclass(frozen=True)
class Change:
    """A user joined or left a room, cluster-wide."""

    kind: str  # JOIN or LEAVE
    feed: str
    user_id: str
    info: Any = None


@dataclass(frozen=True)
class Member:
    user_id: str
    info: Any
    connections: int

    def public(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "info": self.info, "connections": self.connections}


class View:
    """feed -> user_id -> node -> Entry, with each node's keys indexed (a dead node's entries are
    dropped together)."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, dict[str, Entry]]] = {}
        self._by_node: dict[str, set[Key]] = {}

    def put(self, node: str, feed: str, user_id: str, entry: Entry | None) -> Change | None:
        """`node`'s entry for (feed, user_id) is now `entry` (None: it has none)."""
        users = self._rooms.get(feed)
        nodes = users.get(user_id) if users is not None else None
        if entry is None:
            if nodes is None or node not in nodes:
                return None
            del nodes[node]
            self._by_node[node].discard((feed, user_id))
            if not self._by_node[node]:
                del self._by_node[node]
            if nodes:
                return None
            assert users is not None
            del users[user_id]
            if not users:
                del self._rooms[feed]
            return Change(LEAVE, feed, user_id)
        if users is None:
            users = self._rooms[feed] = {}
        joined = not users.get(user_id)
        nodes = users.setdefault(user_id, {})
        nodes[node] = entry
        self._by_node.setdefault(node, set()).add((feed, user_id))
        return Change(JOIN, feed, user_id, self._info(nodes)) if joined else None

    def replace_node(self, node: str, entries: dict[Key, Entry]) -> list[Change]:
        """Everything `node` has now (a republish after an outage, or a node's first word)."""
        changes = [
            change
            for key in list(self._by_node.get(node, ()))
            if key not in entries and (change := self.put(node, *key, None)) is not None
        ]
        for (feed, user_id), entry in entries.items():
            change = self.put(node, feed, user_id, entry)
            if change is not None:
                changes.append(change)
        return changes

    def drop_node(self, node: str) -> list[Change]:
        """`node` is gone (dead, stopped, or unreachable): the users only it had leave."""
        return self.replace_node(node, {})

    def nodes(self) -> set[str]:
        return set(self._by_node)

    def entries_of(self, node: str) -> Iterator[tuple[Key, Entry]]:
        for feed, user_id in self._by_node.get(node, ()):
            yield (feed, user_id), self._rooms[feed][user_id][node]

    def member(self, feed: str, user_id: str) -> Member | None:
        nodes = self._rooms.get(feed, {}).get(user_id)
        if not nodes:
            return None
        connections = sum(e.connections for e in nodes.values())
        return Member(user_id, self._info(nodes), connections)

    def count(self, feed: str) -> int:
        return len(self._rooms.get(feed, ()))

    def page(self, feed: str, limit: int, after: str | None) -> tuple[list[Member], str | None]:
        """Members by user id, the first `limit` after `after`; and the cursor of the next page
        (the last user id given), None when there is no more."""
        users = self._rooms.get(feed, {})
        ids = sorted(u for u in users if after is None or u > after)
        members = [m for u in ids[:limit] if (m := self.member(feed, u)) is not None]
        return members, (ids[limit - 1] if len(ids) > limit else None)

    def feeds(self) -> Iterable[str]:
        return self._rooms.keys()

    @staticmethod
    def _info(nodes: dict[str, Entry]) -> Any:
        first = min(nodes.items(), key=lambda item: (item[1].since, item[0]))
        return first[1].info
