"""ATTACH_DAEMONS_WAIT_READY: gunicorn's master holds until daemons with a ready probe are ready,
so workers boot after their database is up — bounded, with a clear line when the bound is hit."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from tests.helpers.harness import wait_for
from tests.helpers.hosts import Host, free_port


def first_answer_ns(h: Host, port: int) -> int:
    def answered() -> int | None:
        try:
            return time.monotonic_ns() if "200 OK" in h.http(port) else None
        except OSError:
            return None

    return wait_for(answered, 30, "gunicorn answering", interval=0.01)


def listen_ns(h: Host) -> int:
    return next(ns for ns, n, w, _ in h.box.events.lines() if n == "db" and w == "LISTEN")


def test_wait_ready__workers_boot_after_the_probe_passes(host: Callable[..., Host]) -> None:
    h = host("plain")
    port = free_port()
    g = h.gunicorn(port, AD_SLOW_DB_PORT=str(free_port()), AD_WAIT_READY="20")
    answered = first_answer_ns(h, port)
    assert answered > listen_ns(h), "gunicorn served before its database daemon was ready"
    assert "still waiting" not in g.output()


def exit_ns(h: Host, name: str) -> int:
    return next(ns for ns, n, w, _ in h.box.events.lines() if n == name and w.startswith("EXIT"))


def test_wait_ready__waits_for_a_one_shot_to_complete(host: Callable[..., Host]) -> None:
    h = host("plain")
    port = free_port()
    g = h.gunicorn(port, AD_MIGRATE_CODE="0", AD_WAIT_READY="20")
    answered = first_answer_ns(h, port)
    assert answered > exit_ns(h, "migrate"), "gunicorn served before its migration completed"
    assert "still waiting" not in g.output()
    migrate = next(d for d in h.status()["daemons"] if d["name"] == "migrate")
    assert (migrate["oneshot"], migrate["state"], migrate["ready"]) == (True, "exited", True)


def test_wait_ready__a_failed_one_shot_ends_the_wait_saying_why(host: Callable[..., Host]) -> None:
    h = host("plain")
    port = free_port()
    g = h.gunicorn(port, AD_MIGRATE_CODE="3", AD_WAIT_READY="60")
    answered = first_answer_ns(h, port)
    failed = exit_ns(h, "migrate")
    assert answered > failed
    assert (answered - failed) / 1e9 < 20, "the master waited on after the one-shot had failed"
    assert "ATTACH_DAEMONS_WAIT_READY: migrate: the one-shot failed (exit status 3); going on" in g.output()


def test_wait_ready__bound_hit__says_so_and_goes_on(host: Callable[..., Host]) -> None:
    h = host("plain")
    port = free_port()
    g = h.gunicorn(port, AD_SLOW_DB_PORT=str(free_port()), AD_WAIT_READY="0.3")
    answered = first_answer_ns(h, port)
    wait_for(lambda: h.box.events.lines() and listen_ns(h), 10, "db listening")
    assert answered < listen_ns(h), "the master waited past its bound"
    # db is named; a daemon without a probe that has not yet been verified (the smart 's' on a
    # loaded machine) may be named beside it.
    said = re.search(
        r"ATTACH_DAEMONS_WAIT_READY: still waiting for ([\w, -]+) after 0\.3s; going on", g.output()
    )
    assert said is not None and "db" in said.group(1).split(", "), g.output()
