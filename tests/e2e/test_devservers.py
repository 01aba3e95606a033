"""Dev servers own the supervisor for their whole life: runserver and ``flask run`` with autoreload."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import Host, Server, free_port, no_supervisor


class Editor:
    """Edits a module until the reloader sees it: a reloader that had not taken its first look at
    the file's mtime yet would miss a single edit, so each retry writes again with a later mtime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.edits = 0
        self.last = 0.0

    def edit_unless(self, seen: Callable[[], bool]) -> bool:
        try:
            if seen():
                return True
        except OSError:
            pass  # not answering yet (the server may be down until the edit lands)
        if time.monotonic() - self.last > 1.5:
            self.edits += 1
            self.path.write_text(re.sub(r"VERSION = \d+", "VERSION = 2", self.path.read_text()))
            stamp = time.time() + self.edits
            os.utime(self.path, (stamp, stamp))
            self.last = time.monotonic()
        return False


def _server(h: Host, kind: str, port: int) -> tuple[Server, Path]:
    if kind == "runserver":
        s = h.start([h.python, "manage.py", "runserver", f"127.0.0.1:{port}"], "runserver")
        return s, h.dir / "djsite" / "views.py"
    s = h.start([str(h.bin / "flask"), "--app", "app", "run", "--reload", "-p", str(port)], "flask")
    return s, h.dir / "app.py"


@pytest.mark.parametrize(("fixture", "kind"), [("djsite", "runserver"), ("flaskapp", "flask run")])
def test_dev_server__code_edit_reloads_app__supervisor_kept_attached_restarted__ctrl_c_stops(
    host: Callable[..., Host], fixture: str, kind: str
) -> None:
    h = host(fixture)
    box = h.box
    port = free_port()
    server, module = _server(h, kind, port)
    try:
        wait_for(lambda: "version 1" in h.http(port), 30, "the app answering")
        attached = wait_for(lambda: box.running("a"), 10, "a running")
        smart = wait_for(lambda: box.running("s"), 10, "s running")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{server.output()}") from None
    sup = box.supervisor_pid()
    # the reloader parent is the owner, and the first child's announcement restarted nothing
    assert box.status()["supervisor"]["owners"] == [server.pid]
    assert box.events.starts("a") == [attached]

    editor = Editor(module)
    wait_for(
        lambda: editor.edit_unless(lambda: "version 2" in h.http(port)),
        30,
        f"the edited app answering\n{server.output()}",
        interval=0.05,
    )
    wait_for(lambda: (p := box.running("a")) and p != attached, 10, "a restarted (on_reload restart)")
    assert box.supervisor_pid() == sup and h.supervisors() == [sup]
    assert box.running("s") == smart and box.events.starts("s") == [smart]
    assert box.status()["supervisor"]["owners"] == [server.pid]

    server.signal_group(signal.SIGINT)  # Ctrl-C in the terminal
    server.wait_exit(20)
    assert h.living("a") == [], server.output()
    assert alive(smart)
    wait_for(lambda: no_supervisor(box.runtime_dir) and not h.supervisors(), 10, "supervisor exit")


def test_runserver_started_with_broken_code__the_child_starts_the_daemons_owned_by_the_parent(
    host: Callable[..., Host],
) -> None:
    """Django's reloader parent runs django.setup() inside check_errors: with an app that does not
    import, ready() never runs there. Once the code is fixed, the reloader child starts the
    supervisor, registering the long-lived parent as its owner."""
    h = host("djsite")
    box = h.box
    port = free_port()
    server = h.start([h.python, "manage.py", "runserver", f"127.0.0.1:{port}"], "runserver", AD_BROKEN="1")
    wait_for(lambda: "broken at start" in server.output(), 30, "the import error shown")
    assert no_supervisor(box.runtime_dir) and box.events.lines() == []
    broken = h.dir / "brokenapp" / "__init__.py"
    fixer = Editor(broken)
    fixer.path.write_text(broken.read_text().replace("BROKEN = True", "BROKEN = False"))
    wait_for(
        lambda: fixer.edit_unless(lambda: "version 1" in h.http(port)),
        40,
        f"the fixed app answering\n{server.output()}",
        interval=0.05,
    )
    attached = wait_for(lambda: box.running("a"), 10, "a running")
    assert box.status()["supervisor"]["owners"] == [server.pid], "the reloader parent owns it"
    server.signal_group(signal.SIGINT)
    server.wait_exit(20)
    wait_for(lambda: not alive(attached), 10, "a stopped with runserver")
    wait_for(lambda: no_supervisor(box.runtime_dir), 10, "supervisor exit")
