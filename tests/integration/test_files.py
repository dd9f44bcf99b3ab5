"""Stream's files/ and images/ against a real server: uploads (multipart, as the SDKs send
them), the signed URLs served back with safe headers, deletes by the uploader or a server
token only, image processing checked with Pillow, refusals that store nothing; GridFS in the
store by default, an S3 bucket (moto's server) as the option."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import requests
from pymongo import MongoClient

from harness.common import token
from harness.pool import ServerPool
from harness.server import Spawn
from harness.sqs import AWS_ENV, MotoServer
from tests.integration.media_calls import (
    Doc,
    call,
    fetched_image,
    image_bytes,
    part,
    raw_upload,
    stored_blobs,
    upload,
    user,
)
from tests.integration.rest_calls import stream_js
from tests.support import ServerProcess


def test_a_file_is_uploaded_served_and_deleted_by_its_uploader(
    server: ServerProcess, uid: str
) -> None:
    alice, bob = user(f"alice-{uid}"), user(f"bob-{uid}")
    answer = upload(server, "files", b"hello world\n", "hello world.txt", "text/plain", alice)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"file", "duration"}
    url = body["file"]
    assert url.startswith(server.url + "/media/files/") and "hello_world.txt?" in url
    served = requests.get(url, timeout=10)
    assert served.status_code == 200 and served.content == b"hello world\n"
    assert served.headers["Content-Type"].startswith("text/plain")
    assert served.headers["Content-Length"] == "12"
    assert served.headers["Content-Disposition"] == 'attachment; filename="hello_world.txt"'
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert served.headers["Cache-Control"].startswith("public, max-age=86400")
    refused = call(server, "DELETE", "files/", bob, url=url)
    assert refused.status_code == 403 and refused.json()["code"] == 17
    assert requests.get(url, timeout=10).status_code == 200
    assert call(server, "DELETE", "files/", alice, url=url).status_code == 200
    assert requests.get(url, timeout=10).status_code == 404
    gone = call(server, "DELETE", "files/", alice, url=url)
    assert gone.status_code == 404 and gone.json()["exception"] == "DoesNotExistException"


def test_an_uploaded_page_is_never_rendered_and_urls_cannot_be_made_up(
    server: ServerProcess,
) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    url = upload(server, "files", page, "x.html", "text/html").json()["file"]
    served = requests.get(url, timeout=10)
    assert served.headers["Content-Type"].startswith("text/html")
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(url[:-4] + "0000", timeout=10).status_code == 404  # signature changed
    assert requests.get(url.split("?")[0], timeout=10).status_code == 404  # no signature
    other = url.replace("/media/files/", "/media/images/")
    assert requests.get(other, timeout=10).status_code == 404
    # a server token deletes anyone's upload
    assert call(server, "DELETE", "files/", url=url).status_code == 200


def test_an_image_is_processed_as_the_sdks_ask(server: ServerProcess, uid: str) -> None:
    alice, bob = user(f"alice-{uid}"), user(f"bob-{uid}")
    answer = upload(server, "images", image_bytes(200, 100), "pic.png", "image/png", alice)
    assert answer.status_code == 200, answer.text
    url = answer.json()["file"]
    original = fetched_image(url)
    assert (original.format, original.size) == ("PNG", (200, 100))

    def process(auth: str = alice, **params: Any) -> requests.Response:
        return call(server, "GET", "images/", auth, url=url, **params)

    thumb = process(w=50, h=50, crop="center", resize="clip")  # images.thumbnail(url, 50, 50)
    assert thumb.status_code == 200 and set(thumb.json()) == {"file", "duration"}
    assert fetched_image(thumb.json()["file"]).size == (50, 25)  # fits inside, aspect kept
    assert process(w=50, h=50, crop="center", resize="clip").json()["file"] == thumb.json()["file"]
    bottom = fetched_image(process(w=100, h=20, crop="bottom", resize="crop").json()["file"])
    assert bottom.size == (100, 20)
    assert bottom.convert("RGB").getpixel((50, 10)) == (0, 0, 255)  # the bottom half: blue
    top = fetched_image(process(w=100, h=20, crop="top", resize="crop").json()["file"])
    assert top.convert("RGB").getpixel((50, 10)) == (255, 0, 0)
    assert fetched_image(process(w=140, h=30, resize="scale").json()["file"]).size == (140, 30)
    filled = fetched_image(process(w=60, h=60, resize="fill").json()["file"])
    assert filled.size == (60, 60)
    for bad in ({"crop": "impossible", "w": 10}, {"w": -1}, {"h": -1},
                {"resize": "impossible", "w": 10}, {"w": 100000}, {}):  # fmt: skip
        refused = process(**bad)
        assert refused.status_code == 400 and refused.json()["code"] == 4, (bad, refused.text)
    assert process(bob, w=75, h=50, crop="bottom,right", resize="crop").status_code == 403
    assert call(server, "DELETE", "images/", bob, url=url).status_code == 403
    assert call(server, "DELETE", "images/", alice, url=url).status_code == 200
    for gone in (url, thumb.json()["file"]):  # the processed images went with it
        assert requests.get(gone, timeout=10).status_code == 404


def test_images_must_really_be_images_and_refusals_store_nothing(
    server: ServerProcess, mongo: MongoClient[Doc]
) -> None:
    before = stored_blobs(mongo, server)
    text = upload(server, "images", b"hello world\n", "helloworld.txt")
    assert text.status_code == 400
    assert text.json()["detail"] == "File type application/octet-stream is not supported"
    renamed = upload(server, "images", b"GIF89a not really", "x.gif", "image/gif")
    assert renamed.json()["detail"] == "File type application/octet-stream is not supported"
    bmp = upload(server, "images", image_bytes(10, 10, "BMP"), "x.bmp")  # not in image_formats
    assert bmp.status_code == 400 and bmp.json()["detail"] == "File type image/bmp is not supported"
    # a decompression bomb: 100 million pixels in a few KB, refused from its header
    bomb = upload(server, "images", image_bytes(10000, 10000, mode="1"), "bomb.png")
    assert bomb.status_code == 400 and bomb.json()["detail"] == "image too large", bomb.text
    reader = token({"resource": "feed", "action": "read", "feed_id": "user1"})
    assert upload(server, "files", b"x", auth=reader).status_code == 403
    not_multipart = call(server, "POST", "files/")
    assert not_multipart.status_code == 400
    form = "multipart/form-data; boundary=b"
    for body, content_type in [
        (b"garbage", "multipart/form-data"),  # no boundary
        (b"garbage", form),
        (part("file", b"abc"), form),  # cut short: no closing boundary
        (part("other", b"abc") + b"--b--\r\n", form),  # no `file` field
        (part("other", b"x" * 100_000) + part("file", b"abc") + b"--b--\r\n", form),
        (b"".join(part(f"f{i}", b"x") for i in range(20)) + b"--b--\r\n", form),
    ]:
        refused = raw_upload(server, "files", body, content_type)
        assert refused.status_code in (400, 413) and refused.json()["code"] == 4, refused.text
    assert stored_blobs(mongo, server) == before


def test_uploads_are_bounded_in_size_and_type(pool: ServerPool, mongo: MongoClient[Doc]) -> None:
    server = pool.get({
        "TIDINGS_MEDIA_MAX_FILE_BYTES": "1000", "TIDINGS_MEDIA_MAX_IMAGE_BYTES": "100000",
        "TIDINGS_MEDIA_FILE_TYPES": "text/plain,application/pdf",
        "TIDINGS_MEDIA_MAX_IMAGE_PIXELS": "10000",
    })  # fmt: skip
    before = stored_blobs(mongo, server)
    big = upload(server, "files", b"x" * 5_000_000, "big.txt", "text/plain")
    assert big.status_code == 413 and big.json()["exception"] == "InputException"
    chunks = iter([part("file", b"x" * 200_000)[:-2], b"x" * 200_000, b"\r\n--b--\r\n"])
    chunked = raw_upload(server, "files", chunks, "multipart/form-data; boundary=b")
    assert chunked.status_code == 413, chunked.text  # no length: bounded while read
    assert upload(server, "files", b"<p>", "x.html", "text/html").status_code == 400
    assert upload(server, "images", image_bytes(200, 100), "x.png").status_code == 400  # pixels
    assert stored_blobs(mongo, server) == before
    assert upload(server, "files", b"x" * 1000, "ok.txt", "text/plain").status_code == 200
    assert upload(server, "files", b"%PDF-1.4", "ok.pdf").status_code == 200  # type from name
    assert stored_blobs(mongo, server) == before + 2


def test_streams_npm_sdk_uploads_processes_and_deletes(server: ServerProcess, uid: str) -> None:
    """The cases of the SDK's own files.js and images.js, through `client.files` and
    `client.images` with alice's and bob's user tokens."""
    alice, bob = f"alice-{uid}", f"bob-{uid}"
    text = {"$buffer": base64.b64encode(b"some string").decode()}
    png = {"$buffer": base64.b64encode(image_bytes(120, 80)).decode()}
    first = stream_js(server, [
        {"user": alice, "on": "files", "method": "upload", "args": [text, "x.txt", "text/plain"]},
        {"user": alice, "on": "images", "method": "upload", "args": [text, "helloworld.txt"]},
        {"user": alice, "on": "images", "method": "upload", "args": [png, "helloworld.png"]},
    ])  # fmt: skip
    assert first[0]["ok"] and "x.txt?" in first[0]["result"]["file"], first[0]
    assert set(first[0]["result"]) == {"file", "duration"}
    assert not first[1]["ok"] and first[1]["status"] == 400, first[1]
    assert first[1]["error"]["detail"] == "File type application/octet-stream is not supported"
    assert first[2]["ok"], first[2]
    file_url, image_url = first[0]["result"]["file"], first[2]["result"]["file"]
    second = stream_js(server, [
        {"user": alice, "on": "images", "method": "thumbnail", "args": [image_url, 50, 50]},
        {"user": alice, "on": "images", "method": "process",
         "args": [image_url, {"w": 75, "h": 50, "crop": "bottom", "resize": "crop"}]},
    ])  # fmt: skip
    assert fetched_image(second[0]["result"]["file"]).size == (50, 33)
    assert fetched_image(second[1]["result"]["file"]).size == (75, 50)
    third = stream_js(server, [
        {"user": alice, "on": "images", "method": "process", "args": [image_url, {"w": -1}]},
        {"user": bob, "on": "images", "method": "process",
         "args": [image_url, {"w": 75, "h": 50, "crop": "bottom,right", "resize": "crop"}]},
        {"user": bob, "on": "files", "method": "delete", "args": [file_url]},
        {"user": alice, "on": "files", "method": "delete", "args": [file_url]},
        {"user": alice, "on": "files", "method": "delete", "args": [file_url]},
        {"user": None, "on": "images", "method": "delete", "args": [image_url]},
    ])  # fmt: skip
    statuses = [r.get("status") for r in third]
    assert statuses == [400, 403, 403, None, 404, None], third
    assert requests.get(image_url, timeout=10).status_code == 404


def test_uploads_in_an_s3_bucket(
    moto: MotoServer, spawn: Spawn, mongo: MongoClient[Doc], uid: str
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    bucket = f"media-{uid}"
    s3.create_bucket(Bucket=bucket)
    server = spawn({
        **AWS_ENV, "TIDINGS_MEDIA_STORE": "s3", "TIDINGS_MEDIA_S3_BUCKET": bucket,
        "TIDINGS_MEDIA_S3_ENDPOINT_URL": moto.url, "TIDINGS_MEDIA_S3_PREFIX": "app/",
        "TIDINGS_MEDIA_PUBLIC_URL": "https://cdn.example.com/",
    })  # fmt: skip
    alice = user(f"alice-{uid}")
    answer = upload(server, "images", image_bytes(64, 64, "JPEG"), "é photo.jpg", None, alice)
    assert answer.status_code == 200, answer.text
    url = answer.json()["file"]
    assert url.startswith("https://cdn.example.com/media/images/") and "photo.jpg?" in url
    local = url.replace("https://cdn.example.com", server.url)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("app/images/") and keys[0].endswith("/o")
    image = fetched_image(local)
    assert (image.format, image.size) == ("JPEG", (64, 64))
    thumb = call(server, "GET", "images/", alice, url=url, w=32, h=32).json()["file"]
    assert fetched_image(thumb.replace("https://cdn.example.com", server.url)).size == (32, 32)
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 2
    assert mongo[server.database]["media.files"].count_documents({}) == 0
    assert call(server, "DELETE", "images/", alice, url=url).status_code == 200
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert requests.get(local, timeout=10).status_code == 404
