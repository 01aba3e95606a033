"""The Django sample's home page in a real headless browser (Debian's chromium, via selenium).

The daemon table must render, refresh itself every 2 s, and show a daemon's restart (new pid,
restarts up) without the page being reloaded. A screenshot of the page is written to
docs/screenshot.png when that file is missing or UPDATE_SCREENSHOT=1 (else to the test's tmp dir).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.osproc import proc
from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import REPO
from tests.samples.conftest import SampleRun

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = REPO / "docs" / "screenshot.png"

if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        f"browser tests need Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
        "apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

ROWS_JS = """
var out = {};
document.querySelectorAll('#daemons tbody tr[data-name]').forEach(function (r) {
  out[r.dataset.name] = {pid: r.dataset.pid, restarts: Number(r.dataset.restarts),
                         state: r.querySelector('.state').textContent};
});
var meta = document.getElementById('meta');
return {rows: out, refreshes: Number(meta.dataset.refreshes || 0), marker: window.adMarker || null};
"""


def _chromium_pids(profile: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and any(str(profile) in a for a in proc.cmdline(int(entry))):
            found.append(int(entry))
    return [p for p in found if alive(p)]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path / "chromium-profile"
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1100,800",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver_pid = service.process.pid
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
        left = [p for p in [driver_pid, *_chromium_pids(profile)] if alive(p)]
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not any(alive(p) for p in left), 10, "chromium and chromedriver to exit")
        still = [p for p in left if alive(p)]
        for pid in still:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        assert not still, f"chromium/chromedriver processes left after quit: {still}"


def test_daemon_table_renders_refreshes_and_shows_a_restart_without_reloading(
    sample_run: Callable[..., SampleRun], browser: Any, tmp_path: Path
) -> None:
    run = sample_run("django")
    server = run.start()
    run.wait_up(server)
    wait_for(run.all_running, 30, "the sample's daemons running and ready")

    browser.get(f"http://127.0.0.1:{run.port}/")

    def table() -> dict[str, Any]:
        return browser.execute_script(ROWS_JS)  # type: ignore[no-any-return]

    first = wait_for(
        lambda: (t := table())["rows"].keys() == run.expected() and t, 15, "the daemon table", interval=0.1
    )
    assert all(r["state"] == "running" for r in first["rows"].values()), first
    browser.execute_script("window.adMarker = 'same page';")  # gone if the page ever reloads
    n = first["refreshes"]
    wait_for(lambda: table()["refreshes"] >= n + 2, 10, "two more refreshes", interval=0.1)

    kv = run.daemons()["kv"]
    old_pid, old_restarts = kv["pid"], kv["restarts"]
    assert first["rows"]["kv"]["pid"] == str(old_pid)
    os.kill(old_pid, signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        t = table()
        row = t["rows"].get("kv", {})
        if row.get("state") == "running" and row.get("pid") not in ("", str(old_pid)):
            return t
        return None

    after = wait_for(restarted, 15, "the table to show kv's restart", interval=0.1)
    row = after["rows"]["kv"]
    assert row["restarts"] > old_restarts, row
    assert after["marker"] == "same page", "the page was reloaded"
    new_pid = int(row["pid"])
    assert run.daemons()["kv"]["pid"] == new_pid and alive(new_pid)

    # One more refresh (the restart's highlight has faded), then the picture for the README.
    m = after["refreshes"]
    wait_for(lambda: table()["refreshes"] > m, 10, "one more refresh", interval=0.1)
    update = os.environ.get("UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists()
    target = SCREENSHOT if update else tmp_path / "screenshot.png"
    assert browser.save_screenshot(str(target))
    assert target.stat().st_size > 10_000

    assert run.interrupt(server) == 0, server.output()
    wait_for(lambda: not alive(new_pid), 15, "kv stopped with the server")
