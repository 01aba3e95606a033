"""Hostile input on the control socket: random, truncated, oversized, slow and concurrent clients
never crash or stall the supervisor, and a well-formed request still gets its answer."""

from __future__ import annotations

import json
import socket
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attachdaemon_core.control import client
from attachdaemon_core.control.protocol import MAX_REQUEST_BYTES
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, wait_for


def raw(box: Sandbox, data: bytes, *, read: bool = True, timeout: float = 3.0) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(client.socket_path(box.runtime_dir))
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
    finally:
        s.close()


def started(box: Sandbox) -> Sandbox:
    box.join(box.owner(), [DaemonSpec(name="a", command=("sleep", "1000"))])
    wait_for(lambda: box.running("a"), 5, "a")
    return box


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.one_of(
        st.binary(max_size=300).map(lambda b: b + b"\n"),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=12,
        ).map(lambda o: json.dumps(o).encode() + b"\n"),
        st.fixed_dictionaries(
            {
                "v": st.just(1),
                "verb": st.sampled_from(
                    ["status", "stop", "logs", "reload", "add-owner", "signal", "start", "nope"]
                ),
                "args": st.dictionaries(
                    st.sampled_from(
                        ["names", "name", "owner", "declarations", "signal", "all", "lines", "since"]
                    ),
                    st.none()
                    | st.integers()
                    | st.text(max_size=5)
                    | st.lists(st.text(max_size=5), max_size=3),
                    max_size=4,
                ),
            }
        ).map(lambda o: json.dumps(o).encode() + b"\n"),
    )
)
def test_random_requests_get_an_answer_or_are_dropped_never_a_crash(sandbox: Sandbox, payload: bytes) -> None:
    if not hasattr(sandbox, "_started"):
        started(sandbox)
        sandbox._started = True  # type: ignore[attr-defined]
    answer = raw(sandbox, payload)
    if answer:
        obj = json.loads(answer)
        assert obj["v"] == 1 and isinstance(obj["ok"], bool)
    assert sandbox.call("ping")["pid"] == sandbox.supervisor_pid()


def test_oversized_request__error_answer(sandbox: Sandbox) -> None:
    started(sandbox)
    big = b'{"v":1,"verb":"status","args":{"x":"' + b"a" * (MAX_REQUEST_BYTES + 10) + b'"}}\n'
    answer = json.loads(raw(sandbox, big, timeout=10))
    assert answer == {"v": 1, "ok": False, "error": f"request larger than {MAX_REQUEST_BYTES} bytes"}
    assert sandbox.running("a")


def test_truncated_and_slow_clients_do_not_stall_others(sandbox: Sandbox) -> None:
    started(sandbox)
    idle = []
    for _ in range(20):  # hold connections open, half a request each, never finishing
        s = socket.socket(socket.AF_UNIX)
        s.connect(client.socket_path(sandbox.runtime_dir))
        s.sendall(b'{"v":1,"verb":"sta')
        idle.append(s)
    try:
        t0 = time.monotonic()
        assert sandbox.status()["daemons"][0]["name"] == "a"
        assert time.monotonic() - t0 < 0.5
        # The slow ones are dropped after the request deadline.
        wait_for(lambda: idle[0].recv(10) == b"", 10, "slow client dropped")
    finally:
        for s in idle:
            s.close()


def test_concurrent_clients_all_answered(sandbox: Sandbox) -> None:
    started(sandbox)
    results: list[object] = []

    def hammer() -> None:
        for _ in range(20):
            results.append(sandbox.status()["supervisor"]["pid"])

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 160 and len(set(results)) == 1


def test_wrong_version_and_unknown_verb__clear_errors(sandbox: Sandbox) -> None:
    started(sandbox)
    assert json.loads(raw(sandbox, b'{"v":2,"verb":"status"}\n'))["error"] == (
        "unsupported protocol version 2 (this supervisor speaks 1)"
    )
    assert json.loads(raw(sandbox, b'{"v":1,"verb":"exec"}\n'))["error"] == "unknown verb 'exec'"
