"""Tokens as the client sees them: opaque JWTs whose `exp` and `iat` it reads (without
verifying: the server does), to fetch a new one before it expires."""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Awaitable, Callable

TokenSource = Callable[[], Awaitable[str] | str]


def claims_of(token: str) -> tuple[float | None, float | None]:
    """The token's `exp` and `iat` (seconds since the epoch; None when absent or no JWT)."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return None, None
    if not isinstance(claims, dict):
        return None, None
    return _seconds(claims.get("exp")), _seconds(claims.get("iat"))


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def fetch(source: TokenSource) -> str:
    """Call the app's `get_token` (plain or async)."""
    value = source()
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, str) or not value:
        raise TypeError("get_token must return a non-empty token string")
    return value
