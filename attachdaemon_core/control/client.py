"""A blocking client for the control socket, used by hosts and the CLI (never by the supervisor)."""

from __future__ import annotations

import json
import os
import socket
import stat
import time

from attachdaemon_core.control.wire import MAX_ANSWER_BYTES, VERSION, encode
from attachdaemon_core.osproc.paths import RuntimeDirError, check_runtime_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (about 2 ms): mypy reads it alike
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SOCKET_NAME = "control.sock"


class NoSupervisor(Exception):
    """Nothing answered on the control socket."""


class ControlError(Exception):
    """The supervisor answered with an error."""


def socket_path(runtime_dir: str) -> str:
    return os.path.join(runtime_dir, SOCKET_NAME)


def check_socket(runtime_dir: str) -> None:
    """Before sending anything: the runtime directory (and those above it, up to this user's
    root) and the socket must be ours or root's, and not writable by others; NoSupervisor says
    why not. A missing directory or socket is left to ``connect`` to report."""
    path = socket_path(runtime_dir)
    try:
        check_runtime_dir(runtime_dir)
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except RuntimeDirError as exc:
        raise NoSupervisor(f"not talking to {path}: {exc}") from None
    except OSError as exc:
        raise NoSupervisor(f"not talking to {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise NoSupervisor(f"not talking to {path}: it is not a socket")
    if st.st_uid not in (os.geteuid(), 0):
        raise NoSupervisor(f"not talking to {path}: it belongs to uid {st.st_uid}, neither us nor root")


def listening(runtime_dir: str, timeout: float = 1.0) -> bool:
    """Whether something may listen on the control socket: False only when that is verifiably not
    so (no socket or directory, or the connection is refused), True when a connection is accepted
    or the answer is unclear (a timeout, no permission). Sends nothing."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path(runtime_dir))
    except (FileNotFoundError, NotADirectoryError, ConnectionRefusedError):
        return False
    except OSError:
        return True
    finally:
        sock.close()
    return True


def call(runtime_dir: str, verb: str, timeout: float = 5.0, **args: Any) -> Any:
    """Send one request and return its result; raise NoSupervisor or ControlError."""
    path = socket_path(runtime_dir)
    check_socket(runtime_dir)
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


def stream(runtime_dir: str, verb: str, timeout: float = 5.0, **args: Any) -> Iterator[dict[str, Any]]:
    """Send one request to a verb that streams (``events`` with ``follow``): yield its answer's
    result, then each line the supervisor pushes (``{"v": 1, ...}``), as long as the connection
    lasts; the first answer must come within ``timeout``, later lines may take any time. Raise
    NoSupervisor (also when the supervisor goes away) or ControlError."""
    path = socket_path(runtime_dir)
    check_socket(runtime_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(encode({"v": VERSION, "verb": verb, "args": args}))
        except OSError as exc:
            raise NoSupervisor(f"no supervisor answers at {path} ({exc.__class__.__name__})") from None
        reader = sock.makefile("rb")
        try:
            first = _line(reader, path)
        except TimeoutError:
            raise NoSupervisor(f"the supervisor at {path} did not answer (TimeoutError)") from None
        if not first.get("ok"):
            raise ControlError(str(first.get("error")))
        result = first.get("result")
        yield result if isinstance(result, dict) else {}
        sock.settimeout(None)  # news comes when it happens
        while True:
            yield _line(reader, path)
    finally:
        sock.close()


def _line(reader: Any, path: str) -> dict[str, Any]:
    try:
        line = reader.readline(MAX_ANSWER_BYTES)
    except (ConnectionResetError, BrokenPipeError):
        line = b""
    if not line.endswith(b"\n"):
        raise NoSupervisor(f"the supervisor at {path} closed the connection")
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ControlError("the supervisor sent a line that is not a JSON object")
    return obj
