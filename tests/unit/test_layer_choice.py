"""Choosing the process layer (docs/process-model.md, "Platforms"), and what the start log says
when the portable one is in use. Pure: the choice reads a given environment."""

from __future__ import annotations

import pytest

from attachdaemon_core.hosts import runtime
from attachdaemon_core.osproc import layer, proc

pytestmark = pytest.mark.unit


def test_the_variable_forces_a_layer__unset_or_empty_chooses_automatically() -> None:
    auto = "linux" if layer.linux_works() else "portable"
    assert layer.choose({}) == auto
    assert layer.choose({"ATTACHDAEMON_PLATFORM": " "}) == auto
    assert layer.choose({"ATTACHDAEMON_PLATFORM": "portable"}) == "portable"
    if layer.linux_works():
        assert layer.choose({"ATTACHDAEMON_PLATFORM": "linux"}) == "linux"


@pytest.mark.parametrize("value", ["macos", "Linux", "psutil", "1"])
def test_an_unknown_value_names_the_variable_and_the_allowed_values(value: str) -> None:
    with pytest.raises(layer.PlatformError) as err:
        layer.choose({"ATTACHDAEMON_PLATFORM": value})
    assert str(err.value) == (
        f"ATTACHDAEMON_PLATFORM={value!r} is not one of linux, portable; unset it to choose automatically"
    )


# Members of the linux layer that are plain POSIX, the same on every platform.
POSIX = {"group_exists", "signal_group", "getpid", "getppid", "geteuid"}


def test_the_portable_layer_overrides_every_member_the_linux_layer_implements_with_proc_or_pidfds() -> None:
    from attachdaemon_core.osproc.portable import Portable

    linux = {n: v for n, v in vars(proc.Live).items() if isinstance(v, staticmethod)}
    assert {"pidfd_open", "pidfd_signal", "close", "session_members", "kill_session", "stat"} <= set(linux)
    for name, member in linux.items():
        if name in POSIX:
            continue
        assert vars(Portable).get(name) not in (None, member), f"Portable does not override {name}"
        assert vars(Portable)[name].__func__.__module__ != proc.__name__, name
    assert Portable.subreaper is False and proc.Live.subreaper is True


def test_the_start_log_says_what_the_portable_layer_guarantees_less(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layer, "PORTABLE", False)
    assert not [n for n in runtime.start_warnings([], 4000) if "portable" in n]
    monkeypatch.setattr(layer, "PORTABLE", True)
    (note,) = [n for n in runtime.start_warnings([], 4000) if "portable" in n]
    assert "no subreaper" in note and "double-forks away from its process group" in note
    assert "SIGKILLed can survive" in note
