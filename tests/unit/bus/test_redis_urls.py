"""The node link's Redis URLs: Sentinel's and a Redis Cluster's."""

from __future__ import annotations

import pytest

from tidings.bus.redis_client import cluster_options, is_cluster, sentinel_url
from tidings.config.values import cluster_nodes


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


def test_a_cluster_url_names_its_seed_nodes_and_credentials() -> None:
    url = "redis+cluster://user:pw@r1:7000,[::1]:7001,r3:7002"
    assert is_cluster(url) and not is_cluster("redis://r1:6379/0")
    assert cluster_nodes(url) == [("r1", 7000), ("::1", 7001), ("r3", 7002)]
    options = cluster_options(url)
    assert (options["username"], options["password"], "ssl" in options) == ("user", "pw", False)
    assert cluster_options("rediss+cluster://r1:7000")["ssl"] is True


@pytest.mark.parametrize(
    "url", ["redis+cluster://r1", "redis+cluster://r1:7000/2", "redis+cluster://r1:7000?x=1"]
)
def test_a_cluster_url_without_ports_or_with_a_database_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)cluster"):
        cluster_nodes(url)
