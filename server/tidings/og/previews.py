"""The og/ use case: fetch a page within bounds (bytes, time, redirects, public addresses
only) and answer its preview; every failure is Stream's 400 InputException."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from ..config.media import OgSettings
from ..domain.errors import InputError
from ..domain.og import NO_OG, parse_preview
from .guard import BlockedAddressError, GuardedResolver, literal, public

REDIRECTS = frozenset({301, 302, 303, 307, 308})
HTML = ("text/html", "application/xhtml+xml")
MAX_URL = 2048
CHUNK = 65536


def open_session(settings: OgSettings) -> aiohttp.ClientSession:
    """The session of every page fetch: the guarded resolver, no proxy from the environment,
    no cookies, no decompression (an answer is read as the bytes that came, bounded)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(settings.allow_private), limit=64)
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        headers={"User-Agent": settings.user_agent, "Accept-Encoding": "identity",
                 "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"},
    )  # fmt: skip


class LinkPreviews:
    def __init__(self, session: aiohttp.ClientSession, settings: OgSettings) -> None:
        self.session, self.settings = session, settings

    async def preview(self, url: str) -> dict[str, Any]:
        check_url(url, self.settings.allow_private)
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                page_url, body = await self._fetch(url)
        except TimeoutError:
            raise _failed(url, f"no answer within {self.settings.timeout_seconds} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddressError):
                raise _blocked(url) from None
            raise _failed(url, "cannot connect") from None
        except aiohttp.ClientError as exc:
            raise _failed(url, type(exc).__name__) from None
        preview = await asyncio.to_thread(parse_preview, body, page_url)
        if preview is None:
            raise InputError(NO_OG)
        return {**preview, "original_url": url}

    async def _fetch(self, url: str) -> tuple[str, bytes]:
        for _ in range(self.settings.max_redirects + 1):
            check_url(url, self.settings.allow_private)
            async with self.session.get(url, allow_redirects=False) as answer:
                if answer.status in REDIRECTS and "Location" in answer.headers:
                    url = urljoin(url, answer.headers["Location"])
                    continue
                if answer.status >= 400 or answer.content_type not in HTML:
                    raise InputError(NO_OG)
                return str(answer.url), await _read(answer, self.settings.max_bytes)
        raise _failed(url, f"more than {self.settings.max_redirects} redirects")


def check_url(url: str, allow_private: bool) -> None:
    """An http(s) URL of a host; an address written in it must be a public one."""
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("url must be an http or https URL", {"url": [url[:200]]})
    address = literal(parts.hostname)
    if address is not None and not allow_private and not public(address):
        raise _blocked(url)


async def _read(answer: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """At most `max_bytes` of the page: the rest is never read (the connection is closed)."""
    body = bytearray()
    async for chunk in answer.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) >= max_bytes:
            answer.close()
            break
    return bytes(body[:max_bytes])


def _blocked(url: str) -> InputError:
    return InputError(
        "url points to an address that may not be fetched (not a public address)",
        {"url": [url[:200]]},
    )


def _failed(url: str, why: str) -> InputError:
    return InputError(f"couldn't fetch the provided url: {why}", {"url": [url[:200]]})
