"""The verb registry (control/verbs.py) is what the protocol, the server, the supervisor and the CLIs read."""

from __future__ import annotations

import argparse
import json
import selectors
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.control import client, protocol, server, verbs
from attachdaemon_core.control.protocol import ProtocolError, decode_request
from attachdaemon_core.engine.verbs import ControlAnswers
from attachdaemon_core.hosts import cli, commands

OWNER = {"pid": 1, "starttime": 2}
DECL = {"specs": [], "env": {}}
# The least a request of each verb carries: its required arguments.
MINIMAL: dict[str, dict[str, Any]] = {
    "logs": {"name": "a"},
    "signal": {"signal": 15, "all": True},
    "reload": {"owner": OWNER, "declarations": DECL},
    "add-owner": {"owner": OWNER, "declarations": DECL},
    "remove-owner": {"owner": OWNER},
}


def request(verb: str, args: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, "verb": verb, "args": args}).encode()


def test_the_read_only_set_comes_from_the_registry() -> None:
    expected = {v.name for v in verbs.VERBS.values() if v.read_only and v.control}
    assert expected == {"ping", "status", "logs", "events", "metrics"}
    assert server.READ_ONLY_VERBS is verbs.READ_ONLY_VERBS == expected
    assert protocol.READ_ONLY_VERBS is verbs.READ_ONLY_VERBS
    assert protocol.VERBS == verbs.CONTROL_VERBS == {v.name for v in verbs.VERBS.values() if v.control}


def test_every_control_verb_is_answered_by_a_control_answers_method_and_no_other_is() -> None:
    for verb in verbs.VERBS.values():
        assert hasattr(ControlAnswers, verb.method) == verb.control, verb.name
    answers = vars(ControlAnswers)
    assert not [m for m in answers if m.startswith("verb_") and m[5:].replace("_", "-") not in verbs.VERBS]


@pytest.mark.parametrize("verb", sorted(verbs.CONTROL_VERBS))
def test_every_control_verb_decodes_with_its_defaults_filled_in(verb: str) -> None:
    name, args = decode_request(request(verb, MINIMAL.get(verb, {})))
    assert name == verb
    assert set(args) == {a.name for a in verbs.VERBS[verb].wire_args}
    for arg in verbs.VERBS[verb].wire_args:
        if arg.name not in MINIMAL.get(verb, {}):
            assert args[arg.name] == arg.default


def test_commands_only_the_cli_knows_are_not_control_verbs() -> None:
    for verb in ("check", "run", "nope"):
        with pytest.raises(ProtocolError, match=f"unknown verb '{verb}'"):
            decode_request(request(verb, {}))


@pytest.mark.parametrize(
    ("verb", "args", "message"),
    [
        ("logs", {}, "logs: argument 'name' is required"),
        ("logs", {"name": "a", "lines": "ten"}, "logs: argument 'lines' must be an integer, not a string"),
        ("logs", {"name": "a", "lines": True}, "logs: argument 'lines' must be an integer, not a boolean"),
        ("logs", {"name": 5}, "logs: argument 'name' must be a string, not a number"),
        ("stop", {"names": "a"}, "stop: argument 'names' must be a list of strings, not a string"),
        (
            "stop",
            {"names": ["a", 1]},
            "stop: argument 'names' must be a list of strings, not a list holding a number",
        ),
        ("stop", {"all": 1}, "stop: argument 'all' must be true or false, not a number"),
        ("signal", {"all": True}, "signal: argument 'signal' is required"),
        ("reload", {"owner": OWNER, "declarations": []}, "reload: argument 'declarations' must be an object"),
        ("remove-owner", {"owner": None}, "remove-owner: argument 'owner' is required"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused_naming_them(
    verb: str, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_request(request(verb, args))
    assert str(info.value).startswith(message)


def test_unknown_arguments_are_left_out() -> None:
    assert decode_request(request("status", {"x": 1})) == ("status", {})
    assert decode_request(request("stop", {"names": ["a"], "x": 1})) == (
        "stop",
        {"names": ["a"], "all": False},
    )


@pytest.fixture
def control_server(tmp_path: Path) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A real ControlServer on a socket, its selector loop in a thread; the handler records."""
    seen: list[tuple[str, dict[str, Any]]] = []
    sel = selectors.DefaultSelector()
    srv = server.ControlServer(
        client.socket_path(str(tmp_path)), sel, lambda v, a, p: seen.append((v, a)) or v
    )
    srv.listen()
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            for key, mask in sel.select(0.05):
                key.data(mask)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield str(tmp_path), seen
    finally:
        done.set()
        thread.join(5)
        srv.close()
        sel.close()


def test_the_server_accepts_every_verb_of_the_registry(control_server: tuple[str, list[Any]]) -> None:
    runtime_dir, seen = control_server
    for verb in sorted(verbs.CONTROL_VERBS):
        assert client.call(runtime_dir, verb, **MINIMAL.get(verb, {})) == verb
    assert [v for v, _ in seen] == sorted(verbs.CONTROL_VERBS)
    with pytest.raises(client.ControlError, match="logs: argument 'lines' must be an integer, not a string"):
        client.call(runtime_dir, "logs", name="a", lines="x")
    with pytest.raises(client.ControlError, match="unknown verb 'run'"):
        client.call(runtime_dir, "run")


def test_attachdaemon_help_lists_every_command_verb_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    assert verbs.CLI_VERBS == (
        "status",
        "logs",
        "events",
        "metrics",
        "start",
        "stop",
        "restart",
        "check",
        "run",
    )
    for name in verbs.CLI_VERBS:
        help_text = verbs.VERBS[name].help
        assert help_text is not None and f" {name} {help_text}" in text, name


@pytest.mark.parametrize("name", verbs.CLI_VERBS)
def test_each_verb_help_shows_its_arguments(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])
    text = capsys.readouterr().out
    for arg in verbs.VERBS[name].args:
        if arg.cli:
            assert (arg.flags[-1] if arg.flags else arg.metavar or arg.name) in text, (name, arg.name)


def test_every_command_verb_parses_and_has_a_command() -> None:
    parser = argparse.ArgumentParser()
    commands.add_verbs(parser)
    assert parser.parse_args(["logs", "a", "-n", "3", "-f"]) == argparse.Namespace(
        verb="logs", name="a", lines=3, follow=True
    )
    assert parser.parse_args(["stop", "a", "b"]) == argparse.Namespace(
        verb="stop", names=["a", "b"], all=False
    )
    assert parser.parse_args(["run", "--", "sleep", "1"]).command == ["--", "sleep", "1"]
    assert parser.parse_args(["status", "--json"]).json is True
    assert set(commands._COMMANDS) == set(verbs.CLI_VERBS)
