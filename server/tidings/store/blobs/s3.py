"""Uploaded files and images in an S3-compatible bucket (aiobotocore, as the firehose's SQS).
The name and owner travel as object metadata (x-amz-meta-*), percent-encoded: S3 metadata is
ASCII."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote, unquote

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from ...config.media import MediaSettings
from ...domain.ports import Blob, BlobInfo

NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
DELETE_BATCH = 1000  # S3's most keys of one DeleteObjects


def s3_client(settings: MediaSettings) -> AbstractAsyncContextManager[Any]:
    """The S3 client of `[media]` s3_* (credentials: AWS's chain), as a context manager."""
    config = AioConfig(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3})
    return get_session().create_client(  # type: ignore[no-any-return]
        "s3", region_name=settings.s3_region, endpoint_url=settings.s3_endpoint_url or None,
        config=config,
    )  # fmt: skip


class S3Blobs:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client  # an aiobotocore S3 client
        self.bucket, self.prefix = bucket, prefix

    async def put(self, key: str, data: bytes, info: BlobInfo) -> None:
        metadata = {"name": quote(info.name)}
        if info.owner is not None:
            metadata["owner"] = quote(info.owner)
        await self.client.put_object(
            Bucket=self.bucket, Key=self.prefix + key, Body=data,
            ContentType=info.content_type, Metadata=metadata,
        )  # fmt: skip

    async def get(self, key: str) -> Blob | None:
        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        async with answer["Body"] as body:
            data = await body.read()
        return Blob(_info(answer, len(data)), data)

    async def info(self, key: str) -> BlobInfo | None:
        try:
            answer = await self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return _info(answer, int(answer.get("ContentLength", 0)))

    async def delete_prefix(self, prefix: str) -> int:
        keys: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        async for page in pages:
            keys += [item["Key"] for item in page.get("Contents", [])]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            await self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
        return len(keys)


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in NOT_FOUND


def _info(answer: dict[str, Any], size: int) -> BlobInfo:
    meta = answer.get("Metadata") or {}
    owner = meta.get("owner")
    return BlobInfo(
        content_type=str(answer.get("ContentType") or "application/octet-stream"),
        name=unquote(meta.get("name", "file")),
        owner=None if owner is None else unquote(owner),
        size=size,
    )
