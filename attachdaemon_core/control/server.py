"""The control socket's server side, driven by the supervisor's selector loop (no threads).

Each connection sends one request line and gets one answer line. Peers are identified by their
credentials (``osproc/peercred.py``: SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS and FreeBSD;
a connection whose peer cannot be told is refused): our uid and root may use every verb;
``read_only_uids`` may use read-only verbs.
Malformed, oversized or slow requests get an error answer or are dropped; none can stall the loop.

A handler may answer with a :class:`Stream` (``events -f``): the answer line is sent, and the
connection stays open as a stream, each later line pushed when the supervisor has news (never
polled: no timer runs for it). Streams are kept apart from the connections still owing a
request, so the request deadline's sweep neither drops them nor runs for them. A stream whose
reader falls :data:`MAX_STREAM_BACKLOG` bytes behind is closed; its client comes back asking for
what it missed (docs/process-model.md, "The control socket").
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.control.protocol import (
    MAX_REQUEST_BYTES,
    VERSION,
    ProtocolError,
    decode_request,
    encode,
    error,
    ok,
)
from attachdaemon_core.control.verbs import READ_ONLY_VERBS
from attachdaemon_core.osproc.peercred import PeerUnknown, peer_credentials

log = logging.getLogger("attachdaemon")

REQUEST_DEADLINE = 5.0  # seconds a client has to send its whole request
MAX_CONNECTIONS = 64
# Slots only our own uid and root may take: another uid (the read-only one) never gets them.
RESERVED_CONNECTIONS = 16
PER_UID_CONNECTIONS = 16  # open connections one other uid may hold at once
MAX_STREAM_BACKLOG = 1 << 20  # bytes a stream's reader may fall behind before it is closed


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


Handler = Callable[[str, dict[str, Any], Peer], Any]


class CommandError(Exception):
    """Raised by a verb handler; the message is sent back as the error answer."""


Push = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Stream:
    """A handler's answer that keeps the connection open: ``result`` is sent as the answer, then
    ``subscribe(push)`` is called; each ``push(obj)`` sends one more line, ``{"v": 1, **obj}``.
    ``subscribe`` returns what ends the subscription (called when the connection closes)."""

    result: Any
    subscribe: Callable[[Push], Callable[[], None]]


@dataclass
class _Conn:
    sock: socket.socket
    peer: Peer
    opened: float
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytes = b""
    unsubscribe: Callable[[], None] | None = None  # a stream: what ends its subscription


class ControlServer:
    """Accepts connections on ``path`` and answers them through ``handler``."""

    def __init__(self, path: str, selector: selectors.BaseSelector, handler: Handler) -> None:
        self.path = path
        self.selector = selector
        self.handler = handler
        self.read_only_uids: set[int] = set()
        self.conns: dict[int, _Conn] = {}  # connections owing a request, or being answered
        self.streams: dict[int, _Conn] = {}  # answered connections kept open (Stream)
        self.sock: socket.socket | None = None

    def listen(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(64)
        sock.setblocking(False)
        self.sock = sock
        self.selector.register(sock, selectors.EVENT_READ, self._on_accept)

    def close(self) -> None:
        for conn in list(self.streams.values()):
            with contextlib.suppress(OSError):  # what is already due, if the reader takes it now
                conn.sock.send(conn.outbuf)
        for conn in [*self.conns.values(), *self.streams.values()]:
            self._drop(conn)
        if self.sock is not None:
            self.selector.unregister(self.sock)
            self.sock.close()
            self.sock = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def socket_missing(self) -> bool:
        """True when our socket file vanished (a cleaned runtime dir); the caller re-listens."""
        return self.sock is not None and not os.path.exists(self.path)

    def sweep(self, now: float) -> None:
        """Drop connections that have not sent a whole request in time."""
        for conn in list(self.conns.values()):
            if now - conn.opened > REQUEST_DEADLINE:
                self._drop(conn)

    def _on_accept(self, _mask: int) -> None:
        assert self.sock is not None
        for _ in range(16):
            try:
                sock, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("control socket accept failed: %s", exc)
                return
            sock.setblocking(False)
            try:
                peer = Peer(*peer_credentials(sock))
            except PeerUnknown as exc:  # fail closed: who cannot be told may not talk
                log.warning("control connection refused: %s", exc)
                self._reject(sock, f"the supervisor cannot tell who you are: {exc}")
                continue
            refusal = self._refusal(peer)
            if refusal is not None:
                self._reject(sock, refusal)
                continue
            conn = _Conn(sock, peer, time.monotonic())
            self.conns[sock.fileno()] = conn
            self.selector.register(sock, selectors.EVENT_READ, lambda m, c=conn: self._on_io(c, m))

    def _refusal(self, peer: Peer) -> str | None:
        """Why this connection is refused, or None. Our uid and root may use every slot; another
        uid may hold at most PER_UID_CONNECTIONS and never the RESERVED_CONNECTIONS last ones."""
        everyone = [*self.conns.values(), *self.streams.values()]
        total = len(everyone)
        if peer.uid in (os.geteuid(), 0):
            if total >= MAX_CONNECTIONS:
                return f"the supervisor has {total} connections open, its maximum; retry in a moment"
            return None
        if peer.uid not in self.read_only_uids:
            return f"uid {peer.uid} may not use this supervisor"
        mine = sum(1 for c in everyone if c.peer.uid == peer.uid)
        if mine >= PER_UID_CONNECTIONS:
            return (
                f"uid {peer.uid} already has {mine} connections open to this supervisor, the most one "
                "uid may hold; close some (each gets its answer and ends) and retry"
            )
        if total >= MAX_CONNECTIONS - RESERVED_CONNECTIONS:
            return (
                f"the supervisor has {total} connections open; the last {RESERVED_CONNECTIONS} are kept "
                f"for uid {os.geteuid()} and root; retry in a moment"
            )
        return None

    def _reject(self, sock: socket.socket, reason: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("control connection refused: %s", reason)
        try:
            sock.send(error(reason))
        except OSError:
            pass
        sock.close()

    def _on_io(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
            return
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not chunk:
            self._drop(conn)
            return
        if conn.unsubscribe is not None:  # a stream's reader sends nothing more; ignore it
            return
        conn.inbuf += chunk
        if len(conn.inbuf) > MAX_REQUEST_BYTES:
            self._answer(conn, error(f"request larger than {MAX_REQUEST_BYTES} bytes"))
            return
        if b"\n" in conn.inbuf:
            line = bytes(conn.inbuf.split(b"\n", 1)[0])
            answer = self._dispatch(line, conn.peer)
            if isinstance(answer, Stream):
                self._open_stream(conn, answer)
            else:
                self._answer(conn, answer)

    def _dispatch(self, line: bytes, peer: Peer) -> bytes | Stream:
        try:
            verb, args = decode_request(line)
            if peer.uid not in (os.geteuid(), 0) and verb not in READ_ONLY_VERBS:
                return error(f"uid {peer.uid} may only use read-only verbs")
            result = self.handler(verb, args, peer)
            return result if isinstance(result, Stream) else ok(result)
        except (ProtocolError, CommandError) as exc:
            return error(str(exc))
        except Exception as exc:  # a bug in a handler must not take the supervisor down
            log.exception("control verb failed")
            return error(f"internal error: {exc.__class__.__name__}: {exc}")

    def _answer(self, conn: _Conn, data: bytes) -> None:
        conn.outbuf = data
        conn.inbuf.clear()
        self.selector.modify(conn.sock, selectors.EVENT_WRITE, lambda m, c=conn: self._on_io(c, m))
        self._flush(conn)

    def _open_stream(self, conn: _Conn, stream: Stream) -> None:
        """Send the answer, then keep the connection as a stream (out of the request sweep)."""
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        self.streams[fd] = conn
        conn.inbuf.clear()
        conn.unsubscribe = stream.subscribe(functools.partial(self._push, conn))
        self._push(conn, None, ok(stream.result))

    def _push(self, conn: _Conn, obj: dict[str, Any] | None, data: bytes = b"") -> None:
        if conn.sock.fileno() < 0:
            return
        conn.outbuf += data or encode({"v": VERSION, **(obj or {})})
        if len(conn.outbuf) > MAX_STREAM_BACKLOG:
            log.info("control stream (pid %d) fell %d bytes behind; closed", conn.peer.pid, len(conn.outbuf))
            self._drop(conn)
            return
        self._flush(conn)
        if conn.outbuf and conn.sock.fileno() >= 0:  # the rest when the reader takes it
            self.selector.modify(conn.sock, selectors.EVENT_WRITE, lambda m, c=conn: self._on_io(c, m))

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        conn.outbuf = conn.outbuf[sent:]
        if conn.outbuf:
            return
        if conn.unsubscribe is None:
            self._drop(conn)
        else:  # a stream, all sent: wait for news, and hear the reader hang up
            self.selector.modify(conn.sock, selectors.EVENT_READ, lambda m, c=conn: self._on_io(c, m))

    def _drop(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if conn.unsubscribe is not None:
            conn.unsubscribe()
            conn.unsubscribe = None
            conn.outbuf = b""
        if self.conns.pop(fd, None) is not None or self.streams.pop(fd, None) is not None:
            try:
                self.selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()
