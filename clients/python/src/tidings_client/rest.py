"""Stream's REST dialect over aiohttp: `/api/v1.0/feed/{slug}/{user_id}/...` with `api_key`
and the JWT in `Authorization`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from .errors import TidingsError

Activity = dict[str, Any]


def feed_path(feed: str) -> str:
    """`timeline:bob` -> `feed/timeline/bob/`."""
    slug, colon, user_id = feed.partition(":")
    if not colon or not slug or not user_id:
        raise ValueError(f"a feed id is group:user_id, not {feed!r}")
    return f"feed/{quote(slug, safe='')}/{quote(user_id, safe='')}/"


class Rest:
    """REST calls with the client's current token (`token()`), refreshed once (`renew()`)
    when the server answers that it expired; each answer's `Date` goes to `server_time`."""

    def __init__(
        self,
        url: str,
        api_key: str,
        token: Callable[[], Awaitable[str]],
        renew: Callable[[], Awaitable[bool]],
        timeout: float = 30.0,
        server_time: Callable[[float], None] | None = None,
    ) -> None:
        self._server_time = server_time
        self.base = url.rstrip("/") + "/api/v1.0/"
        self.api_key = api_key
        self._token, self._renew = token, renew
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """The JSON answer of `method path`; TidingsError for any answer but 2xx. A path that
        starts with `/` (a `next` link) is taken from the server's root."""
        root = self.base.removesuffix("api/v1.0/")
        url = root + path.lstrip("/") if path.startswith("/") else self.base + path
        query = {"api_key": self.api_key, **{k: _param(v) for k, v in (params or {}).items()}}
        for attempt in (0, 1):
            headers = {"Authorization": await self._token(), "stream-auth-type": "jwt"}
            async with self.session.request(
                method, url, params=query, json=body, headers=headers
            ) as response:
                self._saw_date(response.headers.get("Date"))
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = await response.text()
                if response.status < 300:
                    return answer
                error = TidingsError.from_body(answer, response.status)
            if attempt == 0 and error.code == 3 and await self._renew():
                continue
            raise error
        raise AssertionError("unreachable")

    async def read(self, feed: str, params: Mapping[str, Any]) -> dict[str, Any]:
        answer = await self.call("GET", feed_path(feed), params=params)
        return dict(answer)

    def _saw_date(self, header: str | None) -> None:
        """The server's time from a `Date` header (whole seconds: the middle of the second)."""
        if header is None or self._server_time is None:
            return
        try:
            self._server_time(parsedate_to_datetime(header).timestamp() + 0.5)
        except (TypeError, ValueError):
            return


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
