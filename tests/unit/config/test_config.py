from __future__ import annotations

from pathlib import Path

import pytest

from tidings.config import (
    ConfigError,
    check_serving,
    defaults_text,
    is_loopback,
    load_settings,
    url_location,
)


def test_defaults_load_and_ship_the_flat_groups() -> None:
    settings = load_settings(environ={})
    assert settings.server.port == 8080
    assert str(settings.mongodb.url) == ""
    assert set(settings.feeds) == {
        "user",
        "timeline",
        "raid",
        "notification",
        "timeline_aggregated",
    }
    assert {name: group.type for name, group in settings.feeds.items()} == {
        "user": "flat", "timeline": "flat", "raid": "flat",
        "notification": "notification", "timeline_aggregated": "aggregated",
    }  # fmt: skip


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[fanout]\nbatch_size = 7\n')
    env = {"TIDINGS_SERVER_PORT": "9100", "TIDINGS_FANOUT_CONCURRENCY": "3"}
    settings = load_settings(config, environ=env, overrides={"server": {"port": 9200}})
    assert settings.server.port == 9200  # flag beats environment beats file
    assert settings.server.host == "0.0.0.0"  # file beats default
    assert settings.fanout.batch_size == 7
    assert settings.fanout.concurrency == 3
    assert settings.fanout.lease_seconds == 30.0  # untouched default


def test_config_file_from_environment_adds_feed_groups(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text('[feeds.notice]\ntype = "flat"\nfollowable = false\n')
    settings = load_settings(environ={"TIDINGS_CONFIG": str(config)})
    assert set(settings.feeds) >= {"user", "timeline", "raid", "notice"}
    assert settings.feeds["notice"].followable is False
    assert settings.feeds["user"].followable is True


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"TIDINGS_FANOUT_BATCH_SIZE": "0"}, "fanout.batch_size"),
        ({"TIDINGS_FANOUT_BATCH_SIZE": "many"}, "fanout.batch_size"),
        ({"TIDINGS_SERVER_PORT": "70000"}, "server.port"),
        ({"TIDINGS_REALTIME_WEBSOCKET_COMPRESSION": "perhaps"}, "realtime.websocket_compression"),
        ({"TIDINGS_AUTH_API_SECRET": "short"}, "auth.api_secret"),
        ({"TIDINGS_REDIS_URL": "redis+cluster://r1:7000,r2"}, "redis.url"),
        ({"TIDINGS_REDIS_URL": "redis+cluster://r1:7000/3"}, "redis.url"),
    ],
)
def test_a_bad_value_names_its_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(environ=env)


def test_unknown_keys_and_bad_groups_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[fanout]\nbatchsize = 3\n")
    with pytest.raises(ConfigError, match=r"fanout\.batchsize"):
        load_settings(config, environ={})
    config.write_text('[feeds.Bad-Name]\ntype = "flat"\n')
    with pytest.raises(ConfigError, match="feeds"):
        load_settings(config, environ={})
    config.write_text('[feeds.agg]\ntype = "ranked"\n')
    with pytest.raises(ConfigError, match=r"feeds\.agg"):
        load_settings(config, environ={})


def test_unreadable_or_invalid_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_secrets_never_show_in_a_repr() -> None:
    secret = "a-very-secret-value-that-is-long-enough-0123"
    settings = load_settings(
        environ={"TIDINGS_AUTH_API_SECRET": secret, "TIDINGS_MONGODB_URL": "mongodb://u:pw@h/"}
    )
    assert str(settings.auth.api_secret) == secret
    assert secret not in repr(settings)
    assert "pw@" not in repr(settings)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("", False), ("::", False),
     ("10.0.0.1", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_dev_secret_refused_off_loopback_only() -> None:
    check_serving(load_settings(environ={}))  # 127.0.0.1 by default
    with pytest.raises(ConfigError, match="TIDINGS_AUTH_API_SECRET"):
        check_serving(load_settings(environ={"TIDINGS_SERVER_HOST": "0.0.0.0"}))
    own = {"TIDINGS_SERVER_HOST": "0.0.0.0", "TIDINGS_AUTH_API_SECRET": "x" * 40}
    check_serving(load_settings(environ=own))


def test_write_concern_is_majority_journaled_by_default_and_checked() -> None:
    mongodb = load_settings(environ={}).mongodb
    assert (mongodb.write_concern, mongodb.journal) == ("majority", True)
    assert load_settings(environ={"TIDINGS_MONGODB_WRITE_CONCERN": "2"}).mongodb.write_concern
    for bad in ("0", "abc", "-1"):
        with pytest.raises(ConfigError, match=r"mongodb\.write_concern"):
            load_settings(environ={"TIDINGS_MONGODB_WRITE_CONCERN": bad})


def test_aggregated_groups_compile_their_format_and_are_not_followable(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    notification = settings.feeds["notification"]
    assert notification.aggregation is not None
    assert notification.aggregation.source == "{{ verb }}_{{ time.strftime('%Y-%m-%d') }}"
    assert notification.max_length > 0
    assert notification.followable is False  # as in Stream: only flat feeds can be followed
    assert settings.feeds["timeline_aggregated"].followable is False
    assert settings.feeds["user"].aggregation is None
    config = tmp_path / "agg.toml"
    config.write_text(
        '[feeds.digest]\ntype = "aggregated"\naggregation_format = "{{ actor }}"\nmax_length = 7\n'
    )
    digest = load_settings(config, environ={}).feeds["digest"]
    assert digest.aggregation is not None
    assert digest.aggregation.group_of({"actor": "ann", "verb": "x"}) == "ann"
    assert digest.max_length == 7


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('type = "notification"\naggregation_format = "{{ verb "', "feeds.n.aggregation_format"),
        ('type = "aggregated"\nmax_length = 0', "feeds.n.max_length"),
        ('type = "aggregated"\nfollowable = true', "feeds.n.followable"),
        ('type = "flat"\naggregation_format = "{{ verb }}"', "feeds.n.aggregation_format"),
    ],
)
def test_bad_feed_type_settings_name_their_key(tmp_path: Path, body: str, key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[feeds.n]\n{body}\n")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(config, environ={})


def test_the_follow_cap_is_ours_and_documented_with_its_value() -> None:
    """Stream documents no bound on how many feeds one feed follows; Tidings keeps one, in the
    defaults and in the REST reference's table of routes, with the same value."""
    cap = load_settings(environ={}).fanout.max_following
    assert cap == 5000
    rest = (Path(__file__).parents[3] / "docs" / "reference" / "rest.md").read_text()
    assert f"`fanout.max_following` ({cap:,})" in rest


def test_a_unix_socket_url_is_logged_by_its_path_never_its_password() -> None:
    assert url_location("unix://:s3cret@/data/redis/run/redis.sock?db=0") == (
        "/data/redis/run/redis.sock"
    )
    assert url_location("redis://:s3cret@10.0.0.5:6379/0") == "10.0.0.5:6379"


def test_the_example_production_file_loads_over_the_packaged_defaults() -> None:
    """The repository's config/ holds examples only; the defaults they sit on ship in the
    package."""
    example = Path(__file__).parents[3] / "config" / "production.example.toml"
    settings = load_settings(example, environ={})
    assert settings.server.host == "0.0.0.0"
    assert "[server]" in defaults_text() and "[auth]" in defaults_text()
