"""A holder cut off from the engine by a real network partition: the holding "host" runs in its
own network namespace (made by this test, as root: ip netns, a veth pair, link down), reaching a
private redis-server on the veth address. Its daemon must be stopped before the lease can expire,
the other host must take over within lease + 1 s, and the daemons must never overlap."""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.model import DaemonSpec, LeaderSpec
from tests.helpers.harness import Sandbox, wait_for
from tests.helpers.servers import free_port, pg_bin
from tests.leader.conftest import record, unique_name
from tests.leader.test_supervised import LEASE, RENEW, STOP, Fleet

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("redis-server") is None,
    reason="needs root, iproute2 and redis-server (network namespaces, a private redis-server)",
)


@dataclass
class Netns:
    name: str
    host_if: str
    host_ip: str
    ns_ip: str


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[Netns]:
    n = random.randrange(1, 250)
    tag = f"{os.getpid() % 10000}{n}"
    ns = Netns(f"adt{tag}", f"ada{tag}", f"10.231.{n}.1", f"10.231.{n}.2")
    ip("netns", "add", ns.name)
    try:
        ip("link", "add", ns.host_if, "type", "veth", "peer", "name", f"adb{tag}")
        ip("link", "set", f"adb{tag}", "netns", ns.name)
        ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
        ip("link", "set", ns.host_if, "up")
        ip("netns", "exec", ns.name, "ip", "addr", "add", f"{ns.ns_ip}/30", "dev", f"adb{tag}")
        ip("netns", "exec", ns.name, "ip", "link", "set", f"adb{tag}", "up")
        ip("netns", "exec", ns.name, "ip", "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns.name], check=False, capture_output=True)


@pytest.fixture
def veth_redis(netns: Netns, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", netns.host_ip, "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--loglevel", "warning",
         "--protected-mode", "no"],  # bound to the veth address of our own test namespace only
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"redis://{netns.host_ip}:{port}/0"
        wait_for(lambda: _ping(netns.host_ip, port), 5, "the private redis-server")
        yield url
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def veth_postgres(netns: Netns) -> Iterator[str]:
    """A private PostgreSQL (initdb into a temp dir, run as the postgres user) listening on the
    veth address only, trusting the test namespace's /30."""
    initdb, postgres = pg_bin("initdb"), pg_bin("postgres")
    if initdb is None or postgres is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no 'postgres' user to run a private PostgreSQL as")
    base = Path(tempfile.mkdtemp(prefix="pgpart-", dir="/tmp"))
    shutil.chown(base, "postgres")
    data = base / "data"
    runas = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*runas, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    with open(data / "pg_hba.conf", "a") as f:
        f.write(f"host all all {netns.host_ip.rsplit('.', 1)[0]}.0/24 trust\n")
    port = free_port()
    server = subprocess.Popen(
        [*runas, postgres, "-D", str(data), "-p", str(port), "-k", str(base),
         "-c", f"listen_addresses={netns.host_ip}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _tcp(netns.host_ip, port), 30, "the private PostgreSQL")
        yield f"postgresql://postgres@{netns.host_ip}:{port}/postgres"
    finally:
        server.terminate()  # runuser passes it on: smart shutdown of an idle cluster
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(base, ignore_errors=True)


def _tcp(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _ping(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(10).startswith(b"+PONG")
    except OSError:
        return False


JOIN_IN_NS = """
import json, sys
from attachdaemon_core.hosts import runtime
args = json.load(sys.stdin)
runtime.join(args["runtime_dir"], args["owner"], args["payload"])
"""


@pytest.fixture(params=["redis", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"veth_{request.param}"))


def test_network_partition_of_the_holder__stopped_in_time_other_host_takes_over(
    netns: Netns, engine: str, tmp_path: Path
) -> None:
    fleet = Fleet(tmp_path, engine)
    fleet.lock = unique_name("partition")
    try:
        # Host A: its supervisor (and so its lock holder) live in the namespace.
        (tmp_path / "a").mkdir()
        a = Sandbox(tmp_path / "a")
        fleet.hosts["a"] = a
        owner = a.owner()
        fleet.owners["a"] = owner
        payload = runtime.payload([fleet.spec("a")], source="test")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        args = {"runtime_dir": a.runtime_dir, "owner": owner.pid, "payload": payload}
        subprocess.run(
            ["ip", "netns", "exec", netns.name, sys.executable, "-c", JOIN_IN_NS],
            input=json.dumps(args), text=True, check=True, timeout=30, env=env,
        )  # fmt: skip
        assert fleet.leader() == "a"
        fleet.add("b")  # host B, in the root namespace
        wait_for(lambda: fleet.states() == {"a": "running", "b": "standby"}, 10, "b on standby")
        t_cut = time.monotonic()
        ip("link", "set", netns.host_if, "down")
        took = fleet.handover("a", t_cut, timeout=LEASE + 5)
        a_last = max(b for _a, b, k in fleet.intervals() if k.startswith("a-"))
        kind = engine.split(":", maxsplit=1)[0]
        record(f"partition ({kind}): holder's daemon stopped after the cut, s", round(a_last - t_cut, 3))
        record(f"partition ({kind}): other host running after the cut, s", round(took, 3))
        assert a_last - t_cut < LEASE - STOP, "the cut-off holder's daemon outlived its lease budget"
        assert took <= LEASE + 1.0, took
        fleet.assert_no_overlap()
        ip("link", "set", netns.host_if, "up")  # healed: A must follow, not take the lock back
        wait_for(lambda: a.daemon("beat")["leader"]["role"] == "follower", LEASE + 5, "a follows again")
        assert fleet.states() == {"a": "standby", "b": "running"}
    finally:
        problems = [p for box in fleet.hosts.values() for p in box.cleanup()]
        assert not problems, problems
        fleet.assert_no_overlap()


_ = LeaderSpec, DaemonSpec, RENEW  # the fleet builds its declarations from these
