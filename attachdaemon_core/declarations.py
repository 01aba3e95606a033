"""Kept for the documented import path ``attachdaemon_core.declarations``.

The code lives in ``attachdaemon_core.spec.declarations``.
"""

from attachdaemon_core.spec.declarations import *  # noqa: F403
