"""gunicorn hooks for a Django project: ``from attachdaemon_django.gunicorn import *`` in gunicorn.conf.py.

The declarations come from the Django settings (DJANGO_SETTINGS_MODULE, from the master's
environment or gunicorn's ``raw_env``), read by a short-lived child at start and at each HUP:
the master never imports the project. The supervisor is the same one ``runserver`` and
``manage.py daemons`` find (same runtime-dir key). ``attach_daemons_runtime_dir`` and
``attach_daemons_wait_ready`` in gunicorn.conf.py override the settings of the same name.
See :mod:`attachdaemon_core.gunicorn` for the hooks themselves.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from attachdaemon_core.gunicorn import config_namespace, make_hooks, settings_from
from attachdaemon_core.reader import Declared, read_in_child
from attachdaemon_core.spec import ConfigError

__all__ = ["nworkers_changed", "on_exit", "on_reload", "on_starting"]


def read_settings(server: Any) -> Declared:
    paths = [p for p in (server.cfg.pythonpath or "").split(",") if p]
    paths.append(server.cfg.chdir or os.getcwd())
    d = read_in_child("attachdaemon_django.read_settings", paths=paths)
    try:
        ns, key = config_namespace(server)
    except ConfigError:
        return d  # hooks set without a config file: the settings alone decide
    over = settings_from(ns, key)
    return dataclasses.replace(
        d,
        runtime_dir=over.get("runtime_dir", d.runtime_dir),
        wait_ready=over.get("wait_ready", d.wait_ready),
    )


on_starting, on_reload, on_exit, nworkers_changed = make_hooks(__name__, read_settings)
