"""``depends_on``: its converter (a list of names, or a mapping of name to a condition and
``restart``) and the checks across declarations (unknown names, self-dependencies, cycles, and a
``completed`` condition on a daemon that never completes). docs/declarations.md, "depends_on".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attachdaemon_core.spec.converters import Context, Invalid, show_value
from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import CONDITIONS, Condition, Dependency, Problem

__all__ = ["convert_depends_on", "dependency_problems", "split_dependencies"]

# docker compose's spellings, named in the hint (not accepted: one spelling per meaning).
_COMPOSE = {
    "service_healthy": "ready",
    "service_started": "started",
    "service_completed_successfully": "completed",
}
_ENTRY_KEYS = ("condition", "restart")
_SHAPE = "a list of daemon names, or a mapping of name to {condition = …, restart = …}"


def convert_depends_on(value: object, ctx: Context) -> tuple[Dependency, ...]:
    """``["redis"]`` or ``{redis = {condition = "ready", restart = true}, migrate = "completed"}``."""
    if isinstance(value, Mapping):
        return tuple(_entry(name, spec) for name, spec in value.items())
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        hint = f"write [{value!r}]" if isinstance(value, str) else None
        raise Invalid(f"must be {_SHAPE}, not {show_value(value)}", hint)
    for item in value:
        if not isinstance(item, str) or not item:
            raise Invalid(f"must be a list of daemon names, not one holding {show_value(item)}")
    return tuple(Dependency(name) for name in dict.fromkeys(value))


def _entry(name: object, spec: object) -> Dependency:
    if not isinstance(name, str) or not name:
        raise Invalid(f"must be {_SHAPE}; {show_value(name)} is not a daemon name")
    if isinstance(spec, str):
        return Dependency(name, _condition(name, spec))
    if not isinstance(spec, Mapping):
        hint = f'write {{{name} = {{condition = "ready"}}}}'
        raise Invalid(f"{name!r}: must be a condition or a mapping, not {show_value(spec)}", hint)
    for key in spec:
        if key not in _ENTRY_KEYS:
            hint = did_you_mean(str(key), _ENTRY_KEYS) or "use condition and restart"
            raise Invalid(f"{name!r}: unknown key {key!r}", hint)
    restart = spec.get("restart", False)
    if not isinstance(restart, bool):
        raise Invalid(f"{name!r}: restart must be true or false, not {show_value(restart)}")
    return Dependency(name, _condition(name, spec.get("condition", "ready")), restart)


def _condition(name: str, value: object) -> Condition:
    for condition in CONDITIONS:
        if value == condition:
            return condition
    if isinstance(value, str) and value in _COMPOSE:
        hint = f"docker compose's {value} is {_COMPOSE[value]!r} here"
    else:
        hint = (did_you_mean(value, CONDITIONS) if isinstance(value, str) else None) or (
            "use " + ", ".join(map(repr, CONDITIONS))
        )
    raise Invalid(f"{name!r}: unknown condition {show_value(value)}", hint)


def split_dependencies(fields: dict[str, Any]) -> tuple[Dependency, ...]:
    """Turn the converted ``depends_on`` into the spec's names and conditions (in place)."""
    deps: tuple[Dependency, ...] = fields.pop("depends_on", ())
    if deps:
        fields["depends_on"] = tuple(d.name for d in deps)
        fields["dependencies"] = tuple(d for d in deps if d != Dependency(d.name))
    return deps


def dependency_problems(
    graph: Mapping[str, Sequence[Dependency]], names: set[str], never_complete: set[str]
) -> list[Problem]:
    """Unknown names, self-dependencies, ``completed`` on a daemon restarted ``always`` (it never
    completes: ``never_complete``), and cycles, in declaration order."""
    problems = []
    for name, deps in graph.items():
        for dep in deps:
            if dep.name == name:
                problems.append(Problem("a daemon cannot depend on itself", name, "depends_on"))
            elif dep.name not in names:
                hint = did_you_mean(dep.name, sorted(names - {name}))
                problems.append(Problem(f"unknown daemon {dep.name!r}", name, "depends_on", hint))
            elif dep.condition == "completed" and dep.name in never_complete:
                message = f"{dep.name!r} never completes (it is restarted always)"
                hint = f"declare {dep.name!r} with oneshot = true, or use condition 'ready' or 'started'"
                problems.append(Problem(message, name, "depends_on", hint))
    edges = {name: [d.name for d in deps] for name, deps in graph.items()}
    for cycle in _cycles(edges):
        message = "dependency cycle " + " -> ".join(cycle)
        problems.append(Problem(message, daemon=cycle[0], key="depends_on"))
    return problems


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each dependency cycle once, starting and ending at its earliest-declared daemon."""
    order = {name: i for i, name in enumerate(graph)}
    edges = {name: [d for d in deps if d in order and d != name] for name, deps in graph.items()}
    done: set[str] = set()
    found: dict[frozenset[str], list[str]] = {}

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :]
            i = cycle.index(min(cycle, key=order.__getitem__))
            found.setdefault(frozenset(cycle), [*cycle[i:], *cycle[:i], cycle[i]])
            return
        if name in done:
            return
        for dep in edges[name]:
            visit(dep, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])
    return list(found.values())
