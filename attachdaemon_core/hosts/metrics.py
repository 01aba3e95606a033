"""Prometheus metrics of the daemons (docs/monitoring.md), rendered by ``prometheus_client``.

Built from the supervisor's ``metrics`` answer (its status, plus each daemon's process tree and
its own process read from /proc when asked). Served by ``attachdaemon metrics``, the Django view
and the Flask route (:func:`render`), and by a collector on ``prometheus_client``'s default
registry (:func:`register_default`), so an app that already exports ``/metrics``
(django-prometheus, prometheus-flask-exporter) shows them too, from every worker.

``prometheus_client`` is the ``[metrics]`` extra; without it :class:`MetricsUnavailable` says
which extra to install. Runs in the user's shell or a web worker, never in the supervisor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from attachdaemon_core.control import client
from attachdaemon_core.hosts.status import STATUS_TIMEOUT

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = [
    "INSTALL_HINT",
    "LEADER_ROLES",
    "STATES",
    "DaemonsCollector",
    "MetricsUnavailable",
    "families",
    "register_default",
    "render",
    "render_answer",
]

log = logging.getLogger("attachdaemon")

INSTALL_HINT = "pip install 'attachdaemon[metrics]' (it brings prometheus_client)"
# Every state of docs/status-json.md: attachdaemon_daemon_state has one series per state.
STATES = ("starting", "running", "backoff", "stopping", "stopped", "exited", "fatal", "standby", "scheduled")
LEADER_ROLES = ("leader", "follower", "unknown")
# On the default registry the app's own process_* are its worker's: ours get a prefix there.
DEFAULT_REGISTRY_PROCESS_PREFIX = "attachdaemon_supervisor_process"


class MetricsUnavailable(RuntimeError):
    """prometheus_client is not installed; the message names the extra that brings it."""


def _core() -> Any:
    try:
        from prometheus_client import core
    except ImportError:
        raise MetricsUnavailable(f"Prometheus metrics need prometheus_client: {INSTALL_HINT}") from None
    return core


def families(answer: dict[str, Any] | None, *, process_prefix: str = "process") -> list[Metric]:
    """The metric families of one ``metrics`` answer (None: no supervisor answered)."""
    core = _core()
    up = core.GaugeMetricFamily("attachdaemon_supervisor_up", "1 when the supervisor answered the scrape")
    up.add_metric([], 0.0 if answer is None else 1.0)
    if answer is None:
        return [up]
    daemons = answer["status"]["daemons"]
    usage = answer.get("usage") or {}
    return [
        up,
        *_daemon_families(core, daemons, usage),
        _leader_family(core, daemons),
        *_process_families(core, answer.get("process") or {}, process_prefix),
    ]


def _daemon_families(core: Any, daemons: list[dict[str, Any]], usage: dict[str, Any]) -> list[Metric]:
    g, c = core.GaugeMetricFamily, core.CounterMetricFamily
    up = g("attachdaemon_daemon_up", "1 when the daemon's process runs", labels=["daemon", "kind"])
    state = g("attachdaemon_daemon_state", "1 for the daemon's current state", labels=["daemon", "state"])
    ready = g("attachdaemon_daemon_ready", "1 when the daemon is ready", labels=["daemon"])
    restarts = c("attachdaemon_daemon_restarts", "restarts since the supervisor started", labels=["daemon"])
    started = g(
        "attachdaemon_daemon_start_time_seconds", "when the running process started", labels=["daemon"]
    )
    code = g(
        "attachdaemon_daemon_last_exit_code",
        "the last run's exit status (128 + N when signal N ended it)",
        labels=["daemon"],
    )
    rss = g(
        "attachdaemon_daemon_resident_memory_bytes",
        "resident memory of the daemon's process tree, read at scrape time",
        labels=["daemon"],
    )
    cpu = c(
        "attachdaemon_daemon_cpu_seconds",
        "user and system CPU time of the daemon's process tree, read at scrape time",
        labels=["daemon"],
    )
    for d in daemons:
        name = d["name"]
        up.add_metric([name, d["kind"]], 1.0 if d["state"] == "running" else 0.0)
        for s in STATES:
            state.add_metric([name, s], 1.0 if d["state"] == s else 0.0)
        ready.add_metric([name], 1.0 if d["ready"] else 0.0)
        restarts.add_metric([name], float(d["restarts"]))
        if d["started_at"] is not None:
            started.add_metric([name], float(d["started_at"]))
        last = d.get("last_exit")
        if last:
            sig = last.get("signal")
            code.add_metric([name], float(128 + sig if sig is not None else (last.get("code") or 0)))
        use = usage.get(name)
        if use is not None:
            rss.add_metric([name], float(use["rss_bytes"]))
            cpu.add_metric([name], float(use["cpu_seconds"]))
    return [up, state, ready, restarts, started, code, rss, cpu]


def _leader_family(core: Any, daemons: list[dict[str, Any]]) -> Metric:
    leader = core.GaugeMetricFamily(
        "attachdaemon_leader", "1 for this host's role on each leader lock", labels=["lock", "role"]
    )
    seen = set()
    for d in daemons:
        info = d.get("leader")
        if not info or info["lock"] in seen:
            continue
        seen.add(info["lock"])
        for role in LEADER_ROLES:
            leader.add_metric([info["lock"], role], 1.0 if info["role"] == role else 0.0)
    family: Metric = leader
    return family


def _process_families(core: Any, process: dict[str, float], prefix: str) -> list[Metric]:
    """The supervisor's own numbers, named as prometheus_client's ProcessCollector names them."""
    out: list[Metric] = []
    helps = {
        "cpu_seconds_total": "supervisor's user and system CPU time in seconds",
        "resident_memory_bytes": "supervisor's resident memory size in bytes",
        "virtual_memory_bytes": "supervisor's virtual memory size in bytes",
        "start_time_seconds": "supervisor's start time in seconds since the epoch",
        "open_fds": "supervisor's open file descriptors",
        "max_fds": "supervisor's maximum number of open file descriptors",
    }
    for key, help_text in helps.items():
        value = process.get(key)
        if value is None or value < 0:
            continue
        if key == "cpu_seconds_total":
            fam = core.CounterMetricFamily(f"{prefix}_cpu_seconds", help_text, value=value)
        else:
            fam = core.GaugeMetricFamily(f"{prefix}_{key}", help_text, value=value)
        out.append(fam)
    return out


class DaemonsCollector:
    """A prometheus_client collector asking the supervisor of ``runtime_dir`` at each collect
    (a callable: asked then, so settings are read lazily). It never raises: no supervisor, or
    settings that name none, give ``attachdaemon_supervisor_up 0``."""

    def __init__(self, runtime_dir: str | Callable[[], str], *, process_prefix: str = "process") -> None:
        _core()
        self.runtime_dir = runtime_dir
        self.process_prefix = process_prefix

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not call the supervisor (collect would)

    def collect(self) -> Iterator[Metric]:
        answer = None
        try:
            where = self.runtime_dir if isinstance(self.runtime_dir, str) else self.runtime_dir()
            answer = client.call(where, "metrics", timeout=STATUS_TIMEOUT)
        except Exception as exc:  # the app's whole /metrics must not fail for ours
            log.debug("metrics: no answer from the supervisor: %s", exc)
        yield from families(answer, process_prefix=self.process_prefix)


class _Answered:
    """A collector of one answer already in hand."""

    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer

    def collect(self) -> Iterator[Metric]:
        yield from families(self.answer)


def render_answer(answer: dict[str, Any] | None) -> tuple[bytes, str]:
    """The text exposition of one ``metrics`` answer (``process_*`` are the supervisor's) and
    its content type. Raises MetricsUnavailable without prometheus_client."""
    _core()
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Answered(answer))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def render(runtime_dir: str) -> tuple[bytes, str]:
    """What the status pages' ``metrics`` serve: the supervisor of ``runtime_dir`` asked now;
    when none answers, ``attachdaemon_supervisor_up 0`` alone (a scrape still succeeds)."""
    _core()
    try:
        answer = client.call(runtime_dir, "metrics", timeout=STATUS_TIMEOUT)
    except (client.NoSupervisor, client.ControlError):
        answer = None
    return render_answer(answer)


_registered: dict[str, DaemonsCollector] = {}


def register_default(runtime_dir: str | Callable[[], str], key: str | None = None) -> bool:
    """Register the collector on prometheus_client's default registry, once per process, with
    the supervisor's ``process_*`` as ``attachdaemon_supervisor_process_*`` (the worker's own
    ``process_*`` are already there). ``key`` names the supervisor (default: ``runtime_dir``).
    False when prometheus_client is missing, or when this process registered another
    supervisor's already (one set of series per process)."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        return False
    key = key or str(runtime_dir)
    if key in _registered:
        return True
    if _registered:
        log.warning(
            "metrics: not registering %s on the default registry: %s is already there",
            key,
            next(iter(_registered)),
        )
        return False
    collector = DaemonsCollector(runtime_dir, process_prefix=DEFAULT_REGISTRY_PROCESS_PREFIX)
    REGISTRY.register(collector)
    _registered[key] = collector
    return True
