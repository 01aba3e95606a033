"""Declarations to specs: the model, native/uWSGI/TOML readers, host settings, checks, hints.

The bottom layer: imports nothing from engine, hosts, control or leader.

``attachdaemon_core.spec`` itself re-exports the model (``DaemonSpec``,
``ConfigError``, ...), its documented import path."""

from attachdaemon_core.spec.model import *  # noqa: F403
