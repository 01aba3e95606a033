"""The supervisor's own log lines as text (the default) or one JSON object each.

``ATTACHDAEMON_LOG_FORMAT=json`` in the environment the supervisor starts in (the server's) makes
every line of its stderr and of ``supervisor.log`` ``{"at": 1796395681.204, "level": "info",
"pid": 4242, "message": "daemon 'kv' started (pid 4250)"}`` (plus ``"exception"`` when a
traceback goes with it); docs/monitoring.md. Runs in the supervisor and the guard.
"""

from __future__ import annotations

import json
import logging
import os
import sys

ENV = "ATTACHDAEMON_LOG_FORMAT"
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "at": round(record.created, 3),
            "level": record.levelname.lower(),
            "pid": os.getpid(),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def wanted() -> str:
    """The format the environment asks for; an unknown one is said on stderr and is text."""
    value = os.environ.get(ENV, "text").strip().lower() or "text"
    if value not in FORMATS:
        sys.stderr.write(f"attachdaemon: {ENV}={value!r} is not one of {', '.join(FORMATS)}; using text\n")
        return "text"
    return value


def formatters() -> tuple[logging.Formatter, logging.Formatter]:
    """The formatters of stderr and of supervisor.log."""
    if wanted() == "json":
        return JsonFormatter(), JsonFormatter()
    pid = os.getpid()
    return logging.Formatter(f"attachdaemon[{pid}]: %(message)s"), logging.Formatter(
        "%(asctime)s " + f"[{pid}] %(message)s"
    )
