"""The embedded store's URL turns retryable writes off: the store keeps a reply per retryable
write and, past 10,000 of them, sorts them all on every write (a soak at 20 operations a second
slowed without end after two minutes)."""

from __future__ import annotations

from pymongo import MongoClient

from tidings.store.mongo.embedded import local_url


def test_the_embedded_stores_url_has_no_retryable_writes() -> None:
    client: MongoClient[dict[str, object]] = MongoClient(local_url(27017), connect=False)
    try:
        assert client.options.retry_writes is False
        assert client.options.direct_connection is True
    finally:
        client.close()
