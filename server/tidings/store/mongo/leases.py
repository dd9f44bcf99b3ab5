"""The lease fields of durable work, shared by fanout jobs (jobs.py) and firehose messages
(deliveries.py): a document names the node that holds it (`owner`) and until when
(`lease_until`). The holder renews it (tidings/leases.py runs the keep-alive); once
`lease_until` has passed, any node may take the document over. A graceful stop releases what
the node holds (`lease_until` in the past), so that others take it at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Leases:
    def __init__(self, collection: Any, node_id: str, lease: timedelta) -> None:
        self.collection, self.node_id, self.lease = collection, node_id, lease

    def end(self) -> datetime:
        """When a lease taken or renewed now ends."""
        return datetime.now(UTC) + self.lease

    async def renew(self, ids: Sequence[str]) -> set[str]:
        """Renew the leases of `ids`; answer those still this node's."""
        if not ids:
            return set()
        mine = {"_id": {"$in": list(ids)}, "owner": self.node_id}
        result = await self.collection.update_many(mine, {"$set": {"lease_until": self.end()}})
        if result.matched_count == len(ids):
            return set(ids)
        return {doc["_id"] async for doc in self.collection.find(mine, {"_id": 1})}

    async def release_all(self) -> int:
        result = await self.collection.update_many(
            {"owner": self.node_id}, {"$set": {"lease_until": EPOCH}}
        )
        count: int = result.modified_count
        return count
