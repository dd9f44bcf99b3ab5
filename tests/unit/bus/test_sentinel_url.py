"""The node link's Redis Sentinel URLs."""

from __future__ import annotations

from tidings.bus.redis_bus import sentinel_url


def test_a_sentinel_url_names_its_sentinels_service_and_options() -> None:
    url = "redis+sentinel://user:pw@s1:26379,s2:26380/2/main"
    assert sentinel_url(url) == (
        [("s1", 26379), ("s2", 26380)],
        "main",
        {"username": "user", "password": "pw", "db": 2},
    )


def test_a_bare_sentinel_url_leaves_the_service_to_the_channel() -> None:
    assert sentinel_url("redis+sentinel://s1:26379") == ([("s1", 26379)], None, {})


def test_a_tls_sentinel_url_asks_for_tls() -> None:
    assert sentinel_url("rediss+sentinel://s1:26379/0/main")[2] == {"ssl": True, "db": 0}
