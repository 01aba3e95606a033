"""The channel between the holder and its watchdog: JSON messages, some with file descriptors,
over an AF_UNIX SOCK_STREAM socket pair, the same code on every POSIX system (macOS has no
SOCK_SEQPACKET in its local domain, so one packet per message is not available there).

Framing. A message is one JSON object on one line (``json.dumps`` escapes every newline inside
a string, so a raw newline only ends a frame), and says how many fds it carries:
``{"op":"hold","nfds":1}``. The fds go as SCM_RIGHTS with that frame's bytes, in the same
``sendmsg``. A stream has no message boundaries: one ``recvmsg`` may return several frames, or
part of one, and the fds it brings belong to the first frame that starts in its bytes (the
kernel hands them out with the first of the bytes they were sent with). So the receiver keeps
the bytes of an unfinished frame and a FIFO of the fds received so far; each complete frame
takes its ``nfds`` from the front of the FIFO, in order.

Anything that breaks that agreement (a frame that is not a JSON object with an ``nfds`` count,
a frame that claims more fds than have arrived, fds cut off by the kernel (MSG_CTRUNC), a frame
longer than MAX_FRAME) ends the channel as EOF does: whoever reads can no longer tell which fd
is which, nor trust the next message. The fds received and not yet handed out are then closed.

Sending never blocks and never leaves part of a frame behind as if it were sent: a frame goes
whole in one non-blocking ``sendmsg`` or the channel is broken (see :meth:`Channel.send`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

MAX_FRAME = 65536  # bytes of one frame; the messages are a few hundred bytes
MAX_FDS = 16  # fds one recvmsg can take; a message carries at most a handful
SEND_BUFFER = 65536
Frame = tuple[dict[str, Any], list[int]]


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """The holder's end (non-blocking) and the watchdog's. The holder's send buffer is made at
    least SEND_BUFFER bytes, room for hundreds of messages on every system (macOS gives a local
    stream socket 8 KiB; Linux about 200 KiB), since a full one is taken for a dead watchdog."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if mine.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < SEND_BUFFER:
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    mine.setblocking(False)
    return mine, theirs


def encode(msg: dict[str, Any], nfds: int) -> bytes:
    """One frame: ``msg`` with its fd count, as a JSON line."""
    if "nfds" in msg:
        raise ValueError("a watchdog message must not set 'nfds' itself (the channel sets it)")
    return json.dumps({**msg, "nfds": nfds}, separators=(",", ":")).encode() + b"\n"


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class Decoder:
    """Bytes and fds in the order ``recvmsg`` returned them, out as ``(message, fds)`` frames.

    The decoder owns every fd given to :meth:`feed` until it hands it out in a frame; once
    :attr:`broken` is set (a reason), it has closed the fds it held and takes no more.
    ``close`` closes an fd (``os.close``; a recorder in the pure tests)."""

    def __init__(self, limit: int = MAX_FRAME, close: Callable[[int], None] = _close_quietly):
        self.limit = limit
        self.close_fd = close
        self.buf = bytearray()
        self.fds: collections.deque[int] = collections.deque()
        self.broken: str | None = None

    def feed(self, data: bytes, fds: Sequence[int] = ()) -> list[Frame]:
        """The frames completed by ``data`` (with ``fds``, received in the same call), in order.
        A protocol error sets :attr:`broken`; the frames before it are still returned."""
        if self.broken is not None:
            for fd in fds:
                self.close_fd(fd)
            return []
        self.fds.extend(fds)
        self.buf += data
        frames: list[Frame] = []
        while self.broken is None:
            end = self.buf.find(b"\n")
            if end < 0:
                if len(self.buf) > self.limit:
                    self.fail(f"a frame longer than {self.limit} bytes")
                break
            line = bytes(self.buf[:end])
            del self.buf[: end + 1]
            frame = self._frame(line)
            if isinstance(frame, str):
                self.fail(frame)
            else:
                frames.append(frame)
        return frames

    def _frame(self, line: bytes) -> Frame | str:
        """The frame ``line`` is, with its fds from the FIFO; or what is wrong with it."""
        if len(line) > self.limit:
            return f"a frame longer than {self.limit} bytes"
        try:
            msg = json.loads(line)
        except ValueError:
            return "a frame that is not JSON"
        if not isinstance(msg, dict):
            return "a frame that is not a JSON object"
        nfds = msg.pop("nfds", None)
        if type(nfds) is not int or nfds < 0:
            return "a frame without a count of its fds ('nfds')"
        if nfds > len(self.fds):
            return f"a frame claiming {nfds} fds, {len(self.fds)} received"
        return msg, [self.fds.popleft() for _ in range(nfds)]

    def fail(self, reason: str) -> None:
        """End the decoder: close the fds it holds and drop what it buffered."""
        if self.broken is None:
            self.broken = reason
        self.buf.clear()
        while self.fds:
            self.close_fd(self.fds.popleft())


class Channel:
    """One end of the pair. The holder's end is non-blocking (its selector loop owns the
    deadlines); the watchdog's end is read only when ``select`` says it is readable."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.decoder = Decoder()
        self.over: str | None = None  # why the channel ended ("EOF", an error); None while open

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> bool:
        """Send one message whole, ``fds`` attached; False once the channel is over.

        One non-blocking ``sendmsg`` per frame, nothing buffered: a frame the socket does not
        take whole now (EAGAIN, or a partial write) ends the channel (:attr:`over`), and the
        peer sees at most a cut frame followed by EOF, never a wrong message. Why not queue it:
        the fds are the lock's, whose numbers the engine may close and reuse before a later
        flush; and why not block: the holder's loop must never be held up past a deadline. The
        socket's buffer holds hundreds of these frames (:func:`socket_pair`), so a full one
        means the watchdog has stopped reading, which is a dead watchdog; the holder restarts
        it and re-sends it the whole state."""
        if self.over is not None:
            return False
        data = encode(msg, len(fds))
        try:
            sent = socket.send_fds(self.sock, [data], list(fds)) if fds else self.sock.send(data)
        except BlockingIOError:
            self.over = "the watchdog is not reading (its socket buffer is full)"
            return False
        except (BrokenPipeError, ConnectionResetError):
            self.over = "EOF"  # the peer is gone
            return False
        except OSError as exc:
            self.over = f"send failed: {exc.strerror or exc}"
            return False
        if sent != len(data):
            self.over = f"only {sent} of a {len(data)}-byte frame was taken"
            return False
        return True

    def receive(self) -> list[Frame]:
        """The frames one ``recvmsg`` completes ([] if none, or nothing is there yet). After
        EOF (ECONNRESET too: the peer closed with data it had not read), an error or a protocol
        error, :attr:`over` says why and the fds not handed out are closed; the frames completed
        before it are still returned."""
        if self.over is not None:
            return []
        try:
            data, fds, flags, _addr = socket.recv_fds(self.sock, MAX_FRAME, MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return []
        except ConnectionResetError:  # the peer closed with data it had not read: gone too
            data, fds, flags = b"", [], 0
        except OSError as exc:
            data, fds, flags = b"", [], 0
            self.over = f"receive failed: {exc.strerror or exc}"
        if flags & socket.MSG_CTRUNC:  # some fds were dropped: no frame here can be trusted
            self.decoder.fail("file descriptors cut off (MSG_CTRUNC)")
        frames = self.decoder.feed(data, fds)
        if not data and self.over is None:
            self.over = "EOF"
        if self.decoder.broken is not None and self.over is None:
            self.over = f"protocol error: {self.decoder.broken}"
        if self.over is not None:
            self.decoder.fail(self.over)
        return frames

    def close(self) -> None:
        """Close the socket and any fds received and not handed out."""
        self.decoder.fail(self.over or "closed")
        if self.over is None:
            self.over = "closed"
        self.sock.close()
