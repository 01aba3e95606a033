"""The leader rules every caller shares: the lease arithmetic and what a backend string means.

One source of truth for the declarations' check (:mod:`attachdaemon_core.spec.declarations`), the
lock holder's refusal of unsafe timing (``python -m attachdaemon_core.leader hold``) and the
holder's deadlines (:mod:`attachdaemon_core.leader.roles`). Standard library only: importing
it never imports a lock engine's client (redis, psycopg); :func:`client_problem` tries that
import on purpose, when asked.

Backend strings come in two forms (docs/declarations.md, "leader"):

- the DECLARED form, what a user writes: ``file``, ``postgresql://…`` / ``postgres://…``,
  ``redis://…`` / ``rediss://…`` or ``django:ALIAS``;
- the RESOLVED form, what the lock holder receives: the same, except that ``django:ALIAS`` has
  been replaced by the Django host with a libpq ``key=value`` DSN built from that DATABASES
  entry (never written by a user, so never accepted in a declaration).

Messages about a backend never repeat a password.
"""

from __future__ import annotations

import importlib
import re

from attachdaemon_core.spec.redaction import redact

# --- lease arithmetic ---------------------------------------------------------------------------

#: The default margin (seconds) between the session being empty and the lease's end.
MARGIN = 1.0


def lease_slack(margin: float = MARGIN) -> float:
    """What the lease needs beyond 3 renew periods and a full stop: the margin plus one second
    of slack for the renewal's round trip, at least 2 s."""
    return max(2.0, margin + 1.0)


def check_arithmetic(lease: float, renew: float, stop_timeout: float, margin: float = MARGIN) -> str | None:
    """Why (lease, renew, stop_timeout, margin) cannot be safe, or None.

    The holder starts stopping the daemon at t_s + lease - stop_timeout - margin and has its
    session empty by t_s + lease - margin (t_s: when the last acknowledged renewal was sent,
    see :func:`deadlines`); three renewals must fit before it starts stopping, with slack:
    lease >= 3*renew + stop_timeout + :func:`lease_slack` (2 s for the default 1 s margin).
    """
    for what, value in (("lease", lease), ("renew", renew), ("stop_timeout", stop_timeout)):
        if not value > 0:
            return f"{what} must be > 0 seconds, not {value:g}"
    if not margin >= 0.1:
        return f"margin must be at least 0.1s, not {margin:g}"
    slack = lease_slack(margin)
    need = 3 * renew + stop_timeout + slack
    if lease >= need:
        return None
    return (
        f"lease {lease:g}s is too short: it must be at least 3*renew + stop_timeout + {slack:g}s"
        f" = 3*{renew:g}s + {stop_timeout:g}s + {slack:g}s = {need:g}s"
    )


def deadlines(
    sent_at: float, lease: float, stop_timeout: float, margin: float = MARGIN
) -> tuple[float, float]:
    """(d_stop, d_kill) for a lease whose acquiring or renewing request was sent at ``sent_at``:
    start stopping the daemon at d_stop, have its session empty by d_kill. The server cannot
    expire the lease before ``sent_at + lease``, so d_kill leaves ``margin`` to spare."""
    d_kill = sent_at + lease - margin
    return d_kill - stop_timeout, d_kill


# --- backend strings ----------------------------------------------------------------------------

FILE, POSTGRES, REDIS = "file", "postgres", "redis"
PG_SCHEMES = frozenset({"postgresql", "postgres"})
REDIS_SCHEMES = frozenset({"redis", "rediss"})
BACKEND_HINT = "use 'file', 'postgresql://…', 'redis://…' or 'django:ALIAS'"
NOT_SHOWN = "unsupported leader backend (not shown, it may hold a password)"
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_DJANGO_RE = re.compile(r"django:\S+\Z")

# kind -> (the client package its module imports, the extra that installs it, its module)
CLIENTS = {
    POSTGRES: ("psycopg", "postgres", "attachdaemon_core.leader.pg_backend"),
    REDIS: ("redis", "redis", "attachdaemon_core.leader.redis_backend"),
}


def _form(backend: str) -> str | None:
    """``file``, ``postgres``, ``redis``, ``django`` (an alias still to resolve), ``libpq`` (a
    key=value DSN, what an alias resolves into) or None (unsupported). Case-sensitive except
    the URL scheme; no surrounding blanks."""
    scheme, sep, _ = backend.partition("://")
    if sep:
        low = scheme.lower()
        if low in PG_SCHEMES:
            return POSTGRES
        return REDIS if low in REDIS_SCHEMES else None
    if backend == FILE:
        return FILE
    if _DJANGO_RE.match(backend):
        return "django"
    if "=" in backend:
        return "libpq"
    return None


def _unsupported(backend: str) -> str:
    """Why ``backend`` is refused; names a URL's scheme, never anything that may be a secret."""
    scheme, sep, _ = backend.partition("://")
    if sep:
        return f"unsupported leader backend scheme {scheme!r}" if _SCHEME_RE.match(scheme) else NOT_SHOWN
    if ":" in backend or "@" in backend:
        return NOT_SHOWN
    shown = repr(redact(backend))  # key=value: password values masked
    return f"unsupported leader backend {shown if len(shown) <= 60 else shown[:57] + '...'}"


def backend_problem(backend: object) -> str | None:
    """Why ``backend`` is not a DECLARED lock backend (see the module docstring), or None."""
    if not isinstance(backend, str):
        return f"the leader backend must be a string, not {type(backend).__name__}"
    if _form(backend) in (FILE, POSTGRES, REDIS, "django"):
        return None
    return _unsupported(backend)


def backend_kind(backend: str) -> str:
    """``file``, ``postgres`` or ``redis`` for a RESOLVED backend string (what the lock holder
    receives); ValueError, with a message that holds no password, for anything else."""
    form = _form(backend)
    if form == "libpq":
        return POSTGRES
    if form == "django":
        raise ValueError("a django:ALIAS backend must be resolved into a DSN by the caller")
    if form is None:
        raise ValueError(_unsupported(backend))
    return form


def client_kind(backend: str) -> str | None:
    """The engine whose client package ``backend`` (either form) needs: ``postgres``, ``redis``,
    or None (``file``, or not a backend)."""
    form = _form(backend)
    if form in ("django", "libpq"):
        return POSTGRES
    return form if form in CLIENTS else None


def client_problem(kind: str | None) -> tuple[str, str] | None:
    """Why backend ``kind`` cannot work in this Python — its client package cannot be imported
    — and the pip command that installs it; None when it can (or needs no package)."""
    if kind not in CLIENTS:
        return None
    try:
        importlib.import_module(CLIENTS[kind][2])
    except Exception as exc:  # ImportError, or a package too broken to import
        return missing_client(kind, exc)
    return None


def missing_client(kind: str, exc: BaseException) -> tuple[str, str]:
    """(message, pip command) for backend ``kind`` whose import failed with ``exc``."""
    from attachdaemon_core.leader.base import one_line

    package, extra, _module = CLIENTS[kind]
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        why = f"no module named {exc.name!r}"
    else:
        why = one_line(exc)
    message = (
        f"the {kind} leader backend needs the Python package {package!r}, which cannot be imported ({why})"
    )
    return message, f"pip install 'attachdaemon[{extra}]'"
