"""gunicorn hooks for a Django project: ``from attachdaemon_django.gunicorn import *`` in gunicorn.conf.py.

The declarations come from the Django settings (DJANGO_SETTINGS_MODULE, from the master's
environment or gunicorn's ``raw_env``), read by a short-lived child at start and at each HUP:
the master never imports the project. The supervisor is the same one ``runserver`` and
``manage.py daemons`` find (same runtime-dir key). ``attach_daemons_runtime_dir`` and
``attach_daemons_wait_ready`` in gunicorn.conf.py override the settings of the same name.
See :mod:`attachdaemon_core.hosts.gunicorn` for the hooks themselves.
"""

from __future__ import annotations

import os
from typing import Any

from attachdaemon_core.hosts.gunicorn import make_hooks, with_config_overrides
from attachdaemon_core.hosts.reader import Declared, read_in_child

__all__ = ["nworkers_changed", "on_exit", "on_reload", "on_starting"]


def read_settings(server: Any) -> Declared:
    paths = [p for p in (server.cfg.pythonpath or "").split(",") if p]
    paths.append(server.cfg.chdir or os.getcwd())
    return with_config_overrides(read_in_child("attachdaemon_django.read_settings", paths=paths), server)


on_starting, on_reload, on_exit, nworkers_changed = make_hooks(__name__, read_settings)
