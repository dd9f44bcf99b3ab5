"""The connect's grant cache (server/tidings/realtime/handlers.py): keyed by the token as
verified, bounded by entries and by characters, and no token longer than MAX_TOKEN at all."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from tidings.bus.base import LocalBus
from tidings.config import load_settings
from tidings.domain.errors import SignatureError
from tidings.realtime.events import handlers as h
from tidings.realtime.transport.peers import Rooms

SECRET = "unit-secret-0123456789abcdef-0123456789"


def handlers() -> h.Handlers:
    settings = load_settings(environ={"TIDINGS_AUTH_API_SECRET": SECRET})
    return h.Handlers(settings, None, Rooms(), LocalBus("node"))  # type: ignore[arg-type]


def sign(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_padded_copies_of_one_token_are_one_entry() -> None:
    cache = handlers()
    token = sign({"user_id": "bob"})
    for n in range(1, 500):
        padded = ("Bearer " if n % 2 else "") + token + " " * n + "\t" * (n % 7)
        assert cache.authenticate({"token": padded}).user_id == "bob"
    assert len(cache.grants) == 1 and cache.grants.chars == len(token)


def test_a_token_longer_than_the_bound_is_refused_unread() -> None:
    cache = handlers()
    with pytest.raises(SignatureError, match="longer than"):
        cache.authenticate({"token": sign({"user_id": "bob"}) + " " * h.MAX_TOKEN})
    with pytest.raises(SignatureError, match="longer than"):
        cache.authenticate({"token": sign({"user_id": "x" * h.MAX_TOKEN})})
    assert len(cache.grants) == 0


def test_the_cache_is_bounded_by_entries_and_characters() -> None:
    cache = h.GrantCache(entries=10, chars=1000)
    grant = handlers().authenticate({"token": sign({"user_id": "bob"})})
    for n in range(100):
        cache.put(f"{n:03d}" + "t" * 97, grant)  # 100 characters each
        assert len(cache) <= 10 and cache.chars <= 1000
    assert cache.get("099" + "t" * 97) is grant and cache.get("000" + "t" * 97) is None
    for n in range(20):
        cache.put(f"{n:03d}" + "u" * 497, grant)  # 500 characters each: two fit
        assert cache.chars <= 1000
    assert len(cache) == 2


def test_an_expired_cached_grant_is_refused() -> None:
    import time

    cache = handlers()
    token = sign({"user_id": "bob", "exp": int(time.time()) + 1})
    cache.authenticate({"token": token})
    time.sleep(1.1)
    with pytest.raises(SignatureError, match="expired"):
        cache.authenticate({"token": token + " "})
