"""The control verbs as commands: status, start, stop, restart, logs, events, metrics, check, run.

Shared by the ``attachdaemon`` console script, ``manage.py daemons`` and ``flask daemons``: each
host builds a :class:`Context` (where the supervisor lives, how to read the declarations) and
calls :func:`dispatch`. Runs in the user's shell process, never in the supervisor.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from attachdaemon_core.control import client, verbs
from attachdaemon_core.hosts import monitor, runtime
from attachdaemon_core.hosts import status as status_command
from attachdaemon_core.hosts.exits import EXIT_BAD, EXIT_OK, EXIT_USAGE, RESPAWN_WAIT, control_failed
from attachdaemon_core.hosts.status import STATUS_TIMEOUT
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Problem


@dataclass
class Context:
    """What a host knows: the runtime directory and how to (re)read its declarations."""

    runtime_dir: str
    load: Callable[[], tuple[DaemonSpec, ...]]
    source: str
    warnings: Callable[[tuple[DaemonSpec, ...]], list[Problem]] | None = None
    wait_ready: float = 0.0


def add_verbs(parser: argparse.ArgumentParser, options: argparse.ArgumentParser | None = None) -> None:
    """The verbs of :mod:`attachdaemon_core.control.verbs` as subcommands of ``parser``.
    ``options``: a parent parser (``add_help=False``) holding the global options again, with
    ``default=argparse.SUPPRESS``, so they are accepted after the verb too; an option given
    only before the verb keeps its value."""
    verbs.add_cli_verbs(parser, [options] if options is not None else [])


def dispatch(args: argparse.Namespace, ctx: Context, out: TextIO, err: TextIO) -> int:
    return _COMMANDS[args.verb](args, ctx, out, err)


def _run(args: argparse.Namespace, ctx: Context, _out: TextIO, err: TextIO) -> int:
    cmd = list(args.command or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return run(ctx, cmd, err)


def _by_name(args: argparse.Namespace, ctx: Context, out: TextIO, err: TextIO) -> int:
    """start, stop, restart."""
    verb = args.verb
    if not args.names and not args.all:
        err.write(f"{verb}: name at least one daemon, or --all\n")
        return EXIT_USAGE
    try:
        result = client.call(ctx.runtime_dir, verb, names=list(args.names), all=bool(args.all))
    except (client.NoSupervisor, client.ControlError) as exc:
        return control_failed(exc, verb, err)
    out.write(f"{verb}: {', '.join(result['daemons'])}\n")
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace, Context, TextIO, TextIO], int]] = {
    "check": lambda _args, ctx, out, err: check(ctx, out, err),
    "run": _run,
    "status": lambda args, ctx, out, err: status(ctx, out, err, as_json=args.json),
    "logs": lambda args, ctx, out, err: logs(ctx, args.name, args.lines, args.follow, out, err),
    "events": lambda args, ctx, out, err: monitor.events(ctx, args.after, args.follow, args.json, out, err),
    "metrics": lambda _args, ctx, out, err: monitor.metrics(ctx, out, err),
    "start": _by_name,
    "stop": _by_name,
    "restart": _by_name,
}


# ---------------------------------------------------------------------- check
def check(ctx: Context, out: TextIO, err: TextIO) -> int:
    try:
        specs = ctx.load()
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_BAD
    problems = ctx.warnings(specs) if ctx.warnings else []
    errors = [p for p in problems if p.code.startswith("E")]
    for p in problems:
        (err if p.code.startswith("E") else out).write(f"{p.code}: {p}\n")
    out.write(f"{len(specs)} daemon(s) declared in {ctx.source}: {'not ' if errors else ''}OK\n")
    return EXIT_BAD if errors else EXIT_OK


# ---------------------------------------------------------------------- status
def status(ctx: Context, out: TextIO, err: TextIO, *, as_json: bool) -> int:
    return status_command.command(ctx.runtime_dir, out, err, as_json=as_json)


# ---------------------------------------------------------------------- logs
def logs(ctx: Context, name: str, lines: int, follow: bool, out: TextIO, err: TextIO) -> int:
    try:
        result = client.call(ctx.runtime_dir, "logs", name=name, lines=lines)
    except (client.NoSupervisor, client.ControlError) as exc:
        return control_failed(exc, "logs", err)
    if result["mode"] == "raw":
        out.write(f"{result['note']}\n")
        return EXIT_OK
    if result.get("note"):
        err.write(f"logs: {result['note']}\n")
    for line in result["lines"]:
        out.write(line + "\n")
    out.flush()
    if not follow:
        return EXIT_OK
    return _follow(ctx, name, result, out)


def _follow(ctx: Context, name: str, result: dict[str, Any], out: TextIO) -> int:
    if result["mode"] == "file":
        path = result["path"]
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            try:
                while True:
                    chunk = f.read()
                    if chunk:
                        out.write(chunk.decode("utf-8", "replace"))
                        out.flush()
                    else:
                        time.sleep(0.2)
            except KeyboardInterrupt:
                return EXIT_OK
    seq = result["seq"]
    try:
        while True:
            time.sleep(0.2)
            try:
                more = client.call(ctx.runtime_dir, "logs", name=name, since=seq)
            except client.NoSupervisor:
                return EXIT_OK
            for line in more["lines"]:
                out.write(line + "\n")
            out.flush()
            seq = more["seq"]
    except KeyboardInterrupt:
        return EXIT_OK


# ---------------------------------------------------------------------- run
def run(ctx: Context, command: Sequence[str], err: TextIO) -> int:
    """Own the supervisor until INT/TERM (graceful stop) or, with a command, until it exits."""
    from attachdaemon_core.spec.host_settings import HostSettings, with_environment

    try:
        specs = ctx.load()
        wait = with_environment(HostSettings(wait_ready=ctx.wait_ready)).wait_ready
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_BAD
    me = os.getpid()
    decl = runtime.payload(specs, source=ctx.source)
    try:
        runtime.join(ctx.runtime_dir, me, decl)
    except (runtime.SupervisorUnavailable, runtime.RuntimeDirError, client.ControlError) as exc:
        err.write(f"attachdaemon: {exc}\n")
        return EXIT_BAD
    stop_wait = [_longest_stop(specs)]  # the longest stop_timeout declared, reloads included
    try:  # whatever happens from here on, we release: the supervisor must not keep us as owner
        if wait > 0:
            wait_ready(ctx.runtime_dir, wait, err, specs)
        child: subprocess.Popen[bytes] | None = None
        if command:
            try:
                # Its own process group: terminal signals reach us once, and we forward them.
                child = subprocess.Popen(list(command), preexec_fn=os.setpgrp)  # noqa: PLW1509 - no threads here
            except OSError as exc:
                err.write(f"attachdaemon run: cannot start {command[0]!r}: {exc.strerror}\n")
                return 127
        return _until_the_end(ctx, child, err, stop_wait)
    finally:
        _release(ctx, stop_wait[0])


def _until_the_end(
    ctx: Context, child: subprocess.Popen[bytes] | None, err: TextIO, stop_wait: list[float]
) -> int:
    """Serve signals until INT/TERM (no command) or the command's exit; HUP reloads. The exit
    status: 0, or the command's (128 + N when a signal N ended it)."""
    me = os.getpid()
    # Signals are taken synchronously (blocked, then waited for): no handler runs mid-call.
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    while True:
        if child is not None and child.poll() is not None:
            return child.returncode if child.returncode >= 0 else 128 - child.returncode
        if me == 1:
            _reap_orphans(child)
        signo = signal.sigwait(sigs)  # (not sigwaitinfo: macOS has none, and only the number is used)
        if signo == signal.SIGCHLD:
            continue
        if signo == signal.SIGHUP:
            stop_wait[0] = max(stop_wait[0], _reload_on_sighup(ctx, me, err))
        elif child is None:
            return EXIT_OK
        else:
            child.send_signal(signo)


def _reload_on_sighup(ctx: Context, me: int, err: TextIO) -> float:
    """Load the declarations again and send them as a reload; the longest stop time among them
    (0 when they are invalid: the reload is refused, nothing is sent)."""
    try:
        specs = ctx.load()
    except ConfigError as exc:
        err.write(f"attachdaemon: reload refused, the declarations are invalid:\n{exc}\n")
        return 0.0
    _send_reload(ctx, me, specs, err)
    return _longest_stop(specs)


def _send_reload(ctx: Context, me: int, specs: Sequence[DaemonSpec], err: TextIO) -> bool:
    """Send a reload; never raise. A supervisor that does not answer is being started again by
    its guard (within a second): wait for it up to RESPAWN_WAIT, then start one ourselves."""
    decl = runtime.payload(specs, source=ctx.source)
    end = time.monotonic() + RESPAWN_WAIT
    waited = False
    while True:
        try:
            client.call(ctx.runtime_dir, "reload", owner=runtime.owner_identity(me), declarations=decl)
        except client.NoSupervisor as exc:
            if not waited:
                err.write(f"attachdaemon: reload: {exc}; waiting up to {RESPAWN_WAIT:g}s for it to be back\n")
                waited = True
            if time.monotonic() >= end:
                break
            time.sleep(0.05)
            continue
        except client.ControlError as exc:
            err.write(f"attachdaemon: reload not sent: {exc}\n")
            return False
        if waited:
            err.write("attachdaemon: reload sent to the supervisor started again\n")
        return True
    try:  # the guard is gone too: start a supervisor, with us as its owner and these declarations
        runtime.join(ctx.runtime_dir, me, decl, announce="reload")
    except (runtime.SupervisorUnavailable, runtime.RuntimeDirError, client.ControlError) as exc:
        err.write(f"attachdaemon: reload not sent, no supervisor could be started: {exc}\n")
        return False
    err.write("attachdaemon: no supervisor came back; started a new one with the reloaded declarations\n")
    return True


def _longest_stop(specs: Sequence[DaemonSpec]) -> float:
    return max((s.stop_timeout for s in specs), default=0.0)


def _release(ctx: Context, longest_stop: float) -> None:
    runtime.release(ctx.runtime_dir, os.getpid(), wait=longest_stop + 1.0)


def _reap_orphans(child: subprocess.Popen[bytes] | None) -> None:
    """As PID 1 (a container), reap every orphan the kernel hands us."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if child is not None and pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)


def wait_ready(runtime_dir: str, timeout: float, err: TextIO, expected: Sequence[DaemonSpec] = ()) -> bool:
    """Hold until every daemon with a ready probe is ready and every one-shot has completed, at
    most ``timeout`` seconds; sooner when what is left cannot get there without a command (a
    failed one-shot, a fatal daemon, or one held by such a failure), saying why.

    ``expected``: the declarations just sent. One the supervisor does not list yet (its status
    answered before it applied them) counts as not ready, never as nothing to wait for.
    """
    names = [s.name for s in expected if s.autostart]
    end = time.monotonic() + timeout
    waiting: list[dict[str, Any]] | None = None  # None until the supervisor has answered once
    while True:  # at least one status call, even when a slow machine ate the whole bound
        try:
            result = client.call(runtime_dir, "status", timeout=STATUS_TIMEOUT)
        except (client.NoSupervisor, client.ControlError):
            pass
        else:
            listed = {d["name"] for d in result["daemons"]}
            waiting = [{"name": n} for n in names if n not in listed] + [
                d
                for d in result["daemons"]
                if d["ready"] is not True
                and d["state"] != "standby"
                and d.get("job") is None  # a job is never ready: its runs end
                and d.get("autostart", True)
                and not d.get("held")
            ]
            if not waiting:
                return True
            if all(_stuck(d) for d in waiting):
                what = "; ".join(f"{d['name']}: {_stuck(d)}" for d in waiting)
                err.write(f"attachdaemon: ATTACH_DAEMONS_WAIT_READY: {what}; going on\n")
                return False
        if time.monotonic() >= end:
            break
        time.sleep(0.05)
    what = ", ".join(d["name"] for d in waiting) if waiting is not None else "an answer from the supervisor"
    err.write(
        f"attachdaemon: ATTACH_DAEMONS_WAIT_READY: still waiting for {what} after {timeout:g}s; going on\n"
    )
    return False


def _stuck(d: dict[str, Any]) -> str | None:
    """Why a daemon of the status answer cannot become ready without a command, or None."""
    last = d.get("last_exit") or {}
    if d.get("oneshot") and d.get("state") in ("exited", "fatal"):
        code, sig = last.get("code"), last.get("signal")
        how = f"killed by signal {sig}" if sig else f"exit status {code}"
        return f"the one-shot failed ({how})"
    if d.get("state") == "fatal":
        return "fatal" + (f" ({d['error']})" if d.get("error") else "")
    failed = [w["why"] for w in d.get("waiting_on") or () if w.get("failed")]
    return "not starting: " + "; ".join(failed) if failed else None


def main_for(
    prog: str,
    argv: Sequence[str],
    ctx_factory: Callable[[argparse.Namespace], Context],
    configure: Callable[[argparse.ArgumentParser, bool], None] | None = None,
) -> int:
    """Parse ``argv`` and dispatch. ``configure(parser, with_defaults)`` adds the global options:
    once to the main parser with their defaults, once to the verbs' parent parser without
    (``default=argparse.SUPPRESS``), so ``-c FILE`` works before or after the verb."""
    parser = argparse.ArgumentParser(prog=prog)
    options = argparse.ArgumentParser(add_help=False)
    if configure is not None:
        configure(parser, True)
        configure(options, False)
    add_verbs(parser, options)
    args = parser.parse_args(list(argv))
    try:
        ctx = ctx_factory(args)
    except ConfigError as exc:
        if verbs.VERBS[args.verb].control:  # status, logs, start…: they need only the runtime dir
            raise
        sys.stderr.write(f"{exc}\n")
        return EXIT_BAD
    return dispatch(args, ctx, sys.stdout, sys.stderr)
