"""Stream's own cloud integration suites of its npm SDK (stream-js `test/integration/cloud/*.js`,
tag v8.14.0: the `getstream` version of tests/js/package.json) against one Tidings server.

The suites are not in the npm package, and Tidings does not copy them: they are read from a
git directory of stream-js (`STREAM_JS_GIT`, a bare clone or a checkout's `.git`; by default
the one this workplace keeps under /work/.mirror), exported at the pinned commit into a
temporary directory with its BSD-3 licence, and run there by mocha with `tsx` (as stream-js's
own `test-cloud` script does), their `../../../src` import answered by the installed
`getstream` package. What they import besides (mocha, chai, expect.js, request, tsx) is pinned
in tests/js/package.json. Without that git directory the tests are skipped, saying so.

The SDK is pointed at the server with `STREAM_BASE_URL` (which the SDK reads before `LOCAL`),
with the server's key and secret as `STREAM_API_KEY` / `STREAM_API_SECRET`. All contexts run in
one mocha invocation; each context is one test here. A context listed in EXPECTED_FAILURES is
marked xfail with what it waits for: when that lands the context shows as XPASS, and deleting
its entry makes it a requirement. `STREAM_JS_SUITES_STRICT=1` runs every context as required.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from harness.pool import ServerPool
from tests.support import API_KEY, API_SECRET, ROOT

PINNED_TAG = "v8.14.0"
PINNED_COMMIT = "9ebb13bd7989d2b7c86656ca176e9350b809478f"
DEFAULT_GIT = Path("/work/.mirror/GetStream+stream-js/repo")
CLOUD = "test/integration/cloud"
EXPORTED = [CLOUD, "test/integration/utils/config.js", "test/integration/utils/hooks.js", "LICENSE"]
NODE_MODULES = ROOT / "tests/js/node_modules"
SERVER_CONFIG = ROOT / "tests/js/stream_suites.toml"

EXPECTED_FAILURES: dict[str, str] = {}  # context -> what it waits for
# Contexts not run at all: what they need is not Tidings'.
NOT_RUN = {
    "open_graph": "reads google.com, github.com and getstream.io: needs the internet "
    "(tests/integration/test_og.py covers link previews through local pages)",
    "personalized_feed": "Stream's personalization service, which Tidings does not have",
    "user_flag": "Stream's moderation; the suite runs it only for Stream's app 16792",
}
# Single tests left out of a context that runs (by mocha's full title).
LEFT_OUT = {
    "Files When alice adds a different type of file stream the request should not error":
    "uploads what it downloads from nodejs.org: needs the internet",
}  # fmt: skip
CONTEXTS = [
    "activities", "collection", "enrich", "files", "follow_list", "images",
    "not_found_enrichment", "permissions", "profile", "reaction", "to_targets",
]  # fmt: skip
STRICT = os.environ.get("STREAM_JS_SUITES_STRICT") == "1"


def suites_git() -> Path | None:
    path = Path(os.environ.get("STREAM_JS_GIT", DEFAULT_GIT))
    has_commit = subprocess.run(
        ["git", "--git-dir", str(path), "cat-file", "-e", f"{PINNED_COMMIT}^{{commit}}"],
        capture_output=True,
    )
    return path if path.is_dir() and has_commit.returncode == 0 else None


def export_suites(git_dir: Path, into: Path) -> None:
    """The pinned suites, their helpers and the licence, as files under `into`."""
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", "--format=tar", PINNED_COMMIT, *EXPORTED],
        capture_output=True, check=True,
    )  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    (into / "src").mkdir()
    (into / "src/index.js").write_text("module.exports = require('getstream');\n")
    (into / "package.json").write_text('{"private": true}\n')  # CommonJS, as the suites expect
    (into / "node_modules").symlink_to(NODE_MODULES)


def mocha_command(report: Path) -> list[str]:
    files = [f"{CLOUD}/{name}.js" for name in CONTEXTS]
    left_out = "|".join(f"^{re.escape(title)}$" for title in LEFT_OUT)
    return [
        "node_modules/.bin/mocha", "--require", "tsx/cjs", "--timeout", "20000", "--exit",
        "--reporter", "json", "--reporter-option", f"output={report}",
        "--grep", left_out, "--invert", *files,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def suite_results(pool: ServerPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Every context's tests, by context: mocha's JSON report of one run."""
    git_dir = suites_git()
    if git_dir is None:
        pytest.skip(
            f"no stream-js git directory holding {PINNED_TAG} ({PINNED_COMMIT[:10]}): set "
            "STREAM_JS_GIT to a clone of Stream's stream-js"
        )
    if shutil.which("node") is None or not (NODE_MODULES / ".bin/mocha").exists():
        pytest.fail("node and tests/js/node_modules (with mocha) are needed: make install-test")
    server = pool.get({"TIDINGS_CONFIG": str(SERVER_CONFIG)})
    work = tmp_path_factory.mktemp("stream-js")
    export_suites(git_dir, work)
    report = work / "report.json"
    env = {
        **os.environ,
        "STREAM_API_KEY": API_KEY,
        "STREAM_API_SECRET": API_SECRET,
        "STREAM_APP_ID": "1",
        "STREAM_BASE_URL": f"{server.url}/api/",
    }
    done = subprocess.run(
        mocha_command(report), cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert report.exists(), done.stderr[-3000:]
    yield by_context(json.loads(report.read_text()))


def by_context(report: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """{context: {"passes": [...], "failures": [...], "pending": [...]}} from mocha's report."""
    contexts: dict[str, dict[str, list[Any]]] = {}
    for state in ("passes", "failures", "pending"):
        for test in report[state]:
            name = Path(test.get("file") or "").stem
            contexts.setdefault(name, {"passes": [], "failures": [], "pending": []})
            contexts[name][state].append(test)
    return contexts


def failure_lines(failures: list[Any]) -> str:
    return "\n".join(
        f"- {t['fullTitle']}: {(t.get('err') or {}).get('message', '')[:300]}" for t in failures
    )


def context_params() -> list[Any]:
    params = []
    for name in CONTEXTS:
        marks = []
        if name in EXPECTED_FAILURES and not STRICT:
            marks.append(pytest.mark.xfail(reason=f"needs {EXPECTED_FAILURES[name]}"))
        params.append(pytest.param(name, marks=marks, id=name))
    for name, reason in NOT_RUN.items():
        params.append(pytest.param(name, marks=pytest.mark.skip(reason=reason), id=name))
    return params


@pytest.mark.parametrize("context", context_params())
def test_streams_own_cloud_suite_context(context: str, suite_results: Any) -> None:
    """Every test of the context passes; none was skipped by an earlier failure (the suites'
    CloudContext skips the rest of a context once one of its tests fails)."""
    results = suite_results.get(context)
    assert results is not None, f"mocha ran no test of {context}"
    assert not results["failures"], failure_lines(results["failures"])
    assert results["passes"], f"no test of {context} passed"
    skipped = [t["fullTitle"] for t in results["pending"] if not declared_pending(context, t)]
    assert not skipped, skipped


def declared_pending(context: str, test: dict[str, Any]) -> bool:
    """Tests the suite itself skips (`this.skip()` in the test), not skipped by a failure."""
    title = "the response should should include a user key with bob and carl"
    return context == "follow_list" and test["title"] == title
