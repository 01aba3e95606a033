"""The portable process layer itself (docs/process-model.md, "The portable layer"), on real
processes, whichever layer the rest of the run uses: identity agrees with the linux layer's
/proc reads, exits are heard by polling (only while something is watched), signals reach only the
process a watch was opened on, sessions and groups are emptied, touch files are polled, a pidfile
naming an unrelated process is refused, and a supervisor on it opens no pidfd and no inotify.

The kqueue path (``ExitWatches._open_kqueue``) is not run here: Linux has no kqueue."""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attachdaemon_core.engine import watch
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.osproc import exitwatch, layer, pidfile, portable, proc
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import PY, Sandbox, alive, assert_stays, probe, wait_for

PORTABLE = portable.Portable()


@contextlib.contextmanager
def started(*argv: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a session of its own, ended (its whole group) and reaped however the test goes."""
    p = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        yield p
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)


def turn(sel: selectors.BaseSelector, timers: Timers, fd: int, within: float) -> float | None:
    """Run a selector loop on ``timers`` until ``fd`` is readable; seconds it took, None if never."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        timeout = timers.timeout()
        events = sel.select(min(within, timeout if timeout is not None else within))
        timers.run_due()
        if any(key.fd == fd for key, _ in events):
            return time.monotonic() - t0
    return None


def test_identity__what_psutil_gives_is_what_proc_gives() -> None:
    with started("sh", "-c", "sleep 100 & exec sleep 101") as p:
        wait_for(lambda: len(proc.session_members(p.pid)) == 2, 5, "the child and its background sleep")
        child = next(pid for pid in proc.session_members(p.pid) if pid != p.pid)
        wait_for(lambda: proc.cmdline(p.pid) == ["sleep", "101"], 5, "the exec")
        for pid in (p.pid, child):
            mine, theirs = PORTABLE.stat(pid), proc.stat(pid)
            assert mine is not None and theirs is not None
            for field in ("pid", "ppid", "pgid", "sid", "starttime", "comm"):
                assert getattr(mine, field) == getattr(theirs, field), field
            assert abs(mine.started_at - theirs.started_at) < 0.02
            assert PORTABLE.exe(pid) == proc.exe(pid)
            assert PORTABLE.cmdline(pid) == proc.cmdline(pid)
            assert PORTABLE.owner_uid(pid) == proc.owner_uid(pid) == os.geteuid()
            assert PORTABLE.is_alive(pid)
        assert PORTABLE.descends_from(child, p.pid) and not PORTABLE.descends_from(p.pid, child)
        assert sorted(PORTABLE.session_members(p.pid)) == sorted(proc.session_members(p.pid))
        assert p.pid in PORTABLE.live_sessions()
        assert {st.pid for st in PORTABLE.started_since(PORTABLE.stat(p.pid).starttime)} >= {p.pid, child}  # type: ignore[union-attr]
        assert abs(PORTABLE.boot_seconds() - proc.boot_seconds()) < 0.05
    assert PORTABLE.stat(p.pid) is None and not PORTABLE.is_alive(p.pid)


def test_exit_watch__polling_hears_an_exit_within_one_interval__nothing_polls_when_nothing_is_watched() -> (
    None
):
    watches = exitwatch.ExitWatches(use_kqueue=False)
    timers = Timers(time.monotonic)
    watches.attach(timers)
    assert len(timers) == 0, "a timer armed with nothing watched"
    sel = selectors.DefaultSelector()
    with started("sleep", "100") as p:
        fd = watches.open(p.pid)
        assert fd is not None and len(timers) == 1
        sel.register(fd, selectors.EVENT_READ)
        assert turn(sel, timers, fd, 0.5) is None, "readable while the process lives"
        polls = watches.polls
        assert 1 <= polls <= 4  # every 0.2 s
        os.kill(p.pid, signal.SIGKILL)  # a zombie until reaped: exited all the same
        took = turn(sel, timers, fd, 2.0)
        assert took is not None and took < exitwatch.POLL_INTERVAL + 0.15, took
        assert not watches.signal(fd, signal.SIGTERM), "signalled through a watch whose process exited"
        sel.unregister(fd)
        watches.close(fd)
    assert len(timers) == 0 and not watches.watches, "still polling with nothing watched"
    sel.close()


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_exit_watch__every_look_hears_an_exit__even_between_the_start_time_comparisons() -> None:
    watches = exitwatch.ExitWatches(use_kqueue=False)
    assert exitwatch.IDENTITY_EVERY > 3  # looks 1-3 below compare no start time
    with started("sleep", "100") as zombie, started("sleep", "100") as gone:
        fd_z, fd_g = watches.open(zombie.pid), watches.open(gone.pid)
        assert fd_z is not None and fd_g is not None
        watches.poll()  # look 1
        assert not readable(fd_z) and not readable(fd_g), "readable while the processes live"
        os.kill(zombie.pid, signal.SIGKILL)  # not reaped (by us, its parent): a zombie
        wait_for(lambda: exitwatch.create_time(zombie.pid) is None, 5, "the zombie")
        watches.poll()  # look 2
        assert readable(fd_z), "a zombie not heard on a look that compares no start time"
        assert not readable(fd_g)
        os.kill(gone.pid, signal.SIGKILL)
        gone.wait(5)  # reaped: the pid is free
        watches.poll()  # look 3
        assert readable(fd_g), "a gone process not heard on a look that compares no start time"
        assert watches.polls % exitwatch.IDENTITY_EVERY != 0
        for fd in (fd_z, fd_g):
            watches.close(fd)


def test_exit_watch__a_reused_pid_is_heard_within_one_second() -> None:
    """A pid reuse cannot be forced quickly; as in the signal test below, the watch's recorded
    start time is replaced, which is what a look sees after a reuse: the pid there, another start
    time. It is heard at the next look that compares start times, every ``IDENTITY_EVERY``-th."""
    watches = exitwatch.ExitWatches(use_kqueue=False)
    with started("sleep", "100") as p:
        fd = watches.open(p.pid)
        assert fd is not None
        watches.watches[fd].created -= 10
        heard = 0
        for look in range(1, exitwatch.IDENTITY_EVERY + 1):
            watches.poll()
            if readable(fd):
                heard = look
                break
        assert 0 < heard <= exitwatch.IDENTITY_EVERY, "a reused pid not heard within the bound"
        assert exitwatch.IDENTITY_EVERY * exitwatch.POLL_INTERVAL <= 1.0  # as documented
        assert p.poll() is None, "the process itself was touched"
        watches.close(fd)
        # On the timers, from just after a comparison (the worst case): within the documented
        # second, and the loop's slack.
        assert watches.polls % exitwatch.IDENTITY_EVERY == 0
        timers = Timers(time.monotonic)
        watches.attach(timers)
        sel = selectors.DefaultSelector()
        fd = watches.open(p.pid)
        assert fd is not None
        sel.register(fd, selectors.EVENT_READ)
        watches.watches[fd].created -= 10
        took = turn(sel, timers, fd, 3.0)
        assert took is not None and took < exitwatch.IDENTITY_EVERY * exitwatch.POLL_INTERVAL + 0.3, took
        sel.unregister(fd)
        watches.close(fd)
        sel.close()
    assert len(timers) == 0


def test_exit_watch__without_timers_nothing_polls__a_gone_pid_gets_no_watch() -> None:
    watches = exitwatch.ExitWatches(use_kqueue=False)
    with started("sleep", "100") as p:
        fd = watches.open(p.pid)
        assert fd is not None
        assert watches.signal(fd, 0)
        watches.close(fd)
    assert watches.open(p.pid) is None
    assert watches.polls == 0


def test_exit_watch__signal_reaches_only_the_process_it_was_opened_on() -> None:
    watches = exitwatch.ExitWatches(use_kqueue=False)
    with started("sleep", "100") as p:
        fd = watches.open(p.pid)
        assert fd is not None
        # The pid now names another process (as after a reuse): its start time differs.
        watches.watches[fd].created -= 10
        assert not watches.signal(fd, signal.SIGKILL)
        time.sleep(0.05)  # (a wrongly sent SIGKILL would have landed by now)
        assert alive(p.pid), "a process the watch was not opened on was signalled"
        watches.watches[fd].created += 10
        assert watches.signal(fd, signal.SIGKILL)
        wait_for(lambda: p.poll() is not None, 5, "killed through the watch")
        watches.close(fd)


def test_session_and_group__emptied_by_the_portable_layer() -> None:
    with started("sh", "-c", "sleep 100 & sleep 100 & (sleep 100 &) ; wait") as p:
        wait_for(lambda: len(PORTABLE.session_members(p.pid)) == 4, 5, "four in the session")
        members = PORTABLE.session_members(p.pid)
        assert PORTABLE.group_exists(p.pid)
        with started("sleep", "100") as bystander:
            assert PORTABLE.kill_session(p.pid) == 4
            wait_for(lambda: not any(PORTABLE.is_alive(m) for m in members if m != p.pid), 5, "members gone")
            assert bystander.poll() is None, "a process of another session was killed"
        p.wait(5)
        assert not PORTABLE.session_members(p.pid)
    with started("sh", "-c", "sleep 100 & wait") as q:
        wait_for(lambda: len(PORTABLE.session_members(q.pid)) == 2, 5, "two in the group")
        assert PORTABLE.signal_group(q.pid, signal.SIGKILL)
        q.wait(5)
        wait_for(lambda: not PORTABLE.group_exists(q.pid), 5, "the group empty")


def test_touch_files__polled_while_declared_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(layer, "PORTABLE", True)  # as ATTACHDAEMON_PLATFORM=portable chooses
    sel = selectors.DefaultSelector()
    timers = Timers(time.monotonic)
    seen: list[float] = []
    w = watch.Watcher(
        sel,
        timers,
        str(tmp_path),
        on_touched=lambda: seen.append(time.monotonic()),
        on_runtime_event=lambda: None,
        runtime_names=(),
        poll_every=0.1,
    )
    assert w.inotify is None and len(timers) == 0 and not sel.get_map()
    w.watch_touch({str(tmp_path / "reload.touch")})
    assert len(timers) == 1
    end = time.monotonic() + 2
    while len(seen) < 3 and time.monotonic() < end:
        sel.select(timers.timeout())
        timers.run_due()
    assert len(seen) >= 3
    w.watch_touch(set())
    assert len(timers) == 0, "still polling with no touch file declared"
    sel.close()


def test_pid_reuse__a_pidfile_naming_an_unrelated_process_is_refused() -> None:
    with started("sleep", "100") as p:
        wait_for(
            lambda: PORTABLE.exe(p.pid) is not None and "sleep" in (PORTABLE.exe(p.pid) or ""), 5, "exec"
        )
        born = PORTABLE.stat(p.pid).started_at  # type: ignore[union-attr]
        me = os.geteuid()
        why = pidfile.verify(p.pid, programs=("sleep",), mtime=born - 60, file_uid=me, procs=PORTABLE)
        assert why is not None and "a reused pid" in why
        why = pidfile.verify(p.pid, programs=("redis-server",), mtime=born + 1, file_uid=me, procs=PORTABLE)
        assert why is not None and "not redis-server" in why
        assert pidfile.verify(1, programs=("redis-server",), mtime=time.time(), file_uid=me, procs=PORTABLE)
        assert pidfile.verify(p.pid, programs=("sleep",), mtime=born + 1, file_uid=me, procs=PORTABLE) is None


def test_pid_reuse__supervisor_on_portable_neither_adopts_nor_signals_an_unrelated_process(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(layer.VARIABLE, "portable")  # the supervisor started below inherits it
    with started("sleep", "100") as stranger:
        pid_path = sandbox.tmp / "s.pid"
        pid_path.write_text(f"{stranger.pid}\n")
        spec = DaemonSpec(
            name="s",
            command=probe(sandbox.events, "s", "--daemonize", str(pid_path)),
            pidfile=str(pid_path),
            process_name=PY,
            on_reload="keep",
            log="runtime",
        )
        sandbox.join(sandbox.owner(), [spec])
        ours = wait_for(lambda: sandbox.running("s"), 10, "our own s running")
        assert ours != stranger.pid, "the unrelated process was adopted"
        sandbox.call("restart", names=["s"])
        wait_for(lambda: (p := sandbox.running("s")) and p != ours, 10, "restarted")
        assert stranger.poll() is None, "the unrelated process was signalled"
        sup = sandbox.supervisor_pid()
        # No subreaper: the double-forked daemon went to init (or another reaper), not to us.
        assert proc.stat(sandbox.running("s") or 0).ppid != sup  # type: ignore[union-attr]
        links = [os.readlink(f"/proc/{sup}/fd/{n}") for n in os.listdir(f"/proc/{sup}/fd")]
        assert not [x for x in links if "pidfd" in x or "inotify" in x], links


def test_choosing__variable_forces__unknown_value_is_a_clear_error(tmp_path: Path) -> None:
    assert layer.choose({"ATTACHDAEMON_PLATFORM": "portable"}) == "portable"
    assert layer.choose({"ATTACHDAEMON_PLATFORM": "linux"}) == "linux"
    assert layer.choose({}) == ("linux" if layer.linux_works() else "portable")
    with pytest.raises(layer.PlatformError) as err:
        layer.choose({"ATTACHDAEMON_PLATFORM": "macos"})
    assert str(err.value) == (
        "ATTACHDAEMON_PLATFORM='macos' is not one of linux, portable; unset it to choose automatically"
    )
    (tmp_path / "Procfile").write_text("web: sleep 1\n")
    bad = subprocess.run(
        [sys.executable, "-m", "attachdaemon_core", "-c", str(tmp_path / "Procfile"), "run", "--", "true"],
        cwd=tmp_path,
        check=False,
        env={**os.environ, "ATTACHDAEMON_PLATFORM": "macos"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0 and "ATTACHDAEMON_PLATFORM='macos' is not one of linux, portable" in bad.stderr
    assert "Traceback" not in bad.stderr, bad.stderr


def test_linux_layer_does_not_load_psutil() -> None:
    code = "import sys, attachdaemon_core.engine.supervisor, attachdaemon_core.hosts.runtime\n"
    code += "print('psutil' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={k: v for k, v in os.environ.items() if k != "ATTACHDAEMON_PLATFORM"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == ("False" if layer.linux_works() else "True")


def test_psutil_that_cannot_load__clear_error__nothing_started(tmp_path: Path) -> None:
    """Where psutil has no port (it raises NotImplementedError on import, as on DragonFly BSD) or
    is missing, the portable layer cannot run: the host says so, names the fix, and starts
    nothing, instead of the package failing to import with a traceback."""
    fake = tmp_path / "fake-site"
    fake.mkdir()
    (fake / "psutil.py").write_text('raise NotImplementedError("platform dragonfly6 is not supported")\n')
    flag = tmp_path / "started"
    (tmp_path / "Procfile").write_text(f"web: touch {flag} && sleep 30\n")
    bad = subprocess.run(
        [sys.executable, "-m", "attachdaemon_core", "-c", str(tmp_path / "Procfile"), "run", "--", "true"],
        cwd=tmp_path,
        check=False,
        env={**os.environ, "ATTACHDAEMON_PLATFORM": "portable", "PYTHONPATH": str(fake)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0, bad.stderr
    assert "the portable process layer needs psutil, which cannot be loaded here" in bad.stderr
    assert "platform dragonfly6 is not supported" in bad.stderr and "pip install psutil" in bad.stderr
    assert "nothing was started" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert_stays(lambda: not flag.exists(), 1.0, "no daemon ran")
