"""Tokens planned against the server's clock on a device whose clock is off (pure: an injected
clock, tokens made here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt

from tidings_client.tokens_keeper import FLOOR_MAX, TokenKeeper

SECRET = "test-secret-0123456789abcdef-0123456789"


class Device:
    """A device whose clock is an hour ahead of the server's."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def clock(self) -> float:
        return self.now

    @property
    def server_now(self) -> float:
        return self.now - 3600

    def issuer(self, ttl: float, iat: bool) -> Callable[[], str]:
        """The app's backend: tokens signed on the server's clock."""

        def issue() -> str:
            body: dict[str, Any] = {"user_id": "bob", "exp": int(self.server_now + ttl)}
            if iat:
                body["iat"] = int(self.server_now)
            return jwt.encode(body, SECRET, algorithm="HS256")

        return issue


async def test_iat_or_the_date_header_give_the_life_on_the_servers_clock() -> None:
    device = Device()
    keeper = TokenKeeper(None, device.issuer(60, iat=True), ahead=30, clock=device.clock)
    await keeper.current()
    assert keeper.refresh_in() == 30  # 60 s of life, 30 s ahead: not "expired an hour ago"
    bare = TokenKeeper(None, device.issuer(60, iat=False), ahead=30, clock=device.clock)
    await bare.current()
    bare.server_time(device.server_now)  # a REST answer's Date
    assert bare.refresh_in() == 30
    assert await bare.current() == bare.token and bare.fetches == 1


async def test_tokens_that_look_expired_are_fetched_after_a_floor_that_doubles() -> None:
    device = Device()
    keeper = TokenKeeper(None, device.issuer(60, iat=False), ahead=30, clock=device.clock)
    delays = []
    for _ in range(9):
        await keeper.renew()
        delay = keeper.refresh_in()
        assert delay is not None
        assert await keeper.current() == keeper.token  # it just came: not fetched again
        delays.append(delay)
        device.now += delay
    assert delays == [1, 2, 4, 8, 16, 32, FLOOR_MAX, FLOOR_MAX, FLOOR_MAX]
    assert keeper.fetches == 9
    keeper.server_time(device.server_now)  # learnt at last: a normal life again
    await keeper.renew()
    assert keeper.refresh_in() == 30
