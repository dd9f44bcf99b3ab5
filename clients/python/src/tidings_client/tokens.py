"""Tokens as the client sees them: opaque JWTs whose `exp` it reads (without verifying: the
server does), to fetch a new one before it expires."""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Awaitable, Callable

TokenSource = Callable[[], Awaitable[str] | str]


def expires_at(token: str) -> float | None:
    """The token's `exp` (seconds since the epoch), or None when it has none or is no JWT."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


async def fetch(source: TokenSource) -> str:
    """Call the app's `get_token` (plain or async)."""
    value = source()
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, str) or not value:
        raise TypeError("get_token must return a non-empty token string")
    return value
