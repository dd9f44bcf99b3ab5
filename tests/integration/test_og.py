"""og/ (link previews) against a real server and real pages: a local aiohttp site in the test
serves pages with and without Open Graph data, too big, too slow, redirecting in a loop; the
pooled server that fetches them allows loopback addresses by config, the default one refuses
them (the address guard)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import stream
from aiohttp import web

from harness.common import SERVER_TOKEN, token
from harness.pool import ServerPool
from tests.integration.rest_calls import stream_js
from tests.support import API_KEY, API_SECRET, ServerProcess

ALLOW = {"TIDINGS_OG_ALLOW_PRIVATE": "true", "TIDINGS_OG_TIMEOUT_SECONDS": "1.5",
         "TIDINGS_OG_MAX_BYTES": "200000"}  # fmt: skip
NO_OG = "couldn't find og data for the provided url"
HEAD = """<html><head><title>Page title</title>
<meta property="og:title" content="The Rock (1996)">
<meta property="og:type" content="video.movie">
<meta property="og:url" content="/title/tt0117500/">
<meta property="og:site_name" content="IMDb">
<meta property="og:description" content="A mild-mannered chemist and an ex-con.">
<meta property="og:locale" content="en_US">
<meta property="og:determiner" content="the">
<meta property="og:image" content="/poster.jpg">
<meta property="og:image:secure_url" content="https://cdn.example.com/poster.jpg">
<meta property="og:image:width" content="630">
<meta property="og:image:height" content="1200">
<meta property="og:image:type" content="image/jpeg">
<meta property="og:image:alt" content="A poster">
<meta property="og:image" content="https://cdn.example.com/second.png">
<meta property="og:video" content="https://cdn.example.com/trailer.mp4">
<meta property="og:video:width" content="640">
<meta property="og:audio" content="https://cdn.example.com/theme.mp3">
<meta property="og:audio:type" content="audio/mpeg">
<meta name="twitter:site" content="@imdb">
<link rel="icon" href="/favicon.ico">
</head><body>"""


async def _page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    html = {
        "movie": HEAD + "</body></html>",
        "titled": "<html><head><title> Just a title </title>"
        '<meta name="description" content="Plain page"></head></html>',
        "bare": "<html><body><p>nothing here</p></body></html>",
        "big": HEAD + "<p>" + "x" * 3_000_000 + "</p></body></html>",
        "late": "<html><body><p>" + "x" * 400_000 + "</p>" + HEAD + "</body></html>",
    }.get(name)
    if name == "binary":
        return web.Response(body=b"MZ\x90\x00" * 100, content_type="application/octet-stream")
    if name == "slow":
        await asyncio.sleep(10)
    if name == "loop":
        raise web.HTTPFound("/page/loop")
    if name == "moved":
        raise web.HTTPMovedPermanently("/page/movie")
    if html is None:
        raise web.HTTPNotFound()
    return web.Response(text=html, content_type="text/html")


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/page/{name}", _page)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def og(
    http: aiohttp.ClientSession, server: ServerProcess, url: str, auth: str = SERVER_TOKEN
) -> tuple[int, dict[str, Any]]:
    async with http.get(
        f"{server.url}/api/v1.0/og/", params={"api_key": API_KEY, "url": url},
        headers={"Authorization": auth, "stream-auth-type": "jwt"},
    ) as answer:  # fmt: skip
        return answer.status, await answer.json()


async def test_a_page_with_open_graph_data_answers_streams_shape(
    pool: ServerPool, site: str, http: aiohttp.ClientSession
) -> None:
    server = pool.get(ALLOW)
    status, body = await og(http, server, f"{site}/page/movie", token({"user_id": "alice"}))
    assert status == 200, body
    assert body.pop("duration").endswith("ms")
    assert body == {
        "title": "The Rock (1996)",
        "type": "video.movie",
        "url": f"{site}/title/tt0117500/",
        "site": "@imdb",
        "site_name": "IMDb",
        "description": "A mild-mannered chemist and an ex-con.",
        "determiner": "the",
        "locale": "en_US",
        "images": [
            {"image": f"{site}/poster.jpg", "secure_url": "https://cdn.example.com/poster.jpg",
             "width": 630, "height": 1200, "type": "image/jpeg", "alt": "A poster"},
            {"image": "https://cdn.example.com/second.png"},
        ],
        "videos": [{"video": "https://cdn.example.com/trailer.mp4", "width": 640}],
        "audios": [{"audio": "https://cdn.example.com/theme.mp3", "type": "audio/mpeg"}],
        "favicon": f"{site}/favicon.ico",
        "original_url": f"{site}/page/movie",
    }  # fmt: skip


async def test_stream_pythons_og_call(pool: ServerPool, site: str) -> None:
    server = pool.get(ALLOW)
    client = stream.connect(API_KEY, API_SECRET, base_url=server.base_url)
    preview = await asyncio.to_thread(client.og, f"{site}/page/titled")
    assert (preview["title"], preview["description"]) == ("Just a title", "Plain page")
    moved = await asyncio.to_thread(client.og, f"{site}/page/moved")
    assert moved["title"] == "The Rock (1996)" and moved["original_url"] == f"{site}/page/moved"


async def test_pages_without_og_data_or_out_of_bounds_answer_400(
    pool: ServerPool, site: str, http: aiohttp.ClientSession
) -> None:
    server = pool.get(ALLOW)
    for name in ("bare", "binary", "late", "missing"):
        status, body = await og(http, server, f"{site}/page/{name}")
        assert status == 400, (name, body)
        del body["duration"]
        assert body == {"code": 4, "detail": NO_OG, "exception": "InputException",
                        "status_code": 400}, name  # fmt: skip
    status, body = await og(http, server, f"{site}/page/big")  # read up to max_bytes only
    assert status == 200 and body["title"] == "The Rock (1996)", body
    started = asyncio.get_running_loop().time()
    status, body = await og(http, server, f"{site}/page/slow")
    assert status == 400 and "no answer within 1.5 s" in body["detail"], body
    assert asyncio.get_running_loop().time() - started < 5
    status, body = await og(http, server, f"{site}/page/loop")
    assert status == 400 and "more than 5 redirects" in body["detail"], body
    for bad in ("ftp://example.com/", "not a url", ""):
        status, body = await og(http, server, bad)
        assert status == 400 and body["code"] == 4, (bad, body)


async def test_loopback_and_private_addresses_are_refused_by_default(
    server: ServerProcess, site: str, http: aiohttp.ClientSession
) -> None:
    port = site.rsplit(":", 1)[1]
    for url in (f"{site}/page/movie", f"http://localhost:{port}/page/movie",
                "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
                "http://[::1]:80/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"):  # fmt: skip
        status, body = await og(http, server, url)
        assert status == 400, (url, body)
        assert "not a public address" in body["detail"], (url, body)
    for url in (f"http://2130706433:{port}/page/movie", f"http://127.1:{port}/page/movie"):
        status, body = await og(http, server, url)  # other spellings of 127.0.0.1
        assert status == 400 and "The Rock" not in str(body), (url, body)
    status, body = await og(http, server, site, auth="nope")
    assert status == 401


async def test_streams_npm_sdks_og_call(pool: ServerPool, site: str) -> None:
    """The cases of the npm SDK's own open_graph.js, with alice's user token."""
    server = pool.get(ALLOW)
    calls = [
        {"user": "alice", "method": "og", "args": [f"{site}/page/movie"]},
        {"user": "alice", "method": "og", "args": [f"{site}/page/binary"]},
    ]
    preview, binary = await asyncio.to_thread(stream_js, server, calls)
    assert preview["ok"], preview
    for key in ("title", "description", "original_url", "favicon", "images"):
        assert preview["result"][key], key
    assert preview["result"]["images"][0]["image"] == f"{site}/poster.jpg"
    assert (binary["ok"], binary["status"]) == (False, 400), binary
    assert binary["error"]["detail"] == NO_OG
