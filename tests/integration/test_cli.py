"""`python -m tidings token` and `python -m tidings serve`, as an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests

from harness.common import SERVER_TOKEN
from tests.support import API_KEY, API_SECRET, ROOT, ServerProcess, free_port, wait_until

CLI_TIMEOUT = 60.0


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any TIDINGS_* setting of the caller's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    return {**env, **extra}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def cli_token(*args: str) -> str:
    done = run_cli("token", *args, env=clean_env(TIDINGS_AUTH_API_SECRET=API_SECRET))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    assert API_SECRET not in done.stdout + done.stderr
    return lines[0]


def decode(value: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(value, API_SECRET, algorithms=["HS256"])
    return claims


# --- token ---------------------------------------------------------------------------------


def test_server_token_has_every_right_and_no_expiry() -> None:
    claims = decode(cli_token("--server"))
    assert claims == {"resource": "*", "action": "*", "feed_id": "*"}


def test_user_token_with_ttl_expires() -> None:
    before = time.time()
    claims = decode(cli_token("--user", "bob", "--ttl", "60"))
    after = time.time()
    assert claims["user_id"] == "bob"
    exp = claims["exp"]
    assert isinstance(exp, int)
    assert before + 60 - 1 <= exp <= after + 60 + 1
    assert set(claims) == {"user_id", "exp"}


def test_feed_token_reads_that_feed() -> None:
    claims = decode(cli_token("--feed", "user:bob"))
    assert claims["action"] == "read"
    assert claims["feed_id"] in ("userbob", "user:bob")
    assert claims["resource"] in ("*", "feed")
    assert "exp" not in claims


def test_cli_tokens_work_against_a_server(server: ServerProcess, uid: str) -> None:
    """The tokens are signed with the configured secret: the server takes them as meant."""
    url = f"{server.url}/api/v1.0/feed/user/{uid}/"
    params = {"api_key": API_KEY}

    def call(method: str, auth: str, **kw: object) -> requests.Response:
        headers = {"Authorization": auth, "stream-auth-type": "jwt"}
        return requests.request(method, url, params=params, headers=headers, timeout=10, **kw)

    added = call("POST", cli_token("--user", uid), json={"actor": uid, "verb": "v", "object": "o"})
    assert added.status_code == 201, added.text
    reader = cli_token("--feed", f"user:{uid}", "--ttl", "600")
    read = call("GET", reader)
    assert read.status_code == 200, read.text
    assert [a["id"] for a in read.json()["results"]] == [added.json()["id"]]
    refused = call("POST", reader, json={"actor": uid, "verb": "v", "object": "o2"})
    assert refused.status_code == 403
    assert refused.json()["code"] == 17
    assert call("GET", SERVER_TOKEN).json()["results"] == read.json()["results"]


@pytest.mark.parametrize(
    ("feed", "message"),
    [("nocolon", "invalid feed id 'nocolon'"),
     ("nosuchgroup:bob", "feed group nosuchgroup does not exist"),
     ("user:bad!id", "invalid feed id user:bad!id")],
)  # fmt: skip
def test_token_for_a_bad_feed_fails_with_a_message(feed: str, message: str) -> None:
    done = run_cli("token", "--feed", feed, env=clean_env(TIDINGS_AUTH_API_SECRET=API_SECRET))
    assert done.returncode == 2
    assert done.stdout.strip() == ""
    assert done.stderr.strip() == f"tidings: {message}"  # this refusal, not any failure
    assert API_SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "one of --server, --user ID, --feed FEED_ID is required"),
     (("--server", "--user", "bob"), "--server takes none of --user, --feed, --action"),
     (("--user", "bob", "--action", "write"), "--action needs --feed"),
     (("--feed", "raid:1", "--user", "bad user"), "--user 'bad user' is not a user id")],
)  # fmt: skip
def test_token_needs_exactly_one_kind(args: tuple[str, ...], message: str) -> None:
    done = run_cli("token", *args, env=clean_env(TIDINGS_AUTH_API_SECRET=API_SECRET))
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr.splitlines()[-1], done.stderr


def test_a_raid_member_token_carries_the_scope_and_the_user() -> None:
    claims = decode(cli_token("--feed", "raid:42", "--user", "bob", "--action", "write"))
    assert claims == {"resource": "*", "action": "write", "feed_id": "raid:42", "user_id": "bob"}
    everything = decode(cli_token("--feed", "raid:42", "--user", "bob", "--action", "*"))
    assert everything["action"] == "*" and everything["user_id"] == "bob"


# --- bad configuration ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "abc", "-5", "100000"])
def test_bad_config_value_stops_serve_with_the_keys_name(tmp_path: Path, value: str) -> None:
    secret = "a-very-distinctive-secret-" + "7" * 20
    env = clean_env(
        TIDINGS_FANOUT_BATCH_SIZE=value,
        TIDINGS_AUTH_API_SECRET=secret,
        TIDINGS_MONGODB_URL="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100",
        TIDINGS_SERVER_PORT=str(free_port()),
    )
    done = run_cli("serve", "--data-dir", str(tmp_path), env=env)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "fanout.batch_size" in output
    assert secret not in output
    assert not (tmp_path / "store").exists()  # it stopped before launching anything


def test_short_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = "shortsecret42"
    env = clean_env(
        TIDINGS_AUTH_API_SECRET=secret,
        TIDINGS_MONGODB_URL="mongodb://127.0.0.1:1/",
        TIDINGS_SERVER_PORT=str(free_port()),
    )
    done = run_cli("serve", env=env)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "auth.api_secret" in output
    assert secret not in output
    done = run_cli("token", "--server", env=env)
    assert done.returncode != 0
    assert "auth.api_secret" in done.stderr
    assert secret not in done.stdout + done.stderr


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[fanout]\nbatch_size = 0\n")
    env = clean_env(TIDINGS_AUTH_API_SECRET=API_SECRET)
    done = run_cli("serve", "--config", str(config), env=env)
    assert done.returncode != 0
    assert "fanout.batch_size" in done.stderr
    config.write_text("[fanout\n")
    done = run_cli("token", "--server", "--config", str(config), env=env)
    assert done.returncode != 0
    assert str(config) in done.stderr
    done = run_cli("token", "--server", "--config", str(tmp_path / "missing.toml"), env=env)
    assert done.returncode != 0
    assert "missing.toml" in done.stderr


# --- serve with the embedded store ---------------------------------------------------------


def processes_mentioning(text: str) -> dict[int, str]:
    """Live (not zombie) processes whose command line contains `text`."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def parent_of(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def test_serve_launches_and_stops_the_embedded_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = clean_env(TIDINGS_AUTH_API_KEY=API_KEY, TIDINGS_AUTH_API_SECRET=API_SECRET)
    assert "TIDINGS_MONGODB_URL" not in env
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--port", str(port),
             "--data-dir", str(data_dir)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"serve exited with {process.returncode}: {log_path.read_text()}"
                )
            try:
                return requests.get(base + "/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, 90, 0.1, what="serve with the embedded store")
        stores = {p: c for p, c in processes_mentioning(str(data_dir)).items() if p != process.pid}
        assert stores, "no embedded store process runs on the data dir"
        assert all("secantus" in cmdline for cmdline in stores.values()), stores
        assert all(parent_of(pid) == process.pid for pid in stores), stores
        assert (data_dir / "store").is_dir()

        feed = f"{base}/api/v1.0/feed/user/embedded/"
        headers = {"Authorization": SERVER_TOKEN, "stream-auth-type": "jwt"}
        params = {"api_key": API_KEY}
        added = requests.post(
            feed,
            params=params,
            headers=headers,
            json={"actor": "a", "verb": "v", "object": "o"},
            timeout=10,
        )
        assert added.status_code == 201, added.text
        read = requests.get(feed, params=params, headers=headers, timeout=10)
        assert [a["id"] for a in read.json()["results"]] == [added.json()["id"]]

        # The command line finds the store this server runs (no mongodb.url anywhere).
        cli_env = {**env, "TIDINGS_SERVER_DATA_DIR": str(data_dir)}
        status = run_cli("firehose", "status", "--json", env=cli_env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == {"endpoints": [], "not_configured": []}

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text()
        wait_until(
            lambda: not processes_mentioning(str(data_dir)), 5, what="the embedded store to go"
        )
        gone = run_cli("firehose", "status", env=cli_env)
        assert gone.returncode != 0 and "embedded store" in gone.stderr, gone.stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in processes_mentioning(str(data_dir)):
            os.kill(pid, signal.SIGKILL)
    assert API_SECRET not in log_path.read_text()


# --- the public development secret -------------------------------------------------------


def test_public_dev_secret_is_refused_off_loopback(tmp_path: Path) -> None:
    """The image listens on 0.0.0.0: with the secret of config/default.toml anyone could sign
    server tokens, so it does not start, and says which variable to set."""
    env = clean_env(
        TIDINGS_SERVER_HOST="0.0.0.0",
        TIDINGS_MONGODB_URL="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100",
        TIDINGS_SERVER_PORT=str(free_port()),
    )
    done = run_cli("serve", "--data-dir", str(tmp_path), env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "TIDINGS_AUTH_API_SECRET" in done.stderr
    assert not (tmp_path / "store").exists()  # refused before launching anything
    done = run_cli("serve", "--host", "10.1.2.3", "--data-dir", str(tmp_path), env=env)
    assert done.returncode == 2 and "TIDINGS_AUTH_API_SECRET" in done.stderr


def test_public_dev_secret_still_serves_loopback(tmp_path: Path) -> None:
    """`make run` on a fresh machine: the development secret on 127.0.0.1 starts."""
    port = free_port()
    env = clean_env(TIDINGS_SERVER_PORT=str(port), TIDINGS_SERVER_DATA_DIR=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "serve", "--host", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def healthy() -> bool:
            assert process.poll() is None, "the server exited"
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(healthy, 60, 0.2, what="tidings on the development secret")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
