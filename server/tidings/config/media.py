"""The `[media]` settings (uploaded files and images: store, bounds, processing) and the `[og]`
settings (link previews: the bounded fetch and its address guard)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from .sections import Section, positive

GRIDFS, S3 = "gridfs", "s3"
# Pillow's names of the image formats an upload may be (lower case)
IMAGE_FORMATS = frozenset({"jpeg", "png", "gif", "webp", "bmp", "tiff"})


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))


@dataclass(frozen=True)
class MediaSettings:
    store: str = GRIDFS
    public_url: str = ""
    max_file_bytes: int = 10485760
    max_image_bytes: int = 10485760
    max_image_pixels: int = 40000000
    max_process_side: int = 4096
    file_types: str = ""
    image_formats: str = "jpeg,png,gif,webp"
    cache_seconds: int = 86400
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = "us-east-1"
    s3_endpoint_url: str = ""

    @property
    def allowed_file_types(self) -> frozenset[str]:
        """The MIME types a file upload may have; empty: any."""
        return frozenset(_names(self.file_types))

    @property
    def allowed_image_formats(self) -> frozenset[str]:
        return frozenset(_names(self.image_formats))


@dataclass(frozen=True)
class OgSettings:
    max_bytes: int = 1048576
    timeout_seconds: float = 5.0
    max_redirects: int = 5
    allow_private: bool = False
    user_agent: str = "Tidings-opengraph-bot/1.0 (facebookexternalhit/1.1 compatible)"


class MediaSchema(Section):
    store = fields.String(load_default=GRIDFS, validate=validate.OneOf([GRIDFS, S3]))
    public_url = fields.String(
        load_default="", validate=validate.Regexp(r"^(https?://[^/?#\s]+(/[^?#\s]*)?)?$")
    )
    max_file_bytes = fields.Integer(load_default=10485760, validate=positive())
    max_image_bytes = fields.Integer(load_default=10485760, validate=positive())
    max_image_pixels = fields.Integer(load_default=40000000, validate=positive())
    max_process_side = fields.Integer(load_default=4096, validate=positive(max=65535))
    file_types = fields.String(load_default="")
    image_formats = fields.String(load_default="jpeg,png,gif,webp")
    cache_seconds = fields.Integer(load_default=86400, validate=validate.Range(min=0))
    s3_bucket = fields.String(load_default="")
    s3_prefix = fields.String(load_default="")
    s3_region = fields.String(load_default="us-east-1")
    s3_endpoint_url = fields.String(load_default="")

    @validates_schema
    def consistent(self, data: dict[str, Any], **_: Any) -> None:
        unknown = set(_names(data.get("image_formats", ""))) - IMAGE_FORMATS
        if unknown or not _names(data.get("image_formats", "")):
            raise ValidationError(
                f"a comma-separated list of {', '.join(sorted(IMAGE_FORMATS))}", "image_formats"
            )
        if data.get("store") == S3 and not data.get("s3_bucket"):
            raise ValidationError('needed when store = "s3"', "s3_bucket")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> MediaSettings:
        data["public_url"] = data["public_url"].rstrip("/")
        return MediaSettings(**data)


class OgSchema(Section):
    max_bytes = fields.Integer(load_default=1048576, validate=positive())
    timeout_seconds = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=60))
    max_redirects = fields.Integer(load_default=5, validate=validate.Range(min=0, max=20))
    allow_private = fields.Boolean(load_default=False)
    user_agent = fields.String(load_default=OgSettings.user_agent)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> OgSettings:
        return OgSettings(**data)
