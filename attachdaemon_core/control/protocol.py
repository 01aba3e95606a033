"""Wire format: one JSON object per line each way, then the server closes the connection.

Request:  ``{"v": 1, "verb": "status", "args": {...}}``
Answer:   ``{"v": 1, "ok": true, "result": ...}`` or ``{"v": 1, "ok": false, "error": "..."}``

The verbs and their arguments are those of :mod:`attachdaemon_core.control.verbs`.
"""

from __future__ import annotations

import json
from typing import Any

from attachdaemon_core.control.verbs import CONTROL_VERBS, READ_ONLY_VERBS, BadArguments, check_args
from attachdaemon_core.control.wire import MAX_ANSWER_BYTES, MAX_REQUEST_BYTES, VERSION, encode

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_REQUEST_BYTES",
    "READ_ONLY_VERBS",
    "VERBS",
    "VERSION",
    "ProtocolError",
    "decode_request",
    "encode",
    "error",
    "ok",
]

VERBS = CONTROL_VERBS  # READ_ONLY_VERBS: answered for the daemons' default user too


class ProtocolError(Exception):
    """A request that is not well-formed; the answer carries the message."""


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"request is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("request must be a JSON object")
    if obj.get("v") != VERSION:
        raise ProtocolError(
            f"unsupported protocol version {obj.get('v')!r} (this supervisor speaks {VERSION})"
        )
    verb = obj.get("verb")
    if not isinstance(verb, str) or verb not in VERBS:
        raise ProtocolError(f"unknown verb {verb!r}")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("args must be a JSON object")
    try:
        return verb, check_args(verb, args)
    except BadArguments as exc:
        raise ProtocolError(str(exc)) from None


def ok(result: Any) -> bytes:
    return encode({"v": VERSION, "ok": True, "result": result})


def error(message: str) -> bytes:
    return encode({"v": VERSION, "ok": False, "error": message})
