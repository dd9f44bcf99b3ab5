"""What fills the caches is read from the primary, whatever the URL's readPreference: a
lagging secondary's answer would be kept in memory as current. No server: the collections'
settings only (the client never connects)."""

from __future__ import annotations

from pymongo import AsyncMongoClient, ReadPreference

from tidings.store.mongo.activities import ActivityStore


async def test_fills_read_from_the_primary_when_the_url_prefers_secondaries() -> None:
    url = "mongodb://127.0.0.1:1/?readPreference=secondaryPreferred&replicaSet=rs"
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, connect=False)
    try:
        db = client["t"]
        assert db.read_preference == ReadPreference.SECONDARY_PREFERRED
        store = ActivityStore(db)
        assert store.activities.read_preference == ReadPreference.PRIMARY
        assert store.entries.read_preference == ReadPreference.PRIMARY
    finally:
        await client.close()
