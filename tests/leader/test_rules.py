"""The leader rules every caller shares (attachdaemon_core.leader.rules): the lease arithmetic,
the deadlines, the two forms of a backend string, and what a message may show. Pure."""

from __future__ import annotations

import sys

import pytest

from attachdaemon_core.leader import backend_kind, check_arithmetic, lock_key63
from attachdaemon_core.leader.base import redact
from attachdaemon_core.leader.rules import (
    backend_problem,
    client_kind,
    client_problem,
    deadlines,
    lease_slack,
)
from attachdaemon_core.spec.declarations import leader_backend_problem

pytestmark = pytest.mark.unit


def test_check_arithmetic() -> None:
    assert check_arithmetic(15, 3, 4) is None  # the defaults
    assert check_arithmetic(4, 0.5, 0.5, 0.5) is None  # the tests' timing
    problem = check_arithmetic(3, 1, 1)
    assert problem == (
        "lease 3s is too short: it must be at least 3*renew + stop_timeout + 2s = 3*1s + 1s + 2s = 6s"
    )
    assert check_arithmetic(15, 3, 4, margin=3) is not None  # a larger margin needs a longer lease
    assert check_arithmetic(0, 1, 1) == "lease must be > 0 seconds, not 0"
    assert check_arithmetic(15, 3, 4, margin=0.05) == "margin must be at least 0.1s, not 0.05"


@pytest.mark.parametrize(
    ("lease", "renew", "stop", "margin", "ok"),
    [
        (15, 3, 4, 1.0, True),  # 9 + 4 + 2 = 15: the boundary is accepted
        (14.99, 3, 4, 1.0, False),
        (21, 3, 10, 1.0, True),
        (16, 3, 4, 2.0, True),  # margin 2: slack 3
        (15.99, 3, 4, 2.0, False),
        (15, 3, 4, 0.5, True),  # a smaller margin never lowers the slack below 2 s
        (14.9, 3, 4, 0.5, False),
    ],
)
def test_the_lease_rule_at_its_boundary(
    lease: float, renew: float, stop: float, margin: float, ok: bool
) -> None:
    assert (check_arithmetic(lease, renew, stop, margin) is None) is ok
    assert lease_slack(margin) == max(2.0, margin + 1.0)


def test_the_declarations_apply_the_same_rule() -> None:
    from attachdaemon_core.spec.declarations import parse_declarations
    from attachdaemon_core.spec.model import ConfigError

    decl = {"command": "x", "stop_timeout": 4, "leader": {"lock": "a", "lease": 14.99, "renew": 3}}
    with pytest.raises(ConfigError) as info:
        parse_declarations({"d": decl}, source="test")
    expected = check_arithmetic(14.99, 3, 4)
    assert expected is not None and expected in str(info.value)
    decl["leader"] = {"lock": "a", "lease": 15, "renew": 3}
    assert parse_declarations({"d": decl}, source="test")[0].leader is not None


def test_deadlines() -> None:
    # The session must be empty a margin before the server may expire the lease; stopping
    # starts a full stop_timeout before that.
    assert deadlines(100.0, lease=15, stop_timeout=4, margin=1) == (110.0, 114.0)
    d_stop, d_kill = deadlines(0.0, lease=4, stop_timeout=0.5, margin=0.5)
    assert (d_stop, d_kill) == (3.0, 3.5)


# Where the declarations and the lock holder used to disagree: one parser now, two forms.
@pytest.mark.parametrize(
    ("backend", "declared", "resolved"),
    [
        ("file", True, "file"),
        ("postgresql://u@h/db", True, "postgres"),
        ("POSTGRES://u@h/db", True, "postgres"),  # the scheme is case-insensitive
        ("redis://h:6379/1", True, "redis"),
        ("rediss://h:6380/0", True, "redis"),
        ("django:default", True, None),  # resolved by the Django host into a key=value DSN
        ("host=h dbname=d password=x", False, "postgres"),  # what django:ALIAS resolves into
        ("FILE", False, None),
        (" file", False, None),
        (" redis://h/0", False, None),
        ("django:", False, None),
        ("fiel", False, None),
        ("mysql://u:secret@h/db", False, None),
    ],
)
def test_one_backend_parser_two_forms(backend: str, declared: bool, resolved: str | None) -> None:
    assert (backend_problem(backend) is None) is declared
    assert leader_backend_problem is backend_problem  # the declarations use this very function
    if resolved is None:
        with pytest.raises(ValueError):
            backend_kind(backend)
    else:
        assert backend_kind(backend) == resolved


def test_backend_messages_never_show_a_password() -> None:
    with pytest.raises(ValueError) as info:
        backend_kind("mysql://u:secret@h/db")
    assert str(info.value) == "unsupported leader backend scheme 'mysql'"
    assert backend_problem("pg sql://u:secret@h/db") == (
        "unsupported leader backend (not shown, it may hold a password)"
    )
    assert backend_problem("admin:secret@db") == (
        "unsupported leader backend (not shown, it may hold a password)"
    )
    assert backend_problem("fiel") == "unsupported leader backend 'fiel'"
    problem = backend_problem("host=db password=secret")
    assert problem is not None and "secret" not in problem
    assert backend_problem(5) == "the leader backend must be a string, not int"
    assert "secret" not in redact("x postgresql://u:secret@h/db y host=h password=secret")
    assert 0 <= lock_key63("beat") < 2**63


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("file", None),
        ("postgresql://h/db", "postgres"),
        ("django:default", "postgres"),
        ("host=h dbname=d", "postgres"),
        ("redis://h/0", "redis"),
        ("nonsense", None),
    ],
)
def test_client_kind(backend: str, kind: str | None) -> None:
    assert client_kind(backend) == kind


def test_client_problem_names_the_package_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_problem(None) is None
    assert client_problem("file") is None
    # A client package that cannot be imported (sys.modules[name] = None makes import fail).
    monkeypatch.setitem(sys.modules, "attachdaemon_core.leader.redis_backend", None)
    problem = client_problem("redis")
    assert problem is not None
    message, install = problem
    assert message.startswith("the redis leader backend needs the Python package 'redis'")
    assert install == "pip install 'attachdaemon[redis]'"


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        ("postgresql://admin:hunter2@db/app", ["hunter2"]),
        ("postgresql://admin:hun@ter2@db/app", ["hun", "ter2"]),  # an unencoded '@'
        ("postgresql://admin:hun/ter2@db/app", ["hun", "ter2"]),  # an unencoded '/'
        ("rediss://:hunter2@r:6380/0", ["hunter2"]),
        ("redis://r:6379/0?password=hunter2", ["hunter2"]),
        ("host=h password=hunter2 dbname=d", ["hunter2"]),
        ("host=h password = hunter2", ["hunter2"]),
        ("host=h password='hun ter2' dbname=d", ["hun", "ter2"]),
        (r"host=h password='hun\' ter2' dbname=d", ["hun", "ter2"]),
        ('host=h password="hun ter2"', ["hun", "ter2"]),
        ("host=h PASSWORD=hunter2", ["hunter2"]),
        ("host=h sslpassword=hunter2", ["hunter2"]),
    ],
)
def test_redaction__every_form_of_a_password(text: str, secrets: list[str]) -> None:
    out = redact(f"connection to {text} failed: timeout")
    for secret in secrets:
        assert secret not in out, out
    assert out.startswith("connection to ") and out.endswith(" failed: timeout"), out
