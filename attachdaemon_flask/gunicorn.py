"""gunicorn hooks for a Flask app: ``from attachdaemon_flask.gunicorn import *`` in gunicorn.conf.py.

The declarations come from the app's config, read by a short-lived child (which imports the app
as gunicorn serves it, or ``attach_daemons_flask_app``) at start and at each HUP: the master never
imports the app. The supervisor is the one ``flask run`` and ``flask daemons`` find (same
runtime-dir key). ``attach_daemons_runtime_dir`` and ``attach_daemons_wait_ready`` in
gunicorn.conf.py override the config keys of the same name. See :mod:`attachdaemon_core.hosts.gunicorn`.
"""

from __future__ import annotations

import os
from typing import Any

from attachdaemon_core.hosts.gunicorn import config_namespace, make_hooks, with_config_overrides
from attachdaemon_core.hosts.reader import Declared, read_in_child
from attachdaemon_core.spec.model import ConfigError

__all__ = ["nworkers_changed", "on_exit", "on_reload", "on_starting"]

CONF_APP = "attach_daemons_flask_app"


def read_app(server: Any) -> Declared:
    try:
        ns, key = config_namespace(server)
    except ConfigError:
        ns, key = {}, ""
    target = ns.get(CONF_APP) or getattr(server.app, "app_uri", None) or server.cfg.wsgi_app
    paths = [p for p in (server.cfg.pythonpath or "").split(",") if p]
    paths.append(server.cfg.chdir or os.getcwd())
    d = read_in_child("attachdaemon_flask.read_app", paths=paths, args=[str(target or "")])
    return with_config_overrides(d, server) if key else d


on_starting, on_reload, on_exit, nworkers_changed = make_hooks(__name__, read_app)
