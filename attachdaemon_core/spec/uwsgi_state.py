"""What the parsers of one uWSGI line share (docs/declarations.md, "uWSGI lines"): the line's
state, the error that ends its parsing, and the digit test every numeric uWSGI value goes through.

Used by :mod:`.uwsgi_lines` (the option family), :mod:`.uwsgi_command` (the command) and
:mod:`.uwsgi_kv` (attach-daemon2's ``key=value`` list).
"""

from __future__ import annotations

__all__ = ["LineError", "LineState", "digits"]


class LineError(Exception):
    """A problem that ends the parsing of a line."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class LineState:
    """What one line has produced so far: declaration fields, program, problems."""

    def __init__(self, leader_backend: str, cron_harakiri: float | None = None) -> None:
        self.leader_backend = leader_backend
        self.cron_harakiri = cron_harakiri  # the list's cron-harakiri: a cron line's default timeout
        self.decl: dict[str, object] = {}
        self.program = ""
        self.problems: list[tuple[str, str | None]] = []
        self.notes: list[tuple[str, str | None]] = []  # warnings (W004): the line is still accepted

    def problem(self, message: str, hint: str | None = None) -> None:
        self.problems.append((message, hint))


def digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²' and other digits int() refuses."""
    return text.isascii() and text.isdigit()
