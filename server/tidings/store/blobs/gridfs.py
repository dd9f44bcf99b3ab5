"""Uploaded files and images in GridFS (PyMongo's async bucket), in the feeds' database, with
its write concern: a blob is acknowledged as durably as an activity."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ...domain.ports import Blob, BlobInfo

BUCKET = "media"


class GridFsBlobs:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.db = db
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    async def put(self, key: str, data: bytes, info: BlobInfo) -> None:
        if await self.info(key) is not None:
            return
        metadata = {"content_type": info.content_type, "owner": info.owner}
        # DuplicateKeyError: the same processed image, written at once by another request
        with contextlib.suppress(DuplicateKeyError):
            await self.bucket.upload_from_stream_with_id(key, info.name, data, metadata=metadata)

    async def get(self, key: str) -> Blob | None:
        try:
            stream = await self.bucket.open_download_stream(key)
        except NoFile:
            return None
        data = await stream.read()
        return Blob(_info(stream.filename, stream.metadata, len(data)), data)

    async def info(self, key: str) -> BlobInfo | None:
        doc = await self.db[f"{BUCKET}.files"].find_one({"_id": key})
        if doc is None:
            return None
        return _info(doc.get("filename"), doc.get("metadata"), int(doc.get("length", 0)))

    async def delete_prefix(self, prefix: str) -> int:
        files = self.db[f"{BUCKET}.files"]
        keys = [d["_id"] async for d in files.find({"_id": {"$regex": "^" + re.escape(prefix)}})]
        for key in keys:
            with contextlib.suppress(NoFile):  # deleted meanwhile by another request
                await self.bucket.delete(key)
        return len(keys)


def _info(name: Any, metadata: Any, size: int) -> BlobInfo:
    meta = metadata if isinstance(metadata, dict) else {}
    owner = meta.get("owner")
    return BlobInfo(
        content_type=str(meta.get("content_type") or "application/octet-stream"),
        name=str(name or "file"),
        owner=None if owner is None else str(owner),
        size=size,
    )
