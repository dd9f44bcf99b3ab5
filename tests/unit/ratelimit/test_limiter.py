"""The limiter's arithmetic on one node (memory counters): windows aligned to the clock, one
count per scope, the scope with the fewest calls left in the headers, nothing counted for a
scope without a limit or an identity; the client's address behind a trusted proxy."""

from __future__ import annotations

import dataclasses

import pytest

from tidings.config import LimitSettings, load_settings
from tidings.config.limits import CLASSES, SCOPES
from tidings.ratelimit import CLUSTER, LOCAL, OFF, Caller, Limiter, client_address
from tidings.ratelimit.limiter import MemoryCounts

T0 = 1_700_000_040.0  # a window of 60 s starts here (1_700_000_040 = 28_333_334 · 60)


def limiter(**limits: int | bool) -> Limiter:
    return Limiter(dataclasses.replace(LimitSettings(), **limits), "test")  # type: ignore[arg-type]


async def test_a_window_counts_down_and_resets_at_its_end() -> None:
    lim = limiter(reads_per_user=3)
    bob = Caller(None, "bob", None)
    verdicts = [await lim.hit("reads", bob, T0 + s) for s in (0, 10, 20, 59.9)]
    assert [(v.allowed, v.remaining) for v in verdicts if v] == [
        (True, 2), (True, 1), (True, 0), (False, 0)
    ]  # fmt: skip
    assert {v.reset for v in verdicts if v} == {int(T0) + 60}
    after = await lim.hit("reads", bob, T0 + 60)
    assert after is not None and (after.allowed, after.remaining, after.reset) == (
        True, 2, int(T0) + 120
    )  # fmt: skip
    assert after.headers() == {
        "X-Ratelimit-Limit": "3", "X-Ratelimit-Remaining": "2",
        "X-Ratelimit-Reset": str(int(T0) + 120),
    }  # fmt: skip


async def test_the_scope_with_the_fewest_calls_left_answers() -> None:
    lim = limiter(reads_per_key=10, reads_per_user=2, reads_per_ip=5)
    verdict = await lim.hit("reads", Caller("key", "bob", "10.0.0.1"), T0)
    assert verdict is not None and (verdict.scope, verdict.limit, verdict.remaining) == (
        "user", 2, 1
    )  # fmt: skip
    # another user from the same address: the address has 3 left, the key 8
    verdict = await lim.hit("reads", Caller("key", "carl", "10.0.0.1"), T0)
    assert verdict is not None and (verdict.scope, verdict.remaining) == ("user", 1)
    for _ in range(4):  # the address's 3rd to 6th: its limit is 5
        verdict = await lim.hit("reads", Caller("key", None, "10.0.0.1"), T0)
    assert verdict is not None and (verdict.scope, verdict.allowed) == ("ip", False)


async def test_classes_are_counted_apart() -> None:
    lim = limiter(follows_per_user=1, reads_per_user=1)
    bob = Caller(None, "bob", None)
    first = await lim.hit("follows", bob, T0)
    second = await lim.hit("follows", bob, T0)
    read = await lim.hit("reads", bob, T0)
    assert first and second and read
    assert (first.allowed, second.allowed, read.allowed) == (True, False, True)


async def test_nothing_is_counted_without_a_limit_or_an_identity() -> None:
    lim = limiter(reads_per_key=0, reads_per_user=5, reads_per_ip=0)
    assert await lim.hit("reads", Caller("key", None, "10.0.0.1"), T0) is None
    off = limiter(enabled=False)
    assert await off.hit("reads", Caller("key", "bob", "10.0.0.1"), T0) is None
    assert off.state == OFF


def test_one_node_alone_counts_in_memory() -> None:
    assert limiter().state == LOCAL
    assert CLUSTER != LOCAL


def test_every_class_and_scope_has_a_key_and_the_defaults_load() -> None:
    settings = load_settings(environ={"TIDINGS_LIMITS_READS_PER_IP": "7"}).limits
    assert settings.limit("reads", "ip") == 7
    assert all(settings.limit(k, s) >= 0 for k in CLASSES for s in SCOPES)
    assert settings.limit("writes", "key") == 1000  # Stream's documented default
    assert settings == dataclasses.replace(LimitSettings(), reads_per_ip=7)


@pytest.mark.parametrize(
    ("remote", "forwarded", "trust", "address"),
    [
        ("10.0.0.1", None, True, "10.0.0.1"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.7", False, "10.0.0.1"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.7", True, "203.0.113.7"),
        ("10.0.0.1", " ", True, "10.0.0.1"),
    ],
)
def test_the_clients_address(remote: str, forwarded: str | None, trust: bool, address: str) -> None:
    assert client_address(remote, forwarded, trust) == address


def test_memory_drops_a_past_windows_counters_whole() -> None:
    counts = MemoryCounts()
    assert [counts.incr(7, "a"), counts.incr(7, "a"), counts.incr(7, "b")] == [1, 2, 1]
    assert len(counts) == 2
    assert counts.incr(8, "a") == 1
    assert len(counts) == 1
