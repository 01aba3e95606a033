"""docs/monitoring.md end to end: real gunicorn serving the Django site with django-prometheus
and the Flask app with prometheus_client's own /metrics app, and the ``daemons events`` and
``daemons metrics`` commands of ``manage.py`` and ``flask``."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.harness import wait_for
from tests.helpers.hosts import Host, Server, free_port

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]

CLIS = {"djsite": ["manage.py", "daemons"], "flaskapp": ["-m", "flask", "--app", "app", "daemons"]}


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def body(response: str) -> tuple[str, str]:
    head, _, rest = response.partition("\r\n\r\n")
    return head.split("\r\n", 1)[0], rest


def boot(h: Host, **env: str) -> tuple[Server, int]:
    port = free_port()
    g = h.gunicorn(port, **env)
    try:
        wait_for(lambda: h.box.running("a") and h.box.running("s"), 30, "daemons running")
        wait_for(lambda: "200 OK" in h.http(port), 15, "gunicorn answering")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- gunicorn output:\n{g.output()}") from None
    return g, port


def test_django_prometheus_metrics_show_our_series_from_every_worker(host: Callable[..., Host]) -> None:
    h = host("djsite")
    g, port = boot(h, AD_PROMETHEUS="1")
    status = {d["name"]: d for d in h.status()["daemons"]}
    workers: set[float] = set()
    # Each of the two workers must show our series. A connection whose request is not finished
    # keeps the worker that took it (gunicorn's sync worker) reading, so the next scrape goes to
    # the other one; then the held request is finished and answered by the first.
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n")
    responses = [h.http(port, "/metrics")]
    held.sendall(b"\r\n")
    data = b""
    while chunk := held.recv(65536):
        data += chunk
    held.close()
    responses.append(data.decode(errors="replace"))
    for response in responses:
        line, text = body(response)
        assert line.endswith("200 OK"), line
        m = parse(text)
        assert "django_http_requests_before_middlewares_total" in m  # django-prometheus's own
        assert m["attachdaemon_supervisor_up"] == {(): 1.0}
        assert m["attachdaemon_daemon_up"][(("daemon", "a"), ("kind", "attached"))] == 1.0
        assert m["attachdaemon_daemon_up"][(("daemon", "s"), ("kind", "smart"))] == 1.0
        assert m["attachdaemon_daemon_start_time_seconds"][(("daemon", "a"),)] == status["a"]["started_at"]
        assert m["attachdaemon_daemon_resident_memory_bytes"][(("daemon", "a"),)] > 0
        assert "attachdaemon_supervisor_process_resident_memory_bytes" in m
        workers.add(m["process_start_time_seconds"][()])  # the worker's own process_*
    assert len(workers) == 2, f"one worker answered both scrapes: {workers}"
    # Our own view is behind the status page's rule: staff only by default.
    line, _ = body(h.http(port, "/daemons/metrics"))
    assert " 403 " in line, line
    g.signal_group(signal.SIGTERM)
    assert g.wait_exit(20) == 0


@pytest.mark.parametrize("fixture", ["djsite", "flaskapp"])
def test_status_page_metrics_serve_the_supervisors_process(host: Callable[..., Host], fixture: str) -> None:
    h = host(fixture)
    g, port = boot(h, AD_STATUS_OPEN="1")
    line, text = body(h.http(port, "/daemons/metrics"))
    assert line.endswith("200 OK"), line + text
    m = parse(text)
    sup = h.status()["supervisor"]
    assert m["attachdaemon_daemon_restarts_total"][(("daemon", "a"),)] == 0.0
    assert abs(m["process_start_time_seconds"][()] - sup["started_at"]) < 1.0
    if fixture == "flaskapp":  # prometheus_client's own /metrics app: the default registry
        line, text = body(h.http(port, "/metrics"))
        assert line.endswith("200 OK"), line
        assert parse(text)["attachdaemon_daemon_up"][(("daemon", "s"), ("kind", "smart"))] == 1.0
    g.signal_group(signal.SIGTERM)
    assert g.wait_exit(20) == 0


@pytest.mark.parametrize("fixture", ["djsite", "flaskapp"])
def test_daemons_events_and_metrics_commands(host: Callable[..., Host], fixture: str) -> None:
    h = host(fixture)
    cli = CLIS[fixture]
    g, _port = boot(h)
    a = h.box.running("a")
    assert a is not None
    os.kill(a, signal.SIGKILL)
    wait_for(lambda: (h.box.running("a") or a) != a, 10, "a restarted")
    result = h.run([h.python, *cli, "events", "--json"])
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["event"] for e in events if e.get("daemon") == "a"]
    assert kinds[:5] == ["started", "ready", "exited", "restarting", "started"], kinds
    after = events[2]["seq"]
    result = h.run([h.python, *cli, "events", "--after", str(after)])
    assert result.returncode == 0, result.stderr
    assert [ln.split()[2] for ln in result.stdout.splitlines()] == [f"#{e['seq']}" for e in events[after:]]
    result = h.run([h.python, *cli, "metrics"])
    assert result.returncode == 0, result.stderr
    assert parse(result.stdout)["attachdaemon_daemon_restarts_total"][(("daemon", "a"),)] == 1.0
    g.signal_group(signal.SIGTERM)
    assert g.wait_exit(20) == 0
