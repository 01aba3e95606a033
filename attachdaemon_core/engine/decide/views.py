"""What the decisions read of a daemon: a read-only view (the supervisor's ``Daemon`` records
satisfy it as they are, so nothing is copied on the hot path)."""

from __future__ import annotations

from typing import Protocol

from ...states import State


class SpecView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def depends_on(self) -> tuple[str, ...]: ...


class DaemonView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> SpecView: ...
    @property
    def state(self) -> State: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def launcher_pid(self) -> int | None: ...
    @property
    def ready(self) -> bool | None: ...
    @property
    def stopping(self) -> bool: ...
