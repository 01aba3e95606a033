"""Hints for a misspelt name: one rule, used by the declarations, uWSGI lines and settings."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the closest of ``choices`` (a mapping gives its keys), or None."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
