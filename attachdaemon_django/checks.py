"""System checks: every problem of the declarations as ``attachdaemon.E…``/``W…``, exact messages."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from attachdaemon_core.spec.checks import check_specs
from attachdaemon_core.spec.model import ConfigError, Problem

from . import conf

TAG = "attachdaemon"


def register() -> None:
    checks.register(check_declarations, TAG)


def check_declarations(
    app_configs: Sequence[AppConfig] | None = None, **_kwargs: Any
) -> list[checks.CheckMessage]:
    try:
        specs = conf.specs()
    except ConfigError as exc:
        return [message(p) for p in exc.problems]
    return [message(p) for p in check_specs(specs)]


def message(p: Problem) -> checks.CheckMessage:
    """A Problem as a check message: ``daemon 'x', key 'y': what`` with its hint and stable id."""
    cls = checks.Error if p.code.startswith("E") else checks.Warning
    text = str(dataclasses.replace(p, hint=None))
    return cls(text, hint=p.hint, obj=_obj(p), id=f"attachdaemon.{p.code}")


def _obj(p: Problem) -> str:
    if p.key and p.key.startswith("ATTACH_DAEMONS") and p.daemon is None:
        return f"settings.{p.key}"
    return conf.SOURCE
