"""Is a hook of a gunicorn configuration ours, or a function that calls ours?

A ``gunicorn.conf.py`` that defines its own ``on_starting``/``on_reload``/``on_exit`` must call
attachdaemon's from it, or the daemons would never start or never stop with the master. The
hooks of :mod:`attachdaemon_core.gunicorn` refuse, at start, a configuration that replaced one of
them with a function that never refers to ours; this module is that static look.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

__all__ = ["HOOK_MARK", "HOOK_NAMES", "replaced_hooks"]

HOOK_NAMES = ("on_starting", "on_reload", "on_exit")
HOOK_MARK = "_attachdaemon_hook"  # set on our hook functions, to the hook's name


def replaced_hooks(cfg: Any, module: str) -> list[str]:
    """The hooks in ``cfg`` that are neither ours nor a function that refers to ours, explained."""
    problems = []
    for name in HOOK_NAMES:
        fn = getattr(cfg, name, None)
        if fn is None or _refers_to_hook(fn, name, depth=3):
            continue
        where = _where(fn)
        problems.append(
            f"the {name} hook in the gunicorn configuration is {where}, which never calls "
            f"attachdaemon's {name}; call it from yours: `import {module}` at the top, then "
            f"`{module}.{name}(server)` in your {name}"
        )
    return problems


def _where(fn: Any) -> str:
    target = getattr(fn, "__func__", fn)
    code = getattr(target, "__code__", None)
    name = getattr(target, "__qualname__", repr(target))
    if code is None:
        return f"{name}()"
    return f"{name}() at {code.co_filename}:{code.co_firstlineno}"


def _refers_to_hook(fn: Any, name: str, depth: int) -> bool:
    """Does ``fn`` (or a function of the config it calls) refer to our hook ``name``?

    A static look at the names its code uses: our hook itself under any alias, or our module with
    the hook's name read from it. A hook that forgot to call ours refers to neither.
    """
    seen = fn
    while seen is not None:
        if getattr(seen, HOOK_MARK, None) == name:
            return True
        seen = getattr(seen, "__wrapped__", None)
    target = getattr(fn, "__func__", fn)
    if not isinstance(target, types.FunctionType):
        target = getattr(getattr(target, "__call__", None), "__func__", None)  # noqa: B004
        if not isinstance(target, types.FunctionType):
            return False
    code_names = set(_names(target.__code__))
    values = [target.__globals__.get(n) for n in code_names]
    values += [c.cell_contents for c in target.__closure__ or () if _filled(c)]
    for value in values:
        if getattr(value, HOOK_MARK, None) == name:
            return True
        if (
            isinstance(value, types.ModuleType)
            and value.__name__.startswith("attachdaemon_")
            and name in code_names
        ):
            return True
        if (
            depth > 0
            and isinstance(value, types.FunctionType)
            and value is not target
            and value.__globals__ is target.__globals__
            and _refers_to_hook(value, name, depth - 1)
        ):
            return True
    return False


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    yield from code.co_freevars
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)
