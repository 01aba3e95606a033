"""ATTACH_DAEMONS_AUTOSTART: any other server process that loads the Django app owns the daemons
(not management commands, not gunicorn workers)."""

from __future__ import annotations

import signal
from collections.abc import Callable

from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import Host, no_supervisor

SERVER = "import django, signal; django.setup(); print('serving', flush=True); signal.pause()"


def test_autostart__a_process_that_loads_the_app_owns_the_daemons(host: Callable[..., Host]) -> None:
    h = host("djsite")
    server = h.start(
        [h.python, "-c", SERVER], "server", AD_AUTOSTART="1", DJANGO_SETTINGS_MODULE="djsite.settings"
    )
    a = wait_for(lambda: h.box.running("a"), 20, "a started by the opted-in process")
    assert h.status()["supervisor"]["owners"] == [server.pid]
    server.signal(signal.SIGKILL)
    wait_for(lambda: not alive(a), 3, "a stopped when its owner died")


def test_autostart__management_commands_still_start_nothing(host: Callable[..., Host]) -> None:
    h = host("djsite")
    out = h.run([h.python, "manage.py", "check"], AD_AUTOSTART="1")
    assert out.returncode == 0, out.stderr
    assert no_supervisor(h.box.runtime_dir) and not h.box.events.lines()


def test_autostart__off_by_default(host: Callable[..., Host]) -> None:
    h = host("djsite")
    out = h.run([h.python, "-c", "import django; django.setup()"], DJANGO_SETTINGS_MODULE="djsite.settings")
    assert out.returncode == 0, out.stderr
    assert no_supervisor(h.box.runtime_dir) and not h.box.events.lines()


def test_autostart__environment_variable_0_wins_over_the_setting(host: Callable[..., Host]) -> None:
    """``ATTACH_DAEMONS_AUTOSTART=0`` in the environment (a test run of the app) starts nothing,
    whatever the setting says."""
    h = host("djsite")
    out = h.run(
        [h.python, "-c", "import django; django.setup()"],
        AD_AUTOSTART="1",
        ATTACH_DAEMONS_AUTOSTART="0",
        DJANGO_SETTINGS_MODULE="djsite.settings",
    )
    assert out.returncode == 0, out.stderr
    assert no_supervisor(h.box.runtime_dir) and not h.box.events.lines()


def test_autostart__environment_variable_1_opts_in_without_the_setting(host: Callable[..., Host]) -> None:
    h = host("djsite")
    server = h.start(
        [h.python, "-c", SERVER],
        "server",
        ATTACH_DAEMONS_AUTOSTART="1",
        DJANGO_SETTINGS_MODULE="djsite.settings",
    )
    a = wait_for(lambda: h.box.running("a"), 20, "a started by the process the variable opted in")
    assert h.status()["supervisor"]["owners"] == [server.pid]
    server.signal(signal.SIGKILL)
    wait_for(lambda: not alive(a), 3, "a stopped when its owner died")
