"""Kept for the documented import path ``attachdaemon_core.gunicorn``.

The code lives in ``attachdaemon_core.hosts.gunicorn``.
"""

from attachdaemon_core.hosts import gunicorn as _impl
from attachdaemon_core.hosts.gunicorn import *  # noqa: F403

__all__ = _impl.__all__
