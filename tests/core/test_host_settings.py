"""host_settings.read: the one rule every host (Django, Flask, gunicorn, TOML) checks its settings by."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attachdaemon_core.spec import host_settings
from attachdaemon_core.spec.host_settings import (
    GUNICORN,
    SETTINGS,
    TOML,
    HostSettings,
    read,
    with_environment,
)
from attachdaemon_core.spec.model import ConfigError


def error_of(raw: dict[str, object], spelling: host_settings.Spelling = SETTINGS) -> str:
    with pytest.raises(ConfigError) as info:
        read(raw, spelling=spelling, base_dir="/srv/app", source="here")
    assert info.value.source == "here"
    return str(info.value)


def test_nothing_set_gives_the_defaults() -> None:
    for spelling in (SETTINGS, GUNICORN, TOML):
        assert read({}, spelling=spelling, base_dir="/srv", source="s") == HostSettings()
    none_values = {key: None for key in SETTINGS.keys.values()}
    assert read(none_values, spelling=SETTINGS, base_dir="/srv", source="s") == HostSettings()


def test_good_values_in_each_spelling() -> None:
    expected = HostSettings(runtime_dir="/run/app", wait_ready=2.5, leader_backend="file", autostart=True)
    raw = {"runtime_dir": "/run/app", "wait_ready": 2.5, "leader_backend": "file", "autostart": True}
    assert read(raw, spelling=TOML, base_dir="/srv", source="s") == expected
    upper = {f"ATTACH_DAEMONS_{k.upper()}": v for k, v in raw.items()}
    assert read(upper, spelling=SETTINGS, base_dir="/srv", source="s") == expected
    lower = {f"attach_daemons_{k}": v for k, v in raw.items()}
    # gunicorn's hooks own the daemons: it has no autostart setting, and never reads one
    assert read(lower, spelling=GUNICORN, base_dir="/srv", source="s") == HostSettings(
        runtime_dir="/run/app", wait_ready=2.5
    )


def test_a_relative_runtime_dir_starts_in_the_base_dir_and_home_is_expanded(tmp_path: Path) -> None:
    def rd(value: object) -> str | None:
        return read({"runtime_dir": value}, spelling=TOML, base_dir=str(tmp_path), source="s").runtime_dir

    assert rd("run") == str(tmp_path / "run")
    assert rd("./run/../state/") == str(tmp_path / "state")
    assert rd(tmp_path / "p") == str(tmp_path / "p")  # a pathlib.Path, as Django's BASE_DIR / "run"
    assert rd("~/ad") == os.path.join(os.path.expanduser("~"), "ad")
    assert rd("/abs/dir") == "/abs/dir"


def test_every_problem_at_once_naming_each_key() -> None:
    raw = {
        "ATTACH_DAEMONS_RUNTIME_DIR": "  ",
        "ATTACH_DAEMONS_WAIT_READY": -1,
        "ATTACH_DAEMONS_LEADER_BACKEND": "mysql://db/x",
        "ATTACH_DAEMONS_AUTOSTART": "yes",
    }
    assert error_of(raw) == "\n".join(
        [
            "invalid daemon declarations in here:",
            "  - key 'ATTACH_DAEMONS_RUNTIME_DIR': must be a directory path, not '  '",
            "  - key 'ATTACH_DAEMONS_WAIT_READY': must be a number of seconds >= 0, not -1",
            "  - key 'ATTACH_DAEMONS_LEADER_BACKEND': unsupported leader backend scheme 'mysql'",
            "  - key 'ATTACH_DAEMONS_AUTOSTART': must be True or False, not 'yes'",
        ]
    )


@pytest.mark.parametrize("bad", [True, float("inf"), float("nan"), 10**10, -0.5, [1], "10"])
def test_wait_ready_is_a_finite_number_of_seconds(bad: object) -> None:
    text = error_of({"attach_daemons_wait_ready": bad}, GUNICORN)
    assert text.startswith("invalid daemon declarations in here:\n  - key 'attach_daemons_wait_ready': ")
    assert "must be a number of seconds >= 0" in text


def test_a_number_in_a_string_is_refused_with_the_fix() -> None:
    assert error_of({"wait_ready": "10"}, TOML).endswith(
        "key 'wait_ready': must be a number of seconds >= 0, not '10' (use a number such as 10, not a string)"
    )


def test_the_bounds_are_inclusive() -> None:
    for good in (0, 0.0, 10**9):
        assert read({"wait_ready": good}, spelling=TOML, base_dir="/", source="s").wait_ready == float(good)


def test_booleans_are_spelled_as_the_host_writes_them() -> None:
    assert error_of({"autostart": 1}, TOML).endswith("key 'autostart': must be true or false, not 1")
    assert error_of({"ATTACH_DAEMONS_AUTOSTART": 1}).endswith("must be True or False, not 1")


def test_a_credential_is_never_echoed() -> None:
    text = error_of(
        {
            "ATTACH_DAEMONS_LEADER_BACKEND": "mysql://admin:hunter2@db/x",
            "ATTACH_DAEMONS_RUNTIME_DIR": 5,
            "ATTACH_DAEMONS_WAIT_READY": "password=hunter2",
        }
    )
    assert "hunter2" not in text
    assert "key 'ATTACH_DAEMONS_WAIT_READY'" in text and "key 'ATTACH_DAEMONS_LEADER_BACKEND'" in text


def test_the_environment_overrides_wait_ready() -> None:
    declared = HostSettings(wait_ready=3.0, autostart=True)
    assert with_environment(declared, {}) == declared
    assert with_environment(declared, {"ATTACH_DAEMONS_WAIT_READY": " "}) == declared
    assert with_environment(declared, {"ATTACH_DAEMONS_WAIT_READY": "0.5"}) == HostSettings(
        wait_ready=0.5, autostart=True
    )


@pytest.mark.parametrize(("text", "shown"), [("abc", "'abc'"), ("-1", "-1.0"), ("inf", "inf")])
def test_a_bad_environment_value_is_an_error_naming_the_variable(text: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_environment(HostSettings(), {"ATTACH_DAEMONS_WAIT_READY": text})
    assert str(info.value) == (
        "invalid daemon declarations in the environment:\n"
        f"  - key 'ATTACH_DAEMONS_WAIT_READY': must be a number of seconds >= 0, not {shown}"
    )
