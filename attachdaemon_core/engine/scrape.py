"""The ``metrics`` verb's answer: the status, plus what is read from /proc only when scraped.

Each daemon's whole process tree (its resident memory and CPU time) and the supervisor's own
process numbers are read now, once per request; nothing is sampled in the background
(docs/monitoring.md). The hosts render it as Prometheus metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.osproc.usage import own_usage, tree_usage


def metrics_answer(status: dict[str, Any], daemons: Iterable[Daemon]) -> dict[str, Any]:
    """``status`` (the ``status`` verb's answer), each running daemon's tree use, our own."""
    usage = tree_usage({d.name: d.pid for d in daemons if d.pid is not None})
    return {
        "status": status,
        "usage": {
            name: {"rss_bytes": u.rss_bytes, "cpu_seconds": u.cpu_seconds, "processes": u.processes}
            for name, u in usage.items()
        },
        "process": own_usage(),
    }
