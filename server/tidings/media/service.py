"""The use cases of uploaded files and images: upload, delete, process, serve.

Who may do what, as Stream: any token of the app may upload (a user token's uploads are that
user's); the uploader's user token, or a server token, may delete an upload or process an
image; anyone holding a URL may fetch it (it carries a signature, so it cannot be guessed).
"""

from __future__ import annotations

import asyncio

from ..auth import Grant
from ..config.media import MediaSettings
from ..domain.errors import DoesNotExistError, InputError, NotAllowedError, PayloadTooLargeError
from ..domain.media import Kind, MediaRef, ProcessSpec, clean_name, file_type, parse_media_url
from ..domain.ports import Blob, BlobInfo, BlobStore
from . import images


class MediaService:
    def __init__(self, store: BlobStore, settings: MediaSettings, secret: str) -> None:
        self.store, self.settings, self.secret = store, settings, secret

    def max_bytes(self, kind: Kind) -> int:
        return self.settings.max_image_bytes if kind == "images" else self.settings.max_file_bytes

    async def upload(
        self, kind: Kind, data: bytes, declared: str | None, raw_name: str | None,
        grant: Grant, base: str,
    ) -> str:  # fmt: skip
        """Store one upload (already read, at most `max_bytes(kind)`); its URL."""
        may_upload(grant, kind)
        if len(data) > self.max_bytes(kind):
            raise PayloadTooLargeError(f"{kind[:-1]} too large", {"file": ["too large"]})
        name = clean_name(raw_name)
        if kind == "images":
            facts = await asyncio.to_thread(
                images.inspect, data, self.settings.allowed_image_formats,
                self.settings.max_image_pixels,
            )  # fmt: skip
            content_type = facts.mime
        else:
            content_type = file_type(declared, name)
            allowed = self.settings.allowed_file_types
            if allowed and content_type not in allowed:
                raise InputError(
                    f"File type {content_type} is not supported", {"file": [content_type]}
                )
        ref = MediaRef.new(kind, name)
        await self.store.put(ref.key, data, BlobInfo(content_type, name, grant.user_id, len(data)))
        return ref.url(self.base(base), self.secret)

    async def delete(self, kind: Kind, url: str, grant: Grant) -> None:
        ref = parse_media_url(url, kind, self.secret)
        info = await self._info(ref)
        may_manage(grant, kind, info, "delete")
        prefix = ref.upload_prefix if ref.variant == "o" else ref.key
        await self.store.delete_prefix(prefix)

    async def process(self, url: str, spec: ProcessSpec, grant: Grant, base: str) -> str:
        """The URL of the image `spec` makes of the one `url` names (made once, then kept)."""
        ref = parse_media_url(url, "images", self.secret)
        blob = await self._blob(ref)
        may_manage(grant, "images", blob.info, "process")
        variant = ref.variant_of(spec)
        if await self.store.info(variant.key) is None:
            data, mime = await asyncio.to_thread(
                images.process, blob.data, spec, self.settings.max_image_pixels
            )
            info = BlobInfo(mime, blob.info.name, blob.info.owner, len(data))
            await self.store.put(variant.key, data, info)
        return variant.url(self.base(base), self.secret)

    async def open(self, ref: MediaRef) -> Blob:
        return await self._blob(ref)

    def base(self, request_base: str) -> str:
        return self.settings.public_url or request_base

    async def _info(self, ref: MediaRef) -> BlobInfo:
        info = await self.store.info(ref.key)
        if info is None:
            raise DoesNotExistError(f"{ref.kind[:-1]} does not exist")
        return info

    async def _blob(self, ref: MediaRef) -> Blob:
        blob = await self.store.get(ref.key)
        if blob is None:
            raise DoesNotExistError(f"{ref.kind[:-1]} does not exist")
        return blob


def server_side(grant: Grant, kind: Kind) -> bool:
    """A token for every feed and this resource (`*` or `files`/`images`): a server token."""
    return grant.resource in ("*", kind) and grant.action == "*" and grant.feed_id == "*"


def may_upload(grant: Grant, kind: Kind) -> None:
    if grant.user_id is None and not server_side(grant, kind):
        raise NotAllowedError(f"you don't have permission to upload {kind}: use a user token "
                              "or a server token")  # fmt: skip


def may_manage(grant: Grant, kind: Kind, info: BlobInfo, action: str) -> None:
    """The uploader (its user token) or a server token; no one else."""
    if server_side(grant, kind):
        return
    if grant.user_id is not None and grant.user_id == info.owner:
        return
    raise NotAllowedError(f"you don't have permission to {action} this {kind[:-1]}: "
                          "only its uploader or a server token may")  # fmt: skip
