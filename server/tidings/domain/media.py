"""Uploaded files and images, pure: names, content types, the URLs they are served at (signed,
so that a URL cannot be guessed or made up) and the image processing a request asks for."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from .errors import DoesNotExistError, InputError

Kind = Literal["files", "images"]
KINDS: tuple[Kind, ...] = ("files", "images")
ORIGINAL = "o"  # the variant of an upload itself; processed images have a digest instead
MEDIA_PATH = "/media"
MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_ROOT = re.compile(r"^[a-f0-9]{32}$")
_VARIANT = re.compile(r"^(o|[a-f0-9]{16})$")
OCTET_STREAM = "application/octet-stream"

RESIZES = ("clip", "crop", "scale", "fill")
CROPS = ("top", "bottom", "left", "right", "center")


def clean_name(raw: str | None, default: str = "file") -> str:
    """A file name safe in a URL path and a header: the last path segment of what the client
    sent, characters other than letters, digits, `.`, `_` and `-` replaced, at most 100."""
    base = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", base).strip("._")[-MAX_NAME:].lstrip(".")
    return name or default


def file_type(declared: str | None, name: str) -> str:
    """The MIME type a file is stored and served with: the one its part declared, else one
    guessed from its name, else application/octet-stream. Parameters are dropped."""
    mime = (declared or "").split(";", 1)[0].strip().lower()
    if not mime or mime == OCTET_STREAM:
        mime = mimetypes.guess_type(name, strict=False)[0] or OCTET_STREAM
    return mime if _MIME.match(mime) else OCTET_STREAM


@dataclass(frozen=True)
class MediaRef:
    """Where one stored blob is served: /media/<kind>/<root>/<variant>/<name>. `root` names an
    upload; its processed images share it, so that deleting the upload deletes them too."""

    kind: Kind
    root: str
    variant: str
    name: str

    @classmethod
    def new(cls, kind: Kind, name: str) -> MediaRef:
        return cls(kind, secrets.token_hex(16), ORIGINAL, name)

    @property
    def key(self) -> str:
        """The blob store's key."""
        return f"{self.kind}/{self.root}/{self.variant}"

    @property
    def upload_prefix(self) -> str:
        """The keys of the upload and every image processed from it."""
        return f"{self.kind}/{self.root}/"

    @property
    def path(self) -> str:
        return f"{MEDIA_PATH}/{self.kind}/{self.root}/{self.variant}/{quote(self.name)}"

    def signature(self, secret: str) -> str:
        digest = hmac.new(secret.encode(), self.path.encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def url(self, base: str, secret: str) -> str:
        return f"{base}{self.path}?sig={self.signature(secret)}"

    def variant_of(self, spec: ProcessSpec) -> MediaRef:
        """The processed image `spec` makes of this one (the same spec: the same blob)."""
        digest = hashlib.sha256(f"{self.variant}|{spec.key}".encode()).hexdigest()[:16]
        return MediaRef(self.kind, self.root, digest, self.name)


def served_ref(kind: str, root: str, variant: str, name: str, sig: str, secret: str) -> MediaRef:
    """The blob a /media/ URL names; DoesNotExistError when it is not one this server signed."""
    if kind not in KINDS or not _ROOT.match(root) or not _VARIANT.match(variant):
        raise DoesNotExistError("no such file")
    ref = MediaRef("files" if kind == "files" else "images", root, variant, clean_name(name))
    if ref.name != name or not hmac.compare_digest(ref.signature(secret), sig):
        raise DoesNotExistError("no such file")
    return ref


def parse_media_url(url: str, kind: Kind, secret: str) -> MediaRef:
    """The blob a `?url=` names (a URL an upload or a process answered): InputError when it is
    not a URL of this kind; DoesNotExistError when its signature is not this server's."""
    if not url:
        raise InputError("missing url query parameter", {"url": ["required"]})
    parts = urlsplit(url)
    segments = parts.path.split("/")
    prefix = MEDIA_PATH.strip("/")
    if len(segments) < 6 or segments[-5] != prefix or segments[-4] != kind:
        raise InputError(f"url is not a URL of uploaded {kind}", {"url": [f"not one of {kind}/"]})
    sig = dict(p.partition("=")[::2] for p in parts.query.split("&") if p).get("sig", "")
    root, variant, name = segments[-3], segments[-2], unquote(segments[-1])
    return served_ref(kind, root, variant, name, sig, secret)


@dataclass(frozen=True)
class ProcessSpec:
    """An image processing request, as Stream's SDKs send it: `w`, `h`, `resize` (clip: fit
    inside, crop: fill and cut, scale: stretch, fill: fit inside and pad) and `crop` (where a
    crop keeps the image: top, bottom, left, right, center, or two of them, `bottom,right`)."""

    w: int | None
    h: int | None
    resize: str
    crop: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.w}x{self.h}:{self.resize}:{','.join(self.crop)}"


def parse_process(query: Mapping[str, str], max_side: int) -> ProcessSpec:
    """The processing a GET images/ asks for; InputError (400) for anything else."""
    w, h = _side(query, "w", max_side), _side(query, "h", max_side)
    resize = query.get("resize", "") or "clip"
    if resize not in RESIZES:
        raise InputError(f"resize must be one of {', '.join(RESIZES)}", {"resize": [resize]})
    crop = tuple(c.strip() for c in (query.get("crop", "") or "center").split(",") if c.strip())
    if not crop or len(crop) > 2 or any(c not in CROPS for c in crop):
        raise InputError(
            f"crop must be one or two of {', '.join(CROPS)}, comma-separated",
            {"crop": [query.get("crop", "")]},
        )
    if w is None and h is None:
        raise InputError("w or h is required", {"w": ["required"], "h": ["required"]})
    if resize != "clip" and (w is None or h is None):
        raise InputError(f"resize={resize} needs both w and h", {"w": ["required"]})
    return ProcessSpec(w, h, resize, crop)


def _side(query: Mapping[str, str], name: str, max_side: int) -> int | None:
    raw = query.get(name, "")
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name} must be an integer", {name: [raw]}) from None
    if not 1 <= value <= max_side:
        raise InputError(f"{name} must be between 1 and {max_side}", {name: [raw]})
    return value
