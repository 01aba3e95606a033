"""``flask daemons``: its commands are built from the verb registry, as the other CLIs' are."""

from __future__ import annotations

from flask import Flask

from attachdaemon_core.control.verbs import CLI_VERBS, VERBS
from attachdaemon_flask import AttachDaemons


def test_flask_daemons_offers_every_command_verb_with_its_help_and_options() -> None:
    app = Flask("verbs")
    AttachDaemons(app)
    runner = app.test_cli_runner()
    listing = " ".join(runner.invoke(args=["daemons", "--help"]).output.split())
    for name in CLI_VERBS:
        help_text = VERBS[name].help or ""
        assert f"{name} {help_text[:1].upper()}{help_text[1:]}" in listing, name
        own = runner.invoke(args=["daemons", name, "--help"]).output
        for arg in VERBS[name].args:
            if arg.cli and arg.flags:
                assert arg.flags[-1] in own, (name, arg.name)


def test_arguments_reach_the_command_typed() -> None:
    app = Flask("verbs")
    AttachDaemons(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["daemons", "stop"])
    assert result.exit_code == 2 and result.output == "stop: name at least one daemon, or --all\n"
    result = runner.invoke(args=["daemons", "logs", "x", "-n", "many"])
    assert result.exit_code == 2 and "'many' is not a valid integer" in result.output
    result = runner.invoke(args=["daemons", "check"])
    assert (
        result.exit_code == 0
        and result.output == '0 daemon(s) declared in app.config["ATTACH_DAEMONS"]: OK\n'
    )
