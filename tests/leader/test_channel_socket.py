"""The holder-to-watchdog channel over a real AF_UNIX SOCK_STREAM pair, with real fds (pipes).

No process: both ends are in this test. It checks what the pure tests (test_channel.py) cannot:
that the kernel delivers SCM_RIGHTS fds on a stream socket as the decoder expects, that a full
socket buffer or a frame larger than it ends the channel instead of blocking or reaching the peer
as a message, that fds cut off by the kernel (MSG_CTRUNC) end it too, and that no copy of a
passed fd is left anywhere once the channel is closed: the pipe a passed fd writes to reads EOF
only when every copy of its write end is closed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from attachdaemon_core.leader.channel import MAX_FDS, Channel, socket_pair
from tests.helpers.harness import wait_for


@pytest.fixture
def pair() -> Iterator[tuple[Channel, Channel]]:
    a, b = socket_pair()  # the holder's end (non-blocking) and the watchdog's, as start() makes them
    b.setblocking(False)  # (the watchdog reads only once select says so; here, poll)
    sender, receiver = Channel(a), Channel(b)
    yield sender, receiver
    sender.close()
    receiver.close()


Got = list[tuple[dict[str, object], list[int]]]


def drain(chan: Channel, want: int | None) -> Got:
    """Frames received until ``want`` have come (None: until the channel is over)."""
    got: Got = []

    def more() -> bool:
        got.extend(chan.receive())
        return chan.over is not None or (want is not None and len(got) >= want)

    wait_for(more, 5.0, f"{want} frames" if want is not None else "the end of the channel")
    return got


def all_writers_closed(rfd: int) -> bool:
    """True once the pipe reads EOF: no write end is open anywhere (sockets in flight included)."""
    os.set_blocking(rfd, False)
    try:
        return os.read(rfd, 4096) == b""
    except BlockingIOError:
        return False


def test_fds_arrive_with_their_own_messages(pair: tuple[Channel, Channel]) -> None:
    sender, receiver = pair
    pipes = [os.pipe() for _ in range(3)]
    try:
        assert sender.send({"op": "hold"}, [pipes[0][1]])
        assert sender.send({"op": "session", "sid": 1, "starttime": 2, "stop_signal": 15})
        assert sender.send({"op": "hold"}, [pipes[1][1], pipes[2][1]])
        assert sender.send({"op": "drop"})
        got = drain(receiver, 4)
        assert [m for m, _ in got] == [
            {"op": "hold"},
            {"op": "session", "sid": 1, "starttime": 2, "stop_signal": 15},
            {"op": "hold"},
            {"op": "drop"},
        ]
        assert [len(f) for _, f in got] == [1, 0, 2, 0]
        received = [fd for _, fds in got for fd in fds]
        for (rfd, _w), fd in zip(pipes, received, strict=True):  # each is its own pipe's write end
            os.write(fd, b"x")
            assert os.read(rfd, 1) == b"x"
            os.close(fd)
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_hundreds_of_frames_unread_fit_and_come_back_as_messages(pair: tuple[Channel, Channel]) -> None:
    """The holder's end takes hundreds of messages the watchdog has not read yet (a full buffer
    is taken for a dead watchdog, so it must not fill in any normal lag), and a burst read in
    large chunks is split back into the messages."""
    sender, receiver = pair
    for i in range(200):
        assert sender.send({"op": "deadline", "stop_at": 1e6 + i, "kill_at": 1e6 + i + 0.5}), i
    got = drain(receiver, 200)
    assert [m["stop_at"] for m, _ in got] == [1e6 + i for i in range(200)]
    assert receiver.over is None


def test_a_full_buffer_ends_the_channel_without_blocking_or_a_cut_message(
    pair: tuple[Channel, Channel],
) -> None:
    """The watchdog stops reading: sends succeed whole until the buffer is full, then the channel
    is over (no block, no partial frame taken for a message); the peer reads every whole frame,
    then EOF, and the fd of a frame still in flight is closed with the socket."""
    sender, receiver = pair
    rfd, wfd = os.pipe()
    try:
        assert sender.send({"op": "hold"}, [wfd])
        sent = 1
        while sender.send({"op": "deadline", "stop_at": 1.0, "kill_at": 2.0, "pad": "p" * 200}):
            sent += 1
            assert sent < 1_000_000, "the socket buffer never filled"
        assert sender.over is not None and "not reading" in sender.over
        assert not sender.send({"op": "drop"})  # over: nothing more goes out
        sender.close()
        os.close(wfd)
        got = drain(receiver, None)
        assert receiver.over == "EOF" and len(got) == sent
        assert got[0][0] == {"op": "hold"} and len(got[0][1]) == 1
        assert all(m["op"] == "deadline" and m["pad"] == "p" * 200 for m, _ in got[1:])
        os.close(got[0][1][0])
        assert all_writers_closed(rfd)
    finally:
        os.close(rfd)


def test_a_frame_larger_than_the_buffer_is_not_taken_as_sent(pair: tuple[Channel, Channel]) -> None:
    sender, receiver = pair
    sender.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    assert not sender.send({"op": "note", "text": "x" * 1_000_000})
    assert sender.over is not None
    sender.close()
    got = drain(receiver, None)
    assert got == [] and receiver.over is not None  # a cut frame never comes out as a message


def test_fds_cut_off_by_the_kernel_end_the_channel_and_none_leaks(pair: tuple[Channel, Channel]) -> None:
    sender, receiver = pair
    rfd, wfd = os.pipe()
    try:
        assert sender.send({"op": "hold"}, [wfd] * (MAX_FDS + 4))  # more than a recvmsg takes
        os.close(wfd)
        got = drain(receiver, None)
        assert got == []
        assert receiver.over is not None and "MSG_CTRUNC" in receiver.over
        sender.close()
        assert all_writers_closed(rfd)  # the fds that did arrive were closed
    finally:
        os.close(rfd)


def test_eof_in_the_middle_of_a_frame_closes_its_fds(pair: tuple[Channel, Channel]) -> None:
    sender, receiver = pair
    rfd, wfd = os.pipe()
    try:
        socket.send_fds(sender.sock, [b'{"op":"hold","nf'], [wfd])  # the frame's first bytes only
        os.close(wfd)
        sender.close()
        got = drain(receiver, None)
        assert got == [] and receiver.over == "EOF"
        assert all_writers_closed(rfd)
    finally:
        os.close(rfd)


def test_a_peer_gone_with_messages_unread_is_eof(pair: tuple[Channel, Channel]) -> None:
    """A watchdog SIGKILLed with messages it had not read yet: Linux reports ECONNRESET rather
    than a plain EOF to the holder; both mean the peer is gone, and so does EPIPE on a send."""
    holder_end, watchdog_end = pair
    assert holder_end.send({"op": "deadline", "stop_at": 1.0, "kill_at": 2.0})
    watchdog_end.close()  # unread
    drain(holder_end, None)
    assert holder_end.over == "EOF"
    a, b = socket_pair()
    other = Channel(a)
    b.close()
    assert not other.send({"op": "drop"}) and other.over == "EOF"
    other.close()
