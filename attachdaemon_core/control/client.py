"""A blocking client for the control socket, used by hosts and the CLI (never by the supervisor)."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from .protocol import MAX_ANSWER_BYTES, VERSION, encode

SOCKET_NAME = "control.sock"


class NoSupervisor(Exception):
    """Nothing answered on the control socket."""


class ControlError(Exception):
    """The supervisor answered with an error."""


def socket_path(runtime_dir: str) -> str:
    return os.path.join(runtime_dir, SOCKET_NAME)


def call(runtime_dir: str, verb: str, timeout: float = 5.0, **args: Any) -> Any:
    """Send one request and return its result; raise NoSupervisor or ControlError."""
    path = socket_path(runtime_dir)
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (TimeoutError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise NoSupervisor(f"no supervisor answers at {path} ({exc.__class__.__name__})") from None
        except OSError as exc:
            raise NoSupervisor(f"no supervisor answers at {path} ({exc.strerror})") from None
        try:
            sock.sendall(encode({"v": VERSION, "verb": verb, "args": args}))
            buf = bytearray()
            while not buf.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_ANSWER_BYTES:
                    raise ControlError("answer too large")
        except (TimeoutError, ConnectionResetError, BrokenPipeError) as exc:
            raise NoSupervisor(
                f"the supervisor at {path} did not answer ({exc.__class__.__name__})"
            ) from None
    finally:
        sock.close()
    if not buf:
        raise NoSupervisor(f"the supervisor at {path} closed the connection without answering")
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error")))
    return answer.get("result")
