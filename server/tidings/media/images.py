"""Pillow: what an image upload really is, and the processed images (thumbnails, crops).
Everything here is CPU work on bytes; the service runs it in a thread."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from ..domain.errors import InputError
from ..domain.media import OCTET_STREAM, ProcessSpec

# Where a crop keeps the image: (x, y) of ImageOps.fit's centering, 0 = left/top, 1 = right/bottom
_X = {"left": 0.0, "right": 1.0}
_Y = {"top": 0.0, "bottom": 1.0}
_SAVE = {"JPEG": {"quality": 88}, "WEBP": {"quality": 88}}


@dataclass(frozen=True)
class ImageFacts:
    format: str  # Pillow's name: JPEG, PNG, ...
    mime: str
    width: int
    height: int


def inspect(data: bytes, formats: frozenset[str], max_pixels: int) -> ImageFacts:
    """The image the bytes are (whatever the client says): InputError if they are no image
    (`File type application/octet-stream is not supported`, as Stream answers), an image of a
    format not allowed (its type named), bigger than `max_pixels` (checked from the header,
    before any pixel is decoded), or damaged."""
    refused = _unsupported(OCTET_STREAM)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                facts = _facts(image)
                if facts.format.lower() not in formats:
                    raise _unsupported(facts.mime)
                _bounded(facts.width, facts.height, max_pixels)
                image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise refused from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("image too large", {"file": [f"more than {max_pixels} pixels"]}) from None
    return facts


def process(data: bytes, spec: ProcessSpec, max_pixels: int) -> tuple[bytes, str]:
    """The processed image `spec` asks for, in the original's format; and its MIME type."""
    with Image.open(io.BytesIO(data)) as image:
        facts = _facts(image)
        _bounded(facts.width, facts.height, max_pixels)
        image.seek(0)
        source = ImageOps.exif_transpose(image)
        result = _resized(source, spec)
        if facts.format == "JPEG" and result.mode not in ("RGB", "L"):
            result = result.convert("RGB")
        out = io.BytesIO()
        result.save(out, format=facts.format, **_SAVE.get(facts.format, {}))
    return out.getvalue(), facts.mime


def _resized(image: Image.Image, spec: ProcessSpec) -> Image.Image:
    width, height = image.size
    w, h = spec.w or width * 10**6, spec.h or height * 10**6  # a missing side: no bound
    if spec.resize == "scale":
        return image.resize((w, h), Image.Resampling.LANCZOS)
    if spec.resize == "crop":
        centering = (
            next((_X[c] for c in spec.crop if c in _X), 0.5),
            next((_Y[c] for c in spec.crop if c in _Y), 0.5),
        )
        return ImageOps.fit(image, (w, h), Image.Resampling.LANCZOS, centering=centering)
    if spec.resize == "fill":
        mode = image.mode if image.mode in ("RGB", "RGBA", "L") else "RGBA"
        return ImageOps.pad(image.convert(mode), (w, h), Image.Resampling.LANCZOS)
    clipped = image.copy()  # clip: fit inside w x h, aspect ratio kept, never enlarged
    clipped.thumbnail((w, h), Image.Resampling.LANCZOS)
    return clipped


def _unsupported(mime: str) -> InputError:
    return InputError(f"File type {mime} is not supported", {"file": [mime]})


def _facts(image: Image.Image) -> ImageFacts:
    fmt = image.format or ""
    return ImageFacts(fmt, Image.MIME.get(fmt, OCTET_STREAM), *image.size)


def _bounded(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputError("image too large", {"file": [f"more than {max_pixels} pixels"]})
