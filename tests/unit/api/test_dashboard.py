"""The dashboard a checkout serves (`make run`, no npm): clients/dashboard/public, complete with
the JS SDK's browser bundle, which is committed there; a wheel carries the same folder."""

from __future__ import annotations

import re

from tests.support import ROOT
from tidings.api.dashboard import dashboard_files

# what the page loads: <link href>, <script src>, and the ES module imports of its script
ASSET = re.compile(r'(?:href|src)="([^":]+)"|from "\./([^"]+)"')


def test_a_checkout_serves_the_one_copy_in_clients_dashboard() -> None:
    assert dashboard_files() == ROOT / "clients" / "dashboard" / "public"


def test_every_file_the_page_loads_is_there_without_a_build() -> None:
    files = dashboard_files()
    page = (files / "index.html").read_text() + (files / "dashboard.js").read_text()
    wanted = {a or b for a, b in ASSET.findall(page)}
    assert {"dashboard.css", "dashboard.js", "tidings.browser.mjs"} <= wanted
    missing = sorted(name for name in wanted if not (files / name).is_file())
    assert missing == []
