"""Validated daemon declarations: the frozen DaemonSpec and the errors bad input raises.

Declarations come from Django settings, Flask config, ``gunicorn.conf.py`` or a TOML file; every
host turns them into ``DaemonSpec`` objects with
:func:`~attachdaemon_core.spec.declarations.parse_declarations`
before anything starts. Specs cross the control socket as plain JSON (:meth:`DaemonSpec.to_wire`).
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["attached", "smart", "smart2"]
OnReload = Literal["restart", "signal", "keep"]
RestartPolicy = Literal["always", "on-failure", "never"]

MIB = 1024 * 1024

# Keys that change what the process *is*: a reload that changes one of them restarts the daemon.
IDENTITY_KEYS = (
    "command",
    "env",
    "env_clear",
    "env_keep",
    "cwd",
    "user",
    "group",
    "umask",
    "stdin",
    "pidfile",
    "daemonize",
    "log",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a declaration; ``daemon`` and ``key`` say where."""

    message: str
    daemon: str | None = None
    key: str | None = None
    hint: str | None = None
    code: str = "E001"  # stable id; Django's system checks show it as attachdaemon.<code>

    def __str__(self) -> str:
        where = []
        if self.daemon is not None:
            where.append(f"daemon {self.daemon!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(ValueError):
    """Raised with every problem found in a set of declarations at once."""

    def __init__(self, problems: list[Problem], source: str = "ATTACH_DAEMONS") -> None:
        self.problems = list(problems)
        self.source = source
        lines = [f"invalid daemon declarations in {source}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True, kw_only=True)
class ReadyProbe:
    """How to tell a daemon is ready: exactly one of tcp, http, command, postgres."""

    tcp: tuple[str, int] | None = None
    http: str | None = None
    command: tuple[str, ...] | None = None
    postgres: bool = False

    def describe(self) -> str:
        if self.tcp is not None:
            return f"tcp {self.tcp[0]}:{self.tcp[1]}"
        if self.http is not None:
            return f"http {self.http}"
        if self.command is not None:
            return "command " + " ".join(self.command)
        return "postgres postmaster.pid"


@dataclass(frozen=True, kw_only=True)
class LeaderSpec:
    """Run only on the host holding ``lock`` in ``backend`` (docs/declarations.md, "leader")."""

    lock: str
    backend: str = "file"
    lease: float = 15.0
    renew: float = 3.0
    on_lead: tuple[str, ...] = ()  # run when this host gains the lock (uWSGI's lord hook)
    on_unlead: tuple[str, ...] = ()  # run after the daemon was stopped on losing it (unlord)


@dataclass(frozen=True, kw_only=True)
class DaemonSpec:
    """One validated daemon declaration. Paths are absolute; signals are numbers."""

    name: str
    command: tuple[str, ...]
    pidfile: str | None = None
    daemonize: bool = False
    start_timeout: float = 10.0
    process_name: str | None = None
    control: bool = False
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: float = 10.0
    on_reload: OnReload = "restart"
    reload_signal: int = int(signal.SIGHUP)
    reload_stop_signal: int | None = None  # uWSGI reloadsignal=N: stop with N when reloading
    touch: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    env_clear: bool = False  # start from a minimal environment, not the master's
    env_keep: tuple[str, ...] = ()  # with env_clear: the master's variables passed through
    cwd: str | None = None
    user: str | None = None
    group: str | None = None
    umask: int | None = None
    stdin: bool = False
    log: str = "prefix"  # "prefix", "raw", "runtime" (<runtime>/logs/NAME.log) or an absolute path
    log_max_bytes: int = 10 * MIB
    log_backups: int = 5
    restart: RestartPolicy = "always"
    max_retries: int | None = None
    min_uptime: float = 1.0
    max_backoff: float = 30.0
    ready: ReadyProbe | None = None
    ready_timeout: float = 60.0
    depends_on: tuple[str, ...] = ()
    autostart: bool = True
    leader: LeaderSpec | None = None
    schedule: str | None = None  # a job: runs at these times (docs/declarations.md, "Jobs")
    unique: bool = False  # a job: skip a run while the previous one still runs
    timeout: float | None = None  # a job: a run is stopped after this long (uWSGI's harakiri)
    timezone: str | None = None  # a job: the schedule's time zone (None: the server's local time)
    shell: bool = False  # command is ["/bin/sh", "-c", "exec …"] made from a uWSGI line
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> Kind:
        if self.pidfile is None:
            return "attached"
        return "smart2" if self.daemonize else "smart"

    @property
    def program(self) -> str:
        """The program a smart pidfile must name: ``process_name`` or the command's program."""
        return self.process_name or self.command[0]

    def identity(self) -> tuple[Any, ...]:
        """What the process is; a reload that changes this restarts the daemon."""
        return tuple(getattr(self, k) for k in IDENTITY_KEYS)

    def to_wire(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_wire` turns back into an equal spec."""
        data = dataclasses.asdict(self)
        data.pop("extra", None)
        return data

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> DaemonSpec:
        d = dict(data)
        for key in ("command", "touch", "depends_on", "env_keep"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        d["env"] = tuple((str(k), str(v)) for k, v in d.get("env") or ())
        if d.get("ready") is not None:
            r = dict(d["ready"])
            if r.get("tcp") is not None:
                r["tcp"] = (str(r["tcp"][0]), int(r["tcp"][1]))
            if r.get("command") is not None:
                r["command"] = tuple(r["command"])
            d["ready"] = ReadyProbe(**r)
        if d.get("leader") is not None:
            lead = dict(d["leader"])
            for key in ("on_lead", "on_unlead"):
                lead[key] = tuple(lead.get(key) or ())
            d["leader"] = LeaderSpec(**lead)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
