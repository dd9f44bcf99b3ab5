"""files/, images/ (Stream's uploads, deletes and image processing), og/ (link previews), and
/media/, where uploads are served back."""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..domain.errors import InputError, PayloadTooLargeError
from ..domain.media import Kind, parse_process, served_ref
from ..media.service import may_upload
from .context import authenticate
from .errors import answer
from .keys import MEDIA, PREVIEWS, SETTINGS

MAX_PARTS = 8  # form fields looked at for the `file` one
CHUNK = 65536
ENVELOPE = 65536  # bytes of a body besides its file: boundaries, headers, small fields


async def upload_file(request: web.Request) -> web.Response:
    return await _upload(request, "files")


async def upload_image(request: web.Request) -> web.Response:
    return await _upload(request, "images")


async def delete_file(request: web.Request) -> web.Response:
    await request.config_dict[MEDIA].delete("files", request.query.get("url", ""),
                                            authenticate(request))  # fmt: skip
    return answer(request, {})


async def delete_image(request: web.Request) -> web.Response:
    await request.config_dict[MEDIA].delete("images", request.query.get("url", ""),
                                            authenticate(request))  # fmt: skip
    return answer(request, {})


async def process_image(request: web.Request) -> web.Response:
    """GET images/?url=&w=&h=&resize=&crop= (the SDKs' `images.process` and `thumbnail`)."""
    grant = authenticate(request)
    service = request.config_dict[MEDIA]
    spec = parse_process(request.query, service.settings.max_process_side)
    url = await service.process(request.query.get("url", ""), spec, grant, _base(request))
    return answer(request, {"file": url})


async def open_graph(request: web.Request) -> web.Response:
    authenticate(request)
    url = request.query.get("url", "")
    if not url:
        raise InputError("missing url query parameter", {"url": ["required"]})
    return answer(request, await request.config_dict[PREVIEWS].preview(url))


async def serve(request: web.Request) -> web.Response:
    """An upload, for anyone holding its signed URL; never rendered as a page of this site."""
    info = request.match_info
    secret = str(request.config_dict[SETTINGS].auth.api_secret)
    ref = served_ref(info["kind"], info["root"], info["variant"], info["name"],
                     request.query.get("sig", ""), secret)  # fmt: skip
    blob = await request.config_dict[MEDIA].open(ref)
    disposition = "attachment" if ref.kind == "files" else "inline"
    max_age = request.config_dict[SETTINGS].media.cache_seconds
    headers = {
        "Cache-Control": f"public, max-age={max_age}, immutable",
        "Content-Disposition": f'{disposition}; filename="{ref.name}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "ETag": f'"{ref.variant}-{blob.info.size}"',
    }
    return web.Response(body=blob.data, content_type=blob.info.content_type, headers=headers)


async def _upload(request: web.Request, kind: Kind) -> web.Response:
    grant = authenticate(request)
    may_upload(grant, kind)  # before reading the body
    service = request.config_dict[MEDIA]
    data, declared, name = await _file_part(request, service.max_bytes(kind))
    url = await service.upload(kind, data, declared, name, grant, _base(request))
    return answer(request, {"file": url})


async def _file_part(request: web.Request, max_bytes: int) -> tuple[bytes, str | None, str | None]:
    """The `file` field of a multipart/form-data body, read to at most `max_bytes` (413 past
    them: the rest is never read)."""
    if request.content_type != "multipart/form-data":
        raise InputError("upload a multipart/form-data body with a `file` field",
                         {"file": ["required"]})  # fmt: skip
    if (request.content_length or 0) > max_bytes + ENVELOPE:
        raise PayloadTooLargeError(
            f"file too large: at most {max_bytes} bytes", {"file": ["too large"]}
        )
    try:
        return await _read_file_part(request, max_bytes)
    # aiohttp's words for a malformed multipart body: ValueError, or a part's bad header
    except (ValueError, HttpProcessingError) as exc:
        raise InputError(f"malformed multipart body: {exc}", {"file": ["malformed"]}) from None


async def _read_file_part(
    request: web.Request, max_bytes: int
) -> tuple[bytes, str | None, str | None]:
    reader = await request.multipart()
    found: tuple[bytes, str | None, str | None] | None = None
    for _ in range(MAX_PARTS):
        part = await reader.next()
        if part is None:  # the closing boundary: a body cut short raised ValueError instead
            if found is None:
                raise InputError("the body has no `file` field", {"file": ["required"]})
            return found
        if not isinstance(part, BodyPartReader):
            raise InputError("a nested multipart body is not an upload", {"file": ["nested"]})
        if part.name == "file" and found is None:
            data = await _read(part, max_bytes, f"file too large: at most {max_bytes} bytes")
            found = data, part.headers.get("Content-Type"), part.filename
        else:
            await _read(part, ENVELOPE, "only `file` may be a large field")
    raise InputError(f"more than {MAX_PARTS} fields", {"file": ["too many fields"]})


async def _read(part: BodyPartReader, max_bytes: int, too_large: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise PayloadTooLargeError(too_large, {"file": ["too large"]})
    return bytes(data)


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
