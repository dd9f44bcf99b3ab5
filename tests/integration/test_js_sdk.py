"""The JS SDK's own tests (clients/js/test/*.test.mjs, `node --test`), run against this
checkout: the store comes from the session's fixture; each node test starts its Tidings servers
(`python -m tidings serve`, restarted mid-stream), redis-server and headless Chromium itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.support import ROOT, Store

JS = ROOT / "clients" / "js"
FILES = ["package", "recovery", "catchup", "browser", "dashboard"]


@pytest.fixture(scope="module")
def sdk_built() -> None:
    if shutil.which("node") is None or not (JS / "node_modules").is_dir():
        pytest.fail("node and clients/js/node_modules are needed: run `make install-test`")
    if not (JS / "dist" / "index.mjs").is_file():
        subprocess.run(["npm", "run", "build"], cwd=JS, check=True, capture_output=True)


@pytest.mark.parametrize("name", FILES)
def test_js_sdk(name: str, store: Store, sdk_built: None) -> None:
    env = {**os.environ, "TIDINGS_TEST_MONGODB_URL": store.url, "TIDINGS_PYTHON": sys.executable}
    result = subprocess.run(
        ["node", "--test", "--test-reporter=spec", f"test/{name}.test.mjs"],
        cwd=JS, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    failed = [line for line in result.stdout.splitlines() if "✖" in line]
    assert result.returncode == 0, "\n".join(failed) + result.stdout[-6000:] + result.stderr[-3000:]
