"""Declarations read by a short-lived child process, so a gunicorn master never imports the app.

The master runs ``python -m <module> [--path DIR]…``; the child loads Django settings or a Flask
app, and writes one JSON answer to a pipe whose fd it finds in ``ATTACHDAEMON_INTERNAL_READER_FD``.
The answer never travels through the exit status: the child always ends with status 0 (gunicorn
before 26.1 halts when any of its children exits 3 or 4), and a child that dies without answering
is reported with what it wrote to stderr.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Problem

READER_FD_ENV = "ATTACHDAEMON_INTERNAL_READER_FD"
READ_TIMEOUT = 60.0


class ReaderFailed(Exception):
    """The child could not read the declarations (import error, crash, timeout); says why."""


@dataclass(frozen=True)
class Declared:
    """What a host declares: specs, the runtime-dir key and the settings that go with them."""

    specs: tuple[DaemonSpec, ...]
    key: str
    source: str
    runtime_dir: str | None = None  # an explicit override (setting), else derived from key
    wait_ready: float = 0.0
    env: dict[str, str] | None = None  # the declaring process's environment; None = ours
    warnings: tuple[Problem, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "specs": [s.to_wire() for s in self.specs],
            "key": self.key,
            "source": self.source,
            "runtime_dir": self.runtime_dir,
            "wait_ready": self.wait_ready,
            "env": self.env,
            "warnings": [_problem_json(p) for p in self.warnings],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Declared:
        return cls(
            specs=tuple(DaemonSpec.from_wire(s) for s in data["specs"]),
            key=str(data["key"]),
            source=str(data["source"]),
            runtime_dir=data.get("runtime_dir"),
            wait_ready=float(data.get("wait_ready") or 0.0),
            env=data.get("env"),
            warnings=tuple(Problem(**p) for p in data.get("warnings", [])),
        )


def _problem_json(p: Problem) -> dict[str, Any]:
    return {"message": p.message, "daemon": p.daemon, "key": p.key, "hint": p.hint, "code": p.code}


# ---------------------------------------------------------------------- the host side
def read_in_child(
    module: str,
    *,
    paths: Sequence[str] = (),
    args: Sequence[str] = (),
    cwd: str | None = None,
    timeout: float = READ_TIMEOUT,
) -> Declared:
    """Run ``python -m module`` and return what it declares; raise ConfigError or ReaderFailed."""
    r, w = os.pipe()
    env = dict(os.environ)
    env[READER_FD_ENV] = str(w)
    argv = [sys.executable, "-m", module, *args]
    for p in paths:
        argv += ["--path", p]
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(w,),
            cwd=cwd,
            env=env,
        )
    except OSError as exc:
        os.close(r)
        os.close(w)
        raise ReaderFailed(f"cannot start {' '.join(argv)}: {exc.strerror}") from None
    os.close(w)
    try:
        answer, stderr = _collect(child, r, timeout)
    finally:
        os.close(r)
        _finish(child)
    if not answer:
        tail = stderr.decode("utf-8", "replace").strip()[-4000:]
        raise ReaderFailed(
            f"reading the declarations with `python -m {module}` gave no answer"
            + (f"; its output:\n{tail}" if tail else "")
        )
    data = json.loads(answer)
    if data.get("config_error"):
        err = data["config_error"]
        raise ConfigError([Problem(**p) for p in err["problems"]], err["source"])
    if data.get("error"):
        raise ReaderFailed(str(data["error"]))
    return Declared.from_json(data["declared"])


def _collect(child: subprocess.Popen[bytes], r: int, timeout: float) -> tuple[bytes, bytes]:
    """Read the answer pipe and the child's stderr until both close, or the deadline."""
    assert child.stderr is not None
    err_fd = child.stderr.fileno()
    chunks: dict[int, bytearray] = {r: bytearray(), err_fd: bytearray()}
    open_fds = {r, err_fd}
    end = time.monotonic() + timeout
    while open_fds:
        left = end - time.monotonic()
        if left <= 0:
            child.kill()
            raise ReaderFailed(f"reading the declarations took more than {timeout:g}s; gave up")
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd] += data
                if fd == err_fd:
                    # the app may print to stderr: keep it visible, as the master's own output
                    sys.stderr.buffer.write(data)
                    sys.stderr.flush()
            else:
                open_fds.discard(fd)
    return bytes(chunks[r]), bytes(chunks[err_fd])


def _finish(child: subprocess.Popen[bytes]) -> None:
    if child.stderr is not None:
        child.stderr.close()
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        try:
            child.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
    except ChildProcessError:
        pass  # the host's reaper (gunicorn's waitpid(-1)) collected it first


# ---------------------------------------------------------------------- the child side
def child_main(produce: Callable[[list[str]], Declared], argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of a reader child: answer on the pipe, then exit 0 whatever happened."""
    argv = list(sys.argv[1:] if argv is None else argv)
    paths: list[str] = []
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--path":
            paths.append(next(it, ""))
        else:
            rest.append(a)
    for p in reversed(paths):
        if p and p not in sys.path:
            sys.path.insert(0, p)
    answer: dict[str, Any]
    try:
        answer = {"declared": produce(rest).to_json()}
    except ConfigError as exc:
        answer = {
            "config_error": {"source": exc.source, "problems": [_problem_json(p) for p in exc.problems]}
        }
    except BaseException as exc:  # an import error, a SystemExit from the app: all are answers
        answer = {"error": _describe(exc)}
    fd = int(os.environ.get(READER_FD_ENV, "-1"))
    data = json.dumps(answer).encode()
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the app called sys.exit({exc.code!r}) while being loaded"
    return "loading the app failed:\n" + "".join(traceback.format_exception(exc)).rstrip()


def in_reader_child() -> bool:
    """True in a reader child: importing the app there must start nothing."""
    return READER_FD_ENV in os.environ
