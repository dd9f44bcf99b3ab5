"""The pure parts of uploads and link previews: names, types, signed URLs, processing requests,
the address guard, Open Graph parsing."""

from __future__ import annotations

import ipaddress

import pytest

from tidings.domain.errors import DoesNotExistError, InputError
from tidings.domain.media import (
    MediaRef,
    ProcessSpec,
    clean_name,
    file_type,
    parse_media_url,
    parse_process,
)
from tidings.domain.og import parse_preview
from tidings.og.guard import public

SECRET = "s" * 32


@pytest.mark.parametrize(
    ("raw", "name"),
    [("../../etc/passwd", "passwd"), ("C:\\x\\a b.png", "a_b.png"), ("", "file"),
     (".htaccess", "htaccess"), ('a"b;c.txt', "a_b_c.txt"),
     ("x" * 300 + ".txt", "x" * 96 + ".txt")],
)  # fmt: skip
def test_names_are_safe_in_paths_and_headers(raw: str, name: str) -> None:
    assert clean_name(raw) == name


def test_file_types_from_the_part_or_the_name() -> None:
    assert file_type("text/plain; charset=utf-8", "a.bin") == "text/plain"
    assert file_type(None, "a.pdf") == "application/pdf"
    assert file_type("application/octet-stream", "a.png") == "image/png"
    assert file_type("not a type", "a") == "application/octet-stream"


def test_urls_are_signed_and_parsed_back() -> None:
    ref = MediaRef.new("images", "a.png")
    url = ref.url("https://cdn.example.com", SECRET)
    assert parse_media_url(url, "images", SECRET) == ref
    with pytest.raises(DoesNotExistError):
        parse_media_url(url, "images", "t" * 32)
    with pytest.raises(DoesNotExistError):
        parse_media_url(url.replace("/o/", "/0123456789abcdef/"), "images", SECRET)
    with pytest.raises(InputError):
        parse_media_url(url, "files", SECRET)
    with pytest.raises(InputError):
        parse_media_url("https://example.com/x.png", "images", SECRET)
    spec = ProcessSpec(10, 10, "clip", ("center",))
    assert ref.variant_of(spec) == ref.variant_of(spec) != ref
    assert ref.variant_of(spec).upload_prefix == ref.upload_prefix


def test_processing_requests_as_the_sdks_send_them() -> None:
    spec = parse_process({"w": "50", "h": "50", "crop": "bottom,right", "resize": "crop"}, 4096)
    assert spec == ProcessSpec(50, 50, "crop", ("bottom", "right"))
    assert parse_process({"w": "10"}, 4096) == ProcessSpec(10, None, "clip", ("center",))
    for bad in ({"w": "-1"}, {"h": "0"}, {"w": "5000"}, {"w": "x"}, {},
                {"w": "1", "crop": "impossible"}, {"w": "1", "resize": "impossible"},
                {"w": "1", "resize": "crop"}, {"w": "1", "crop": "top,left,right"}):  # fmt: skip
        with pytest.raises(InputError):
            parse_process(bad, 4096)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
     ("192.168.0.1", False), ("172.16.0.1", False), ("169.254.169.254", False), ("::1", False),
     ("fe80::1", False), ("fd00:ec2::254", False), ("::ffff:127.0.0.1", False),
     ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False)],
)  # fmt: skip
def test_only_public_addresses_are_fetched(address: str, allowed: bool) -> None:
    assert public(ipaddress.ip_address(address)) is allowed


def test_open_graph_arrays_and_fall_backs() -> None:
    html = """<head><meta property="og:image" content="a.png"><meta property="og:image:width"
    content="10"><meta property="og:image" content="b.png"><meta property="og:image:alt"
    content="B"><meta property="og:title" content="T"><meta property="og:title" content="U">
    <link rel="shortcut icon" href="/i.ico"></head>"""
    preview = parse_preview(html, "https://e.com/p/q")
    assert preview == {
        "title": "T", "url": "https://e.com/p/q", "favicon": "https://e.com/i.ico",
        "images": [{"image": "https://e.com/p/a.png", "width": 10},
                   {"image": "https://e.com/p/b.png", "alt": "B"}],
    }  # fmt: skip
    assert parse_preview("<p>nothing</p>", "https://e.com/") is None
    assert parse_preview(b"\x00\x01binary", "https://e.com/") is None
