"""One-shot tasks (``oneshot = true``): a command run to completion once per server start, such
as ``manage.py migrate``; uWSGI's ``hook-pre-app = exec:…`` and docker compose's
``service_completed_successfully``. Here: the rules tying ``oneshot`` to the other keys and its
defaults (docs/declarations.md, "One-shot tasks"). The supervisor runs it as an attached daemon
whose exit with status 0 is its completion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from attachdaemon_core.spec.model import DaemonSpec, Dependency

__all__ = ["after_line_hooks", "oneshot_defaults", "oneshot_problems"]

Found = list[tuple[str, str, str | None]]  # key, message, hint

# Keys that make no sense for a run-to-completion task, with why and what to do instead.
_REFUSED = {
    "pidfile": ("a one-shot is attached: it runs in the foreground to completion", "drop pidfile"),
    "daemonize": ("a one-shot is attached: it runs in the foreground to completion", "drop daemonize"),
    "control": ("a one-shot ends by design; a control daemon's end shuts the server down", "drop control"),
    "ready": (
        "a one-shot is done when it exits with status 0",
        "drop ready; dependents wait for it with condition 'completed'",
    ),
    "leader": ("a one-shot runs on every host that starts", "drop leader"),
    "on_reload": ("a one-shot is not restarted by a reload", "use rerun_on_reload = true to run it again"),
    "schedule": ("a one-shot runs once per server start, a job on its schedule", "drop one of them"),
}


def oneshot_problems(decl: Mapping[Any, object], fields: Mapping[str, Any], bad: set[str]) -> Found:
    """The rules of ``oneshot`` and ``rerun_on_reload``, skipped when a key they need was invalid."""
    found: Found = []
    if "oneshot" in bad:
        return found
    if not fields.get("oneshot"):
        if fields.get("rerun_on_reload") and "oneshot" not in bad:
            found.append(("rerun_on_reload", "only applies with oneshot = true", "add oneshot = true"))
        return found
    for key, (message, hint) in _REFUSED.items():
        if key in decl and key not in bad and fields.get(key) not in (None, False):
            found.append((key, f"not for a one-shot: {message}", hint))
    if fields.get("restart") == "always":
        hint = "'never' (the default) runs it once; 'on-failure' runs it again after a failure"
        found.append(("restart", "not 'always' for a one-shot: it would run again and again", hint))
    return found


def oneshot_defaults(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A one-shot is not restarted after it ends, unless ``restart`` says so."""
    return {"restart": "never"} if fields.get("oneshot") else {}


def after_line_hooks(specs: Sequence[DaemonSpec], from_line: Collection[str]) -> list[DaemonSpec]:
    """uWSGI runs its pre-app hooks (``hook-pre-app = exec:…``) to completion while it loads the
    app, before its master starts the daemons: so each daemon read from a uWSGI line depends on
    the one-shots read from lines, with condition ``completed``."""
    hooks = [s.name for s in specs if s.oneshot and s.name in from_line]
    if not hooks:
        return list(specs)
    out = []
    for spec in specs:
        if spec.name in from_line and not spec.oneshot:
            added = [h for h in hooks if h not in spec.depends_on]
            spec = dataclasses.replace(
                spec,
                depends_on=spec.depends_on + tuple(added),
                dependencies=spec.dependencies + tuple(Dependency(h, "completed") for h in added),
            )
        out.append(spec)
    return out
