"""Env files (``env_file``): ``KEY=VALUE`` lines read the way honcho, foreman and docker compose
read ``.env`` (docs/declarations.md, "Env files").

The syntax is python-dotenv's (a dependency, imported only when an env file is declared): one
``KEY=VALUE`` per line, an optional ``export`` prefix, blank lines and ``#`` comments, values in
single quotes (literal) or double quotes (escapes such as ``\\n``; may span lines), a `` #``
comment after an unquoted value. Values are taken literally: ``${VAR}`` is not expanded (as honcho
and foreman; docker compose would expand it). A bare ``KEY`` without ``=`` sets nothing.

Values may be credentials: no message here ever shows a value or the text of a line, only the
file and the line number.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EnvFileError", "env_file_paths", "read_env_files"]


@dataclass(frozen=True)
class EnvFileError(Exception):
    """An env file that cannot be used; ``message`` names the file, never a value."""

    message: str
    hint: str | None = None


def read_env_files(paths: Sequence[str]) -> tuple[dict[str, str], list[EnvFileError]]:
    """The variables of ``paths`` (absolute), later files overriding earlier ones, and every
    problem found (a missing or unreadable file, a line that is not ``KEY=VALUE``)."""
    values: dict[str, str] = {}
    errors: list[EnvFileError] = []
    for path in paths:
        try:
            values.update(_read(path))
        except EnvFileError as exc:
            errors.append(exc)
    return values, errors


def _read(path: str) -> dict[str, str]:
    from dotenv.parser import parse_stream  # ~2 ms, only for declarations that name an env file

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise EnvFileError(f"env file {path} does not exist", "create it, or drop it from env_file") from None
    except IsADirectoryError:
        raise EnvFileError(f"env file {path} is a directory") from None
    except OSError as exc:
        raise EnvFileError(f"env file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise EnvFileError(f"env file {path} is not valid UTF-8") from None
    values: dict[str, str] = {}
    bad: list[int] = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            bad.append(binding.original.line)
        elif binding.key is not None and binding.value is not None:
            if "\0" in binding.value:
                bad.append(binding.original.line)
            else:
                values[binding.key] = binding.value
    if bad:
        lines = ", ".join(map(str, bad))
        raise EnvFileError(
            f"env file {path}: line {lines} is not KEY=VALUE",
            "write one KEY=VALUE per line; quote a value holding spaces or '#'",
        )
    return values


def env_file_paths(value: object, base_dir: str) -> tuple[str, ...] | None:
    """``env_file``'s value (a path or a list of paths) made absolute, or None when it is neither."""
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(items, (list, tuple)) or not items:
        return None
    paths = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item).strip():
            return None
        paths.append(os.path.normpath(os.path.join(base_dir, os.path.expanduser(os.fspath(item)))))
    return tuple(paths)
