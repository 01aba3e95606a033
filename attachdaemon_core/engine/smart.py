"""Smart and smart2 daemons: pidfiles adopted only after identity checks, launched commands followed
until their pidfile names the daemon, deaths seen through pidfds, a re-executed daemon followed
rather than restarted, and a per-user lock on each pidfile path (docs/events.md, docs/process-model.md).

Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import selectors
import signal
import time
from collections.abc import Callable, Mapping, MutableMapping

from attachdaemon_core.engine import launches, logs
from attachdaemon_core.engine.daemon import Daemon, ExitStatus, Launch
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.states import State
from attachdaemon_core.osproc import pidfile, proc
from attachdaemon_core.osproc.spawn import Credentials, SpawnError, resolve_credentials, resolve_program
from attachdaemon_core.spec.messages import error_text
from attachdaemon_core.spec.model import DaemonSpec

log = logging.getLogger("attachdaemon")


class SmartRunner:
    """Starts pidfile-governed daemons, adopts and follows them, and handles their deaths."""

    def __init__(
        self,
        *,
        os: RealOS,
        clock: Callable[[], float],
        timers: Timers,
        selector: selectors.BaseSelector,
        children: MutableMapping[int, Callable[[ExitStatus], None]],
        exit_status: MutableMapping[int, ExitStatus],
        env: Mapping[str, str],
        smart_known: MutableMapping[str, tuple[int, int]],
        spawn: Callable[[Daemon], int | None],
        spawn_failed: Callable[[Daemon, str], None],
        credentials: Callable[[DaemonSpec], Credentials | None],
        log_path: Callable[[DaemonSpec], str],
        now_running: Callable[[Daemon], None],
        settle: Callable[[Daemon, State, float, str], None],
        stop: Callable[..., None],
        stop_done: Callable[[Daemon], None],
        stop_progress: Callable[[Daemon], None],
        kill_pid: Callable[[int, int], None],
        save_state: Callable[[], None],
    ) -> None:
        self.os = os  # processes, pidfds, every /proc read (pidfile checks and launches too)
        self.clock = clock
        self.timers = timers
        self.selector = selector
        self.children = children
        self.exit_status = exit_status  # exits reaped before their pidfd said so
        self.env = env  # the owners' environment (the supervisor updates it in place)
        # realpath of a pidfile -> (pid, /proc start time) of the daemon our launch produced, kept
        # in the state file (0600 in our 0700 runtime directory), so the next supervisor knows it
        # whatever uid it switched to.
        self.smart_known = smart_known
        self.spawn = spawn
        self.spawn_failed = spawn_failed
        self.credentials = credentials
        self.log_path = log_path
        self.now_running = now_running
        self.settle = settle
        self.stop = stop
        self.stop_done = stop_done
        self.stop_progress = stop_progress
        self.kill_pid = kill_pid
        self.save_state = save_state

    def _output(self, d: Daemon, *, ended: bool = True) -> str:
        return launches.launch_output(d, self.log_path(d.spec), ended=ended)

    def set_timer(self, d: Daemon, delay: float, callback: Callable[[], None]) -> None:
        d.runtime.cancel_timer()
        d.runtime.timer = self.timers.call_later(delay, callback)

    # ------------------------------------------------------------------ smart daemons
    def start(self, d: Daemon) -> None:
        assert d.spec.pidfile is not None
        if self._adopt_from_pidfile(d, initial=True):
            return
        if not self._ensure_pidfile_dir(d):
            return
        log_offset = logs.file_size(self.log_path(d.spec)) if d.spec.log not in ("prefix", "raw") else 0
        pid = self.spawn(d)
        if pid is None:
            return
        d.mark_started(pid, self.clock(), time.time())
        d.pid = None
        d.launcher_pid = pid
        st = self.os.stat(pid)
        d.launch_exit = None
        d.launch = Launch(
            pid,
            st.starttime if st else int((self.os.boot_seconds() - 1) * proc.CLK_TCK),
            log_offset,
            d.line_seq,
        )
        if d.state != State.STARTING:
            d.set_state(State.STARTING)
        self.children[pid] = functools.partial(self._launcher_exited, d, pid)
        if d.spec.daemonize:
            try:
                if os.path.islink(d.spec.pidfile):
                    raise OSError(errno.ELOOP, "it is a symbolic link; refused")
                pidfile.write_pidfile(d.spec.pidfile, pid)
            except OSError as exc:
                reason = f"cannot write pidfile {d.spec.pidfile}: {error_text(exc)}"
                log.error("daemon %r: %s; stopping the process", d.name, reason)
                self.children[pid] = functools.partial(self._pidfile_write_failed, d, pid, reason)
                self.kill_pid(pid, signal.SIGKILL)
                return
            d.launcher_pid = None
            self.children.pop(pid, None)
            self._watch(d, pid, adopted=False)
            log.info("daemon %r started (pid %d, pidfile %s written)", d.name, pid, d.spec.pidfile)
            self.now_running(d)
            return
        log.info("daemon %r launched (pid %d); waiting for pidfile %s", d.name, pid, d.spec.pidfile)
        deadline = self.clock() + d.spec.start_timeout
        self._poll_pidfile(d, deadline, 0.005)

    def _ensure_pidfile_dir(self, d: Daemon) -> bool:
        """Create a missing pidfile directory (owned by the daemon's user, who writes the pidfile
        unless the daemon is smart2), or fail the start saying why."""
        assert d.spec.pidfile is not None
        directory = os.path.dirname(d.spec.pidfile) or "."
        if os.path.isdir(directory):
            return True
        try:
            os.makedirs(directory, mode=0o755)
            creds = None if d.spec.daemonize else self.credentials(d.spec)
            if creds is not None and self.os.geteuid() == 0:
                os.chown(directory, creds.uid, creds.gid)
        except FileExistsError:
            if os.path.isdir(directory):
                return True  # made meanwhile
            self.spawn_failed(d, f"cannot create the pidfile's directory {directory}: it is not a directory")
            return False
        except (OSError, KeyError) as exc:
            self.spawn_failed(d, f"cannot create the pidfile's directory {directory}: {error_text(exc)}")
            return False
        log.info("daemon %r: created directory %s for its pidfile", d.name, directory)
        return True

    def _poll_pidfile(self, d: Daemon, deadline: float, interval: float) -> None:
        if d.launcher_pid is None and d.pid is not None:
            return
        if d.state != State.STARTING:
            return
        if self._adopt_from_pidfile(d, initial=False):
            return
        if self.clock() >= deadline:
            self._pidfile_timeout(d)
            return
        nxt = min(interval * 2, 0.2)
        self.set_timer(d, interval, lambda: self._poll_pidfile(d, deadline, nxt))

    def _pidfile_timeout(self, d: Daemon) -> None:
        launcher = d.launcher_pid
        if launcher is not None and self.os.is_alive(launcher):
            d.error = (
                f"no valid pidfile {d.spec.pidfile} after {d.spec.start_timeout:g}s while the command "
                "stays in the foreground; declare daemonize: true (smart2) to have the supervisor "
                "write the pidfile"
            )
            log.error("daemon %r: %s; stopping it as a failed start", d.name, d.error)
            self.stop(d, then=lambda: self._after_failed_start(d))
            return
        left = launches.leftovers(d, procs=self.os)
        if left:  # never launch again while a process of this launch lives
            d.error = (
                f"no valid pidfile {d.spec.pidfile} after {d.spec.start_timeout:g}s; its command left "
                f"pid(s) {', '.join(map(str, left))} running{self._output(d)}"
            )
            log.error("daemon %r: %s; stopping them as a failed start", d.name, d.error)
            self.stop(d, then=lambda: self._after_failed_start(d))
            return
        d.error = f"no valid pidfile {d.spec.pidfile} after {d.spec.start_timeout:g}s{self._output(d)}"
        log.error("daemon %r: %s", d.name, d.error)
        decision = d.decide_after_exit(ExitStatus(None, None, time.time()), self.clock(), stopping=False)
        d.tell(decision)
        self.settle(d, decision.state, decision.delay, d.error)

    def _after_failed_start(self, d: Daemon) -> None:
        error = d.error
        decision = d.decide_after_exit(ExitStatus(None, None, time.time()), self.clock(), stopping=False)
        d.tell(decision)
        d.error = error
        self.settle(d, decision.state, decision.delay, "failed to start")

    def _adopt_from_pidfile(self, d: Daemon, *, initial: bool) -> bool:
        """Adopt the pid the pidfile names if it is the daemon; True when adopted."""
        spec = d.spec
        assert spec.pidfile is not None
        read = pidfile.read_pidfile(spec.pidfile)
        if read.pid is None:
            if initial and read.reason != "pidfile does not exist":
                log.warning("daemon %r: %s (%s); starting it", d.name, read.reason, spec.pidfile)
            return False
        why = pidfile.verify(
            read.pid,
            programs=self._programs(spec),
            mtime=read.mtime,
            file_uid=read.file_uid,
            ours=self._known_smart(spec.pidfile, read.pid)
            or (not initial and launches.from_launch(d, read.pid, procs=self.os)),
            mark=pidfile.marker(spec.pidfile),
            as_root_uid=self._daemon_uid(spec) if self.os.geteuid() == 0 else None,
            procs=self.os,
        )
        if why is not None:
            if initial or d.launcher_pid is None:
                log.warning(
                    "daemon %r: pidfile %s names pid %d, which is not the daemon: %s; "
                    "starting the daemon instead",
                    d.name,
                    spec.pidfile,
                    read.pid,
                    why,
                )
            return False
        owner = self.os.owner_uid(read.pid)
        euid = self.os.geteuid()
        if owner is not None and owner not in (euid, 0) and euid != 0:
            expected = resolve_credentials(spec.user, spec.group)
            if expected is None or expected.uid != owner:
                d.error = f"pid {read.pid} from {spec.pidfile} is owned by uid {owner}"
                d.set_state(State.FATAL, d.error)
                return True
        launcher = d.launcher_pid
        adopted = launcher is None or launcher != read.pid
        if launcher is not None and launcher == read.pid:
            self.children.pop(launcher, None)  # watched by pidfd from now on
        d.launcher_pid = None
        if initial:
            d.started_mono = self.clock()
            st = self.os.stat(read.pid)
            d.started_at = st.started_at if st is not None else time.time()
        self._watch(d, read.pid, adopted=adopted and initial)
        if initial:
            log.info("daemon %r adopted (pid %d from %s)", d.name, read.pid, spec.pidfile)
        else:
            log.info("daemon %r started (pid %d from %s)", d.name, read.pid, spec.pidfile)
        self.now_running(d)
        return True

    def _known_smart(self, path: str, pid: int) -> bool:
        """Whether ``pid`` is the daemon a launch of ours produced for pidfile ``path`` (same pid,
        same start time), recorded when it was adopted: known whatever it runs and as whom."""
        known = self.smart_known.get(os.path.realpath(path))
        st = self.os.stat(pid) if known is not None else None
        return known is not None and st is not None and known == (pid, st.starttime)

    def _daemon_uid(self, spec: DaemonSpec) -> int:
        """The uid the daemon runs as: its user (or the server's), else ours."""
        try:
            creds = self.credentials(spec)
        except (KeyError, OSError):
            return self.os.geteuid()
        return creds.uid if creds is not None else self.os.geteuid()

    def _programs(self, spec: DaemonSpec) -> tuple[str, ...]:
        names = [spec.program]
        if spec.shell and spec.process_name is None:
            # /bin/sh -c "exec prog …": the program is the first word after exec.
            words = spec.command[-1].split()
            if len(words) > 1:
                names = [words[1]]
        resolved = []
        for name in names:
            try:
                resolved.append(resolve_program(name, self.env.get("PATH")))
            except SpawnError:
                pass
            resolved.append(name)
        return tuple(resolved)

    def _watch(self, d: Daemon, pid: int, *, adopted: bool) -> None:
        self.unwatch(d)
        fd = self.os.pidfd_open(pid)
        d.pid = pid
        d.adopted = adopted
        st = self.os.stat(pid)
        d.pgid = st.pgid if st is not None else None
        if st is not None and d.spec.pidfile is not None:  # verified: remembered by the state file
            self.smart_known[os.path.realpath(d.spec.pidfile)] = (pid, st.starttime)
            self.save_state()
        if fd is None:
            self.timers.call_later(0.0, lambda: self._smart_died(d, pid))
            return
        d.runtime.pidfd = fd
        self.selector.register(fd, selectors.EVENT_READ, lambda _m: self._smart_died(d, pid))

    def unwatch(self, d: Daemon) -> None:
        fd = d.runtime.take_pidfd()
        if fd is not None:
            self.selector.unregister(fd)
            self.os.close(fd)

    def _pidfile_write_failed(self, d: Daemon, pid: int, reason: str, status: ExitStatus) -> None:
        if d.launcher_pid != pid:
            return
        decision = d.decide_after_exit(status, self.clock(), stopping=d.stopping)
        d.tell(decision)
        d.error = reason
        if d.stopping:
            self.stop_done(d)
            return
        self.settle(d, decision.state, decision.delay, "could not be started")

    def _launcher_exited(self, d: Daemon, pid: int, status: ExitStatus) -> None:
        if d.launcher_pid != pid:
            return
        if d.stopping:
            d.launcher_pid = None
            self.stop_progress(d)
            return
        d.launch_exit = status
        if status.success and d.state == State.STARTING:
            return  # a daemonizing command: its child writes the pidfile; keep polling
        if self._adopt_from_pidfile(d, initial=False):
            return
        d.error = f"command {status.describe()} before writing a valid pidfile{self._output(d, ended=False)}"
        log.error("daemon %r: %s", d.name, d.error)
        d.runtime.cancel_timer()
        d.launcher_pid = None
        if launches.leftovers(d, procs=self.os):  # what it started is ours: ended before any relaunch
            self.stop(d, then=lambda: self._after_failed_start(d))
            return
        decision = d.decide_after_exit(status, self.clock(), stopping=False)
        d.tell(decision)
        self.settle(d, decision.state, decision.delay, d.error)

    def _smart_died(self, d: Daemon, pid: int) -> None:
        if d.pid != pid:
            return
        self.unwatch(d)
        status = self.exit_status.pop(pid, None) or ExitStatus(None, None, time.time())
        if d.stopping:
            d.pid = None
            self.stop_done(d)
            return
        # A daemon that re-executed itself (hot upgrade) is followed, not restarted.
        if d.spec.pidfile is not None and not d.spec.daemonize:
            read = pidfile.read_pidfile(d.spec.pidfile)
            if read.pid is not None and read.pid != pid:
                why = pidfile.verify(
                    read.pid,
                    programs=self._programs(d.spec),
                    mtime=read.mtime,
                    file_uid=read.file_uid,
                    mark=pidfile.marker(d.spec.pidfile),
                    procs=self.os,
                )
                if why is None:
                    log.info("daemon %r now runs as pid %d (was %d); following it", d.name, read.pid, pid)
                    self._watch(d, read.pid, adopted=True)
                    return
        if d.spec.daemonize and d.spec.pidfile is not None:
            pidfile.remove_if_names(d.spec.pidfile, pid)
        d.pid = None
        # Never launch again while a process of the previous launch lives. Two syscalls tell
        # whether any may (its group, or the launch's session group, still has a member); only
        # then is /proc scanned.
        groups = {g for g in (d.pgid, d.launch.pid if d.launch else None) if g is not None}
        left = launches.leftovers(d, procs=self.os) if any(self.os.group_exists(g) for g in groups) else []
        if left:
            log.info(
                "daemon %r (pid %d) %s; its launch left pid(s) %s: stopping them first",
                d.name,
                pid,
                status.describe(),
                ", ".join(map(str, left)),
            )
            self.stop(d, then=functools.partial(self._after_death, d, pid, status))
            return
        self._after_death(d, pid, status)

    def _after_death(self, d: Daemon, pid: int, status: ExitStatus) -> None:
        decision = d.decide_after_exit(status, self.clock(), stopping=False)
        d.tell(decision)
        self.settle(d, decision.state, decision.delay, f"(pid {pid}) {status.describe()}")
