"""Kept for the documented import path ``attachdaemon_core.reader``.

The code lives in ``attachdaemon_core.hosts.reader``.
"""

from attachdaemon_core.hosts.reader import *  # noqa: F403
