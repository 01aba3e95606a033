"""The holder-to-watchdog channel (attachdaemon_core.leader.channel): framing and fd FIFO, pure.

A stream socket returns bytes in chunks that need not match the frames, and the fds sent with a
frame arrive with the first chunk that holds any of its bytes (or, merged by the kernel, no
later). These tests cut a stream of frames at every position, hand each frame's fds over with
various chunks, and check that the decoder gives back the same messages with their own fds;
and that whatever breaks the agreement ends the channel with every fd it held closed. The fds
here are numbers and ``close`` a recorder; test_channel_socket.py passes real ones.
"""

from __future__ import annotations

import bisect
import itertools
import json
from typing import Any

import pytest

from attachdaemon_core.leader.channel import MAX_FRAME, Decoder, encode

pytestmark = pytest.mark.unit

# What the role machine sends (roles.py), one of each kind, a "hold" with one fd and one with two,
# and a string with a newline and non-ASCII text in it, which must not end a frame.
MESSAGES: list[tuple[dict[str, Any], list[int]]] = [
    ({"op": "hold"}, [100]),
    ({"op": "session", "sid": 4242, "starttime": 777, "stop_signal": 15}, []),
    ({"op": "deadline", "stop_at": 110.5, "kill_at": 114.0}, []),
    ({"op": "note", "text": "line one\nline two é"}, []),
    ({"op": "hold"}, [101, 102]),
    ({"op": "deadline", "stop_at": None, "kill_at": 114.0}, []),
    ({"op": "drop"}, []),
    ({"op": "clear"}, []),
]


class Closed(list[int]):
    def __call__(self, fd: int) -> None:
        self.append(fd)


def stream() -> tuple[bytes, list[int]]:
    """The bytes of MESSAGES and where each frame starts."""
    data, starts = b"", []
    for msg, fds in MESSAGES:
        starts.append(len(data))
        data += encode(msg, len(fds))
    return data, starts


STREAM, STARTS = stream()


def chunks(data: bytes, cuts: tuple[int, ...], earliest: bool) -> list[tuple[bytes, list[int]]]:
    """``data`` cut at ``cuts``; each frame's fds with the chunk holding its first byte, or
    (``earliest``) with the first chunk that may carry them, after the previous frame's fds."""
    bounds = [0, *cuts, len(data)]
    pieces: list[tuple[bytes, list[int]]] = [(data[a:b], []) for a, b in itertools.pairwise(bounds)]
    floor = 0
    for (_msg, fds), start in zip(MESSAGES, STARTS, strict=True):
        at = bisect.bisect_right(bounds, start) - 1
        chosen = floor if earliest else at
        pieces[chosen][1].extend(fds)
        floor = chosen
    return pieces


def decode_all(pieces: list[tuple[bytes, list[int]]]) -> tuple[list[Any], Decoder, Closed]:
    closed = Closed()
    dec = Decoder(close=closed)
    got: list[Any] = []
    for data, fds in pieces:
        got.extend(dec.feed(data, fds))
    return got, dec, closed


def test_a_frame_is_one_json_line_with_its_fd_count() -> None:
    frame = encode({"op": "note", "text": "a\nb"}, 2)
    assert frame.endswith(b"\n") and frame.count(b"\n") == 1
    assert json.loads(frame) == {"op": "note", "text": "a\nb", "nfds": 2}
    with pytest.raises(ValueError, match="nfds"):
        encode({"op": "hold", "nfds": 1}, 1)


def test_every_single_cut_gives_back_each_message_with_its_own_fds() -> None:
    data = STREAM
    for cut in range(1, len(data)):
        for earliest in (False, True):
            got, dec, closed = decode_all(chunks(data, (cut,), earliest))
            assert got == MESSAGES, (cut, earliest)
            assert dec.broken is None and not closed and not dec.fds and not dec.buf


def test_every_two_cuts_give_back_each_message_with_its_own_fds() -> None:
    data = STREAM  # the second cut within 80 bytes of the first: in the same or the next frame
    for cuts in itertools.combinations(range(1, len(data)), 2):
        if cuts[1] - cuts[0] > 80:
            continue
        got, dec, closed = decode_all(chunks(data, cuts, earliest=cuts[0] % 2 == 0))
        assert got == MESSAGES, cuts
        assert dec.broken is None and not closed


def test_one_byte_at_a_time_and_all_at_once() -> None:
    data = STREAM
    got, _dec, _closed = decode_all(chunks(data, tuple(range(1, len(data))), earliest=False))
    assert got == MESSAGES
    got, _dec, _closed = decode_all(chunks(data, (), earliest=False))
    assert got == MESSAGES


def test_a_frame_not_finished_keeps_its_fds_until_the_channel_ends() -> None:
    closed = Closed()
    dec = Decoder(close=closed)
    frame = encode({"op": "hold"}, 1)
    assert dec.feed(frame[:5], [7]) == [] and list(dec.fds) == [7] and not closed
    dec.fail("EOF")  # the peer died in the middle of the frame
    assert closed == [7] and not dec.fds and dec.broken == "EOF"
    assert dec.feed(frame[5:], [8]) == [] and closed == [7, 8]  # taken after the end: closed


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"op": "hold"}', "count of its fds"),
        (b'{"op": "hold", "nfds": -1}', "count of its fds"),
        (b'{"op": "hold", "nfds": true}', "count of its fds"),
        (b'{"op": "hold", "nfds": "1"}', "count of its fds"),
        (b'{"op": "hold", "nfds": 3}', "claiming 3 fds, 2 received"),
    ],
)
def test_a_bad_frame_ends_the_channel_and_closes_every_fd_held(line: bytes, why: str) -> None:
    closed = Closed()
    dec = Decoder(close=closed)
    good = encode({"op": "drop"}, 0)
    # A good frame, then the bad one with two fds arriving with it, then a good frame after it.
    got = dec.feed(good + line + b"\n" + good, [5, 6])
    assert got == [({"op": "drop"}, [])]  # what came before the error is still handed out
    assert dec.broken is not None and why in dec.broken
    assert sorted(closed) == [5, 6] and not dec.fds and not dec.buf
    assert dec.feed(good, [9]) == [] and 9 in closed


def test_fds_stay_in_order_across_frames() -> None:
    """Fds that came early wait in the FIFO; each frame takes its count from the front."""
    closed = Closed()
    dec = Decoder(close=closed)
    data = encode({"op": "hold"}, 2) + encode({"op": "drop"}, 0) + encode({"op": "hold"}, 1)
    got = dec.feed(data[:3], [1, 2, 3]) + dec.feed(data[3:])
    assert got == [({"op": "hold"}, [1, 2]), ({"op": "drop"}, []), ({"op": "hold"}, [3])]
    assert not closed


def test_a_frame_longer_than_the_limit_ends_the_channel() -> None:
    closed = Closed()
    dec = Decoder(limit=64, close=closed)
    text = "x" * (64 - len(encode({"op": "note", "text": ""}, 0)) + 1)
    frame = encode({"op": "note", "text": text}, 0)
    assert len(frame) == 65  # 64 bytes and the newline: just within the limit
    assert dec.feed(frame) == [({"op": "note", "text": text}, [])] and dec.broken is None
    # Without a newline, the buffer stops at the limit (no waiting for a newline forever).
    assert dec.feed(b"{" + b" " * 64, [4]) == []
    assert dec.broken is not None and "longer than 64" in dec.broken and closed == [4]
    assert not dec.buf
    # One byte over the limit, newline and all in one chunk: refused too.
    over = Decoder(limit=64, close=closed)
    assert over.feed(encode({"op": "note", "text": text + "x"}, 0)) == [] and over.broken is not None
    assert MAX_FRAME >= 4096  # the real limit leaves room for any message the holder sends
