"""Sending to a service manager's NOTIFY_SOCKET (systemd's sd_notify(3) protocol): what a host
process under systemd ``Type=notify`` says of itself while it waits for its daemons
(docs/process-model.md, "Under systemd"). Never raises: no socket, no message."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (``KEY=VALUE`` lines) to ``$NOTIFY_SOCKET``; False when unset or refused."""
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return False
    address = "\0" + path[1:] if path[0] == "@" else path  # '@': Linux's abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # (close-on-exec: PEP 446)
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True
