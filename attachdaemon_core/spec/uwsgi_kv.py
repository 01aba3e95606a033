"""attach-daemon2's ``key=value,…`` list (docs/declarations.md, "uWSGI lines"): the keys uWSGI
knows, how a key uWSGI ignores is reported, and each key's handler mapping it to declaration fields.
"""

from __future__ import annotations

from collections.abc import Callable

from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.uwsgi_command import attach, set_process_name
from attachdaemon_core.spec.uwsgi_state import LineError, LineState, digits

__all__ = ["KV_KEYS", "parse_kv", "split_kvlist"]

KV_KEYS = {
    "command": "command",
    "cmd": "command",
    "exec": "command",
    "freq": "freq",
    "pidfile": "pidfile",
    "daemonize": "daemonize",
    "daemon": "daemonize",
    "control": "control",
    "touch": "touch",
    "stopsignal": "stopsignal",
    "stop_signal": "stopsignal",
    "reloadsignal": "reloadsignal",
    "reload_signal": "reloadsignal",
    "stdin": "stdin",
    "uid": "uid",
    "gid": "gid",
    "chdir": "chdir",
    "max_throttle": "max_throttle",
    "notifypid": "notifypid",
    "ns_pid": "ns_pid",
}
_TRUE = frozenset({"", "1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_FLAG_KEYS = frozenset({"daemonize", "control", "stdin", "notifypid"})


# --- the list ------------------------------------------------------------------------------------


def split_kvlist(value: str) -> list[tuple[str, str | None]]:
    """Split uWSGI's ``key=value,…`` (``\\`` escapes the next character); a bare key has None.

    Keys stay as written, spaces and case included: uWSGI compares them exactly (strcmp).
    """
    items, buf, escaped = [], [], False
    for c in value + ",":
        if escaped:
            buf.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            items.append("".join(buf))
            buf = []
        else:
            buf.append(c)
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        key, eq, val = item.partition("=")
        if key.strip():
            pairs.append((key, val if eq else None))
    return pairs


def parse_kv(value: str, state: LineState) -> None:
    """uWSGI's uwsgi_kvlist_parse stores only ``key=value`` items whose key it knows exactly.

    A known key without ``=`` or with a space around it is ignored as uWSGI ignores it, with a
    note; a key it does not know at all is refused (uWSGI ignores it too, silently).
    """
    raw: dict[str, str] = {}
    ignored: dict[str, str] = {}  # canonical key -> why it does not count
    for key, val in split_kvlist(value):
        canonical = KV_KEYS.get(key)
        if canonical is not None and val is not None:
            if canonical in raw:
                state.problem(f"attach-daemon2 key {canonical!r} is given twice")
            else:
                raw[canonical] = val
        elif key.strip() in KV_KEYS:
            message, hint = _ignored_key(key, val)
            state.notes.append((f"{message}, and so does attachdaemon", hint))
            ignored.setdefault(KV_KEYS[key.strip()], message)
        else:
            state.problem(f"unknown attach-daemon2 key {key!r}", _unknown_key_hint(key))
    for key, val in raw.items():
        try:
            _KV_HANDLERS[key](val, state)
        except LineError as exc:
            state.problem(exc.message, exc.hint)
    if "command" not in raw:
        state.problem("attach-daemon2 needs command=…", ignored.get("command"))
    _kv_reload(state)
    if "pidfile" in state.decl and "command" in state.decl:
        set_process_name(state)


def _ignored_key(key: str, val: str | None) -> tuple[str, str | None]:
    """Why uWSGI ignores a known key written ``key`` (no ``=``) or `` key=…`` (a space), and the fix."""
    name = key.strip()
    if val is None:
        fix = "1" if KV_KEYS[name] in _FLAG_KEYS else "…"
        spaced = ", without the space," if key != name else ""
        hint = None if name == "ns_pid" else f"write {name}={fix}{spaced} to use it"
        return f"key {name!r} has no value: uWSGI ignores it", hint
    where = {
        (True, False): "after the ','",
        (False, True): "before the '='",
    }.get((key[0].isspace(), key[-1].isspace()), "around the key")
    return (
        f"key {key!r} has a space, so it is not {name!r}: uWSGI ignores it",
        f"remove the space {where} to use it",
    )


def _unknown_key_hint(key: str) -> str | None:
    name = key.strip()
    if name.lower() == "legion":
        return "use legion-attach-daemon"
    if name.lower() in KV_KEYS:
        return f"attach-daemon2 keys are lower-case: write {name.lower()!r}"
    if any(c.isspace() for c in name):  # no key has a space: a piece of the command
        return "if it is part of the command, write the ',' before it as '\\,'"
    return did_you_mean(name, KV_KEYS)


# --- the keys ------------------------------------------------------------------------------------


def _kv_command(val: str, state: LineState) -> None:
    attach(_text("command", val), state)


def _kv_flag(field: str) -> Callable[[str, LineState], None]:
    def handle(val: str, state: LineState) -> None:
        word = val.strip().lower()
        if word not in _TRUE | _FALSE:
            raise LineError(f"{field} must be 1, true, yes, on or 0, false, no, off, not {val!r}")
        if word in _TRUE:
            state.decl[field] = True

    return handle


def _kv_field(field: str, convert: Callable[[str, str], object]) -> Callable[[str, LineState], None]:
    def handle(val: str, state: LineState) -> None:
        state.decl[field] = convert(field, _text(field, val))

    return handle


def _kv_id(field: str) -> Callable[[str, LineState], None]:
    """uid/gid: a number (0 means "unchanged", as in uWSGI) or, beyond uWSGI, a name."""

    def handle(val: str, state: LineState) -> None:
        text = _text(field, val).strip()
        if digits(text) and int(text) == 0:
            return
        state.decl["user" if field == "uid" else "group"] = int(text) if digits(text) else text

    return handle


def _kv_max_throttle(val: str, state: LineState) -> None:
    number = _whole("max_throttle", _text("max_throttle", val))
    if number:  # 0 keeps the default cap
        state.decl["max_backoff"] = number


def _kv_touch(val: str, state: LineState) -> None:
    state.decl["touch"] = [p for p in _text("touch", val).split(";") if p.strip()]


def _kv_reloadsignal(val: str, state: LineState) -> None:
    state.decl["_reloadsignal"] = _signal_value("reloadsignal", _text("reloadsignal", val))


def _kv_ns_pid(val: str, state: LineState) -> None:
    raise LineError("ns_pid (a new PID namespace) is not supported", "run it in a container")


def _kv_reload(state: LineState) -> None:
    """Map reloadsignal and notifypid to on_reload (docs/declarations.md); notifypid acts on smart daemons."""
    number = state.decl.pop("_reloadsignal", 0)
    notify = state.decl.pop("notifypid", False)
    if "pidfile" in state.decl:
        if notify:
            state.decl["on_reload"] = "signal"
            if number:
                state.decl["reload_signal"] = number
    elif number:
        state.decl["on_reload"] = "restart"
        state.decl["reload_stop_signal"] = number


def _text(field: str, val: str) -> str:
    if not val.strip():
        raise LineError(f"{field} needs a value")
    return val


def _whole(field: str, text: str) -> int:
    if not digits(text.strip()):
        raise LineError(f"{field} must be a whole number, not {text!r}")
    return int(text)


def _signal_value(field: str, text: str) -> int | str:
    """A number stays a number (0 = unset, as in uWSGI); a name is checked with the declaration."""
    text = text.strip()
    return int(text) if digits(text) else text


_KV_HANDLERS: dict[str, Callable[[str, LineState], None]] = {
    "command": _kv_command,
    "freq": _kv_field("start_timeout", lambda f, t: _whole("freq", t)),
    "pidfile": _kv_field("pidfile", lambda f, t: t.strip()),
    "daemonize": _kv_flag("daemonize"),
    "control": _kv_flag("control"),
    "stdin": _kv_flag("stdin"),
    "notifypid": _kv_flag("notifypid"),
    "touch": _kv_touch,
    "stopsignal": _kv_field("stop_signal", _signal_value),
    "reloadsignal": _kv_reloadsignal,
    "uid": _kv_id("uid"),
    "gid": _kv_id("gid"),
    "chdir": _kv_field("cwd", lambda f, t: t.strip()),
    "max_throttle": _kv_max_throttle,
    "ns_pid": _kv_ns_pid,
}
