"""Smart and smart2 daemons: pidfiles adopted only after identity checks, launched commands followed
until their pidfile names the daemon, deaths seen through pidfds, a re-executed daemon followed
rather than restarted, and a per-user lock on each pidfile path (docs/events.md, docs/process-model.md).

Part of the supervisor (:class:`~attachdaemon_core.supervisor.Supervisor` inherits it); runs in
its loop and shares its state.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
import selectors
import signal
import time

from . import logs, pidfile, proc
from .daemon import Daemon, ExitStatus, Launch
from .messages import error_text
from .parts import SupervisorParts
from .paths import RuntimeDirError, private_subdir, short_digest
from .spawn import SpawnError, resolve_credentials, resolve_program
from .spec import DaemonSpec
from .states import State

log = logging.getLogger("attachdaemon")


class SmartDaemons(SupervisorParts):
    """The supervisor's handling of pidfile-governed daemons."""

    def _lock_pidfile(self, d: Daemon) -> bool:
        """Hold a per-user lock on the smart daemon's pidfile path, so two supervisors never
        manage one smart daemon. False (and the daemon fatal) when another supervisor has it."""
        if d.spec.pidfile is None or d.name in self.pid_locks:
            return True
        real = os.path.realpath(d.spec.pidfile)
        digest = short_digest(real)
        try:
            lock_dir = private_subdir("pidlocks")
            fd = os.open(
                os.path.join(lock_dir, f"{digest}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except (OSError, RuntimeDirError) as exc:
            log.warning("daemon %r: cannot lock pidfile path (%s); going on", d.name, error_text(exc))
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            d.error = f"pidfile {real} is managed by another supervisor"
            log.error("daemon %r: %s; not starting it", d.name, d.error)
            if d.state != State.FATAL:
                d.set_state(State.FATAL, d.error)
            return False
        self.pid_locks[d.name] = fd
        return True

    def _unlock_pidfile(self, d: Daemon) -> None:
        fd = self.pid_locks.pop(d.name, None)
        if fd is not None:
            os.close(fd)

    # ------------------------------------------------------------------ smart daemons
    def _start_smart(self, d: Daemon) -> None:
        assert d.spec.pidfile is not None
        if self._adopt_from_pidfile(d, initial=True):
            return
        if not self._ensure_pidfile_dir(d):
            return
        log_offset = logs.file_size(self.log_path(d.spec)) if d.spec.log not in ("prefix", "raw") else 0
        pid = self._spawn(d, attached=False)
        if pid is None:
            return
        d.mark_started(pid, self.clock(), time.time())
        d.pid = None
        d.launcher_pid = pid
        st = proc.stat(pid)
        d.launch_exit = None
        d.launch = Launch(
            pid,
            st.starttime if st else int((proc.boot_seconds() - 1) * proc.CLK_TCK),
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
                self._kill_pid(pid, signal.SIGKILL)
                return
            d.launcher_pid = None
            self.children.pop(pid, None)
            self._watch(d, pid, adopted=False)
            log.info("daemon %r started (pid %d, pidfile %s written)", d.name, pid, d.spec.pidfile)
            self._now_running(d)
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
            creds = None if d.spec.daemonize else self._credentials(d.spec)
            if creds is not None and os.geteuid() == 0:
                os.chown(directory, creds.uid, creds.gid)
        except FileExistsError:
            if os.path.isdir(directory):
                return True  # made meanwhile
            self._spawn_failed(d, f"cannot create the pidfile's directory {directory}: it is not a directory")
            return False
        except (OSError, KeyError) as exc:
            self._spawn_failed(d, f"cannot create the pidfile's directory {directory}: {error_text(exc)}")
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
        self._set_daemon_timer(d, interval, lambda: self._poll_pidfile(d, deadline, nxt))

    def _pidfile_timeout(self, d: Daemon) -> None:
        launcher = d.launcher_pid
        if launcher is not None and proc.is_alive(launcher):
            d.error = (
                f"no valid pidfile {d.spec.pidfile} after {d.spec.start_timeout:g}s while the command "
                "stays in the foreground; declare daemonize: true (smart2) to have the supervisor "
                "write the pidfile"
            )
            log.error("daemon %r: %s; stopping it as a failed start", d.name, d.error)
            self.stop(d, then=lambda: self._after_failed_start(d))
            return
        left = self._launch_leftovers(d)
        if left:  # never launch again while a process of this launch lives
            d.error = (
                f"no valid pidfile {d.spec.pidfile} after {d.spec.start_timeout:g}s; its command left "
                f"pid(s) {', '.join(map(str, left))} running{self._launch_output(d)}"
            )
            log.error("daemon %r: %s; stopping them as a failed start", d.name, d.error)
            self.stop(d, then=lambda: self._after_failed_start(d))
            return
        d.error = f"no valid pidfile {d.spec.pidfile} after {d.spec.start_timeout:g}s{self._launch_output(d)}"
        log.error("daemon %r: %s", d.name, d.error)
        decision = d.decide_after_exit(ExitStatus(None, None, time.time()), self.clock(), stopping=False)
        self._settle(d, decision.state, decision.delay, d.error)

    def _after_failed_start(self, d: Daemon) -> None:
        error = d.error
        decision = d.decide_after_exit(ExitStatus(None, None, time.time()), self.clock(), stopping=False)
        d.error = error
        self._settle(d, decision.state, decision.delay, "failed to start")

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
            or (not initial and self._from_launch(d, read.pid)),
            mark=pidfile.marker(spec.pidfile),
            as_root_uid=self._daemon_uid(spec) if os.geteuid() == 0 else None,
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
        owner = proc.owner_uid(read.pid)
        if owner is not None and owner not in (os.geteuid(), 0) and os.geteuid() != 0:
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
            st = proc.stat(read.pid)
            d.started_at = st.started_at if st is not None else time.time()
        self._watch(d, read.pid, adopted=adopted and initial)
        if initial:
            log.info("daemon %r adopted (pid %d from %s)", d.name, read.pid, spec.pidfile)
        else:
            log.info("daemon %r started (pid %d from %s)", d.name, read.pid, spec.pidfile)
        self._now_running(d)
        return True

    def _known_smart(self, path: str, pid: int) -> bool:
        """Whether ``pid`` is the daemon a launch of ours produced for pidfile ``path`` (same pid,
        same start time), recorded when it was adopted: known whatever it runs and as whom."""
        known = self.smart_known.get(os.path.realpath(path))
        st = proc.stat(pid) if known is not None else None
        return known is not None and st is not None and known == (pid, st.starttime)

    def _daemon_uid(self, spec: DaemonSpec) -> int:
        """The uid the daemon runs as: its user (or the server's), else ours."""
        try:
            creds = self._credentials(spec)
        except (KeyError, OSError):
            return os.geteuid()
        return creds.uid if creds is not None else os.geteuid()

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
        self._unwatch(d)
        fd = proc.pidfd_open(pid)
        d.pid = pid
        d.adopted = adopted
        st = proc.stat(pid)
        d.pgid = st.pgid if st is not None else None
        if st is not None and d.spec.pidfile is not None:  # verified: remembered by the state file
            self.smart_known[os.path.realpath(d.spec.pidfile)] = (pid, st.starttime)
            self.save_state()
        if fd is None:
            self.timers.call_later(0.0, lambda: self._smart_died(d, pid))
            return
        self.pidfds[d.name] = fd
        self.selector.register(fd, selectors.EVENT_READ, lambda _m: self._smart_died(d, pid))

    def _unwatch(self, d: Daemon) -> None:
        fd = self.pidfds.pop(d.name, None)
        if fd is not None:
            self.selector.unregister(fd)
            os.close(fd)

    def _pidfile_write_failed(self, d: Daemon, pid: int, reason: str, status: ExitStatus) -> None:
        if d.launcher_pid != pid:
            return
        decision = d.decide_after_exit(status, self.clock(), stopping=d.name in self.stops)
        d.error = reason
        if d.name in self.stops:
            self._stop_done(d)
            return
        self._settle(d, decision.state, decision.delay, "could not be started")

    def _launcher_exited(self, d: Daemon, pid: int, status: ExitStatus) -> None:
        if d.launcher_pid != pid:
            return
        if d.name in self.stops:
            d.launcher_pid = None
            self._stop_progress(d)
            return
        d.launch_exit = status
        if status.success and d.state == State.STARTING:
            return  # a daemonizing command: its child writes the pidfile; keep polling
        if self._adopt_from_pidfile(d, initial=False):
            return
        d.error = (
            f"command {status.describe()} before writing a valid pidfile{self._launch_output(d, ended=False)}"
        )
        log.error("daemon %r: %s", d.name, d.error)
        self._cancel_daemon_timer(d)
        d.launcher_pid = None
        if self._launch_leftovers(d):  # what it started is ours: ended before any relaunch
            self.stop(d, then=lambda: self._after_failed_start(d))
            return
        decision = d.decide_after_exit(status, self.clock(), stopping=False)
        self._settle(d, decision.state, decision.delay, d.error)

    def _smart_died(self, d: Daemon, pid: int) -> None:
        if d.pid != pid:
            return
        self._unwatch(d)
        status = self.exit_status.pop(pid, None) or ExitStatus(None, None, time.time())
        if d.name in self.stops:
            d.pid = None
            self._stop_done(d)
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
        left = self._launch_leftovers(d) if any(proc.group_exists(g) for g in groups) else []
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
        self._settle(d, decision.state, decision.delay, f"(pid {pid}) {status.describe()}")

    def _launch_output(self, d: Daemon, *, ended: bool = True) -> str:
        """What the launch printed (before it detached, say), for the error of a failed start."""
        launch = d.launch
        if launch is None:
            return ""
        how = f"; its command {d.launch_exit.describe()}" if ended and d.launch_exit is not None else ""
        if d.spec.log == "raw":
            return how
        if d.spec.log == "prefix":
            new = d.line_seq - launch.line_seq
            lines = list(d.lines)[-new:][-5:] if new > 0 else []
        else:
            lines = logs.lines_since(self.log_path(d.spec), launch.log_offset)
        if not lines:
            return f"{how}; it printed nothing"
        return f"{how}; its last output: " + " | ".join(line.strip()[:200] for line in lines)

    # ------------------------------------------------------------------ what a launch produced
    def _from_launch(self, d: Daemon, pid: int) -> bool:
        """Whether our latest launch of ``d`` produced ``pid``: the launcher itself, a process of
        its session or below it, or one carrying the daemon's marker, started since the launch."""
        launch = d.launch
        if launch is None or d.spec.pidfile is None:
            return False
        st = proc.stat(pid)
        if st is None:
            return False
        if pid == launch.pid:
            return st.starttime == launch.starttime
        if st.starttime < launch.starttime:
            return False
        return (
            st.sid == launch.pid
            or proc.descends_from(pid, launch.pid)
            or proc.has_env(pid, pidfile.marker(d.spec.pidfile))
        )

    def _launch_leftovers(self, d: Daemon) -> list[int]:
        """The live processes our latest launch of ``d`` produced, other than its verified pid."""
        launch = d.launch
        if launch is None or d.spec.pidfile is None:
            return []
        mark = pidfile.marker(d.spec.pidfile)
        me = os.getpid()
        return [
            st.pid
            for st in proc.started_since(launch.starttime)
            if st.pid not in (me, d.pid) and (launch.pid in (st.sid, st.pid) or proc.has_env(st.pid, mark))
        ]
