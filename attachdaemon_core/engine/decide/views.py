"""What the decisions read of a daemon and of its spec: read-only views (the supervisor's
``Daemon`` records and ``DaemonSpec`` satisfy them as they are, so nothing is copied on the hot
path). For type checking only: imported under ``TYPE_CHECKING``, never at run time."""

from __future__ import annotations

from typing import Any, Protocol

from attachdaemon_core.engine.states import State


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


class ReloadSpec(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def autostart(self) -> bool: ...
    @property
    def leader(self) -> Any: ...
    @property
    def on_reload(self) -> str: ...
    def identity(self) -> tuple[Any, ...]: ...


class HasMaxBackoff(Protocol):
    @property
    def max_backoff(self) -> float: ...
