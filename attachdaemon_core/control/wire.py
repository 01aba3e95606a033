"""The wire's framing, shared by both ends: the version, the size bounds, one JSON line.

Its own module, stdlib ``json`` only, so that a client (``attachdaemon status``, a status page)
does not import the verb table (:mod:`.verbs`, with argparse) that only the server checks
requests against (:mod:`.protocol`).
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (about 2 ms): mypy reads it alike
if TYPE_CHECKING:
    from typing import Any

VERSION = 1
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # declarations of a few hundred daemons fit easily
MAX_ANSWER_BYTES = 64 * 1024 * 1024


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
