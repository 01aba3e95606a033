"""Plays the supervisor for one contender: spawns the holder, starts the daemon on "acquired".

Usage: fake_supervisor.py CONFIG_JSON. Every holder event and every action is appended to
``config["events"]`` as JSON lines with the monotonic time ``t``. The backend reaches the
holder through ``ATTACHDAEMON_INTERNAL_LEADER_BACKEND``. On "lost" it does NOT stop the daemon
(the holder must); it only reaps it and sends "stopped". SIGUSR1: graceful handover (stop the
daemon, reap, "stopped", then "release"). SIGTERM: stop everything and exit.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from attachdaemon_core.osproc import proc

cfg = json.loads(sys.argv[1])
events = os.open(cfg["events"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def log(**fields: object) -> None:
    os.write(events, (json.dumps({"t": time.monotonic(), "who": cfg["label"], **fields}) + "\n").encode())


env = dict(os.environ, ATTACHDAEMON_INTERNAL_LEADER_BACKEND=cfg["backend"])
holder = subprocess.Popen(
    [
        sys.executable,
        "-m",
        "attachdaemon_core.leader",
        "hold",
        "--name",
        cfg["name"],
        "--lease",
        str(cfg["lease"]),
        "--renew",
        str(cfg["renew"]),
        "--stop-timeout",
        str(cfg["stop_timeout"]),
        "--margin",
        str(cfg["margin"]),
        "--info",
        json.dumps({"label": cfg["label"]}),
    ],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    env=env,
    cwd=str(Path(__file__).resolve().parents[2]),
    start_new_session=True,
)
assert holder.stdin is not None and holder.stdout is not None
log(holder_pid=holder.pid, supervisor_pid=os.getpid())

daemon: subprocess.Popen[bytes] | None = None
count = 0
handover = False


def send(cmd: dict[str, object]) -> None:
    assert holder.stdin is not None
    try:
        holder.stdin.write((json.dumps(cmd) + "\n").encode())
        holder.stdin.flush()
    except BrokenPipeError:
        log(note="holder stdin closed")


def start_daemon(token: object) -> None:
    global daemon, count
    count += 1
    label = f"{cfg['label']}-{count}"
    denv = dict(os.environ, ATTACHDAEMON_LEADER_TOKEN=str(token))
    denv.pop("ATTACHDAEMON_INTERNAL_LEADER_BACKEND", None)
    daemon = subprocess.Popen(
        [sys.executable, cfg["daemon"], cfg["beats"], label], start_new_session=True, env=denv
    )
    st = proc.stat(daemon.pid)
    starttime = st.starttime if st else 0
    send({"cmd": "session", "sid": daemon.pid, "starttime": starttime, "stop_signal": 15})
    log(spawned=daemon.pid, daemon_label=label)


def reap() -> bool:
    global daemon
    if daemon is not None and daemon.poll() is not None:
        log(reaped=daemon.pid, status=daemon.returncode)
        send({"cmd": "stopped", "sid": daemon.pid})
        daemon = None
        return True
    return False


rfd, wfd = os.pipe()
os.set_blocking(wfd, False)
signal.set_wakeup_fd(wfd)
signal.signal(signal.SIGUSR1, lambda *_: None)
signal.signal(signal.SIGTERM, lambda *_: None)
sel = selectors.DefaultSelector()
sel.register(holder.stdout, selectors.EVENT_READ, "holder")
sel.register(rfd, selectors.EVENT_READ, "signal")
buf = b""
stopping = False
while True:
    for key, _ in sel.select(0.02):
        if key.data == "signal":
            sigs = os.read(rfd, 64)
            if signal.SIGTERM in sigs:
                stopping = True
            if signal.SIGUSR1 in sigs and daemon is not None:
                log(note="graceful handover")
                daemon.terminate()
                daemon.wait()
                log(reaped=daemon.pid, status=daemon.returncode)
                send({"cmd": "stopped", "sid": daemon.pid})
                daemon = None
                send({"cmd": "release", "follow": True, "hold_off": cfg["lease"]})
        else:
            data = os.read(holder.stdout.fileno(), 65536)
            if not data:
                log(holder_eof=True)
                sel.unregister(holder.stdout)
                continue
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                log(**msg)
                if msg.get("event") == "acquired":
                    start_daemon(msg.get("token"))
    reap()
    if stopping:
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        holder.stdin.close()
        try:
            holder.wait(10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        holder.stdout.close()
        log(exited=True)
        sys.exit(0)
