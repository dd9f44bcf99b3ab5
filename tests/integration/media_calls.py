"""Uploads as Stream's SDKs send them (multipart, a `file` field), images made with Pillow, and
what the store holds of them."""

from __future__ import annotations

import io
from typing import Any

import requests
from PIL import Image
from pymongo import MongoClient

from harness.common import SERVER_TOKEN, token
from tests.support import API_KEY, ServerProcess

WAIT = 15.0
Doc = dict[str, Any]


def user(name: str) -> str:
    return token({"user_id": name})


def upload(
    server: ServerProcess, kind: str, data: bytes, name: str = "x.bin",
    content_type: str | None = None, auth: str = SERVER_TOKEN,
) -> requests.Response:  # fmt: skip
    part = (name, data) if content_type is None else (name, data, content_type)
    return requests.post(
        f"{server.url}/api/v1.0/{kind}/", params={"api_key": API_KEY}, files={"file": part},
        headers={"Authorization": auth, "stream-auth-type": "jwt"}, timeout=WAIT,
    )  # fmt: skip


def call(
    server: ServerProcess, method: str, path: str, auth: str = SERVER_TOKEN, **query: Any
) -> requests.Response:
    return requests.request(
        method, f"{server.url}/api/v1.0/{path}", params={"api_key": API_KEY, **query},
        headers={"Authorization": auth, "stream-auth-type": "jwt"}, timeout=WAIT,
    )  # fmt: skip


def image_bytes(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A `width` x `height` image: its top half red, its bottom half blue."""
    image = Image.new(mode, (width, height), "red" if mode == "RGB" else 0)
    if mode == "RGB":
        image.paste((0, 0, 255), (0, height // 2, width, height))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def fetched_image(url: str) -> Image.Image:
    answer = requests.get(url, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(answer.content))
    image.load()
    return image


def stored_blobs(mongo: MongoClient[Doc], server: ServerProcess) -> int:
    return mongo[server.database]["media.files"].count_documents({})


def raw_upload(server: ServerProcess, kind: str, body: Any, content_type: str) -> requests.Response:
    """A body as given (bytes, or an iterator of them: sent chunked, with no length)."""
    return requests.post(
        f"{server.url}/api/v1.0/{kind}/", params={"api_key": API_KEY}, data=body,
        headers={"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt",
                 "Content-Type": content_type}, timeout=WAIT,
    )  # fmt: skip


def part(name: str, data: bytes, filename: str = "a.txt") -> bytes:
    return (
        (
            f'--b\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
