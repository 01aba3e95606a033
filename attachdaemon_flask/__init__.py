"""attachdaemon for Flask: ``AttachDaemons(app)`` and ``app.config["ATTACH_DAEMONS"]``.

``flask run`` and ``app.run()`` start the declared daemons for their whole life; ``flask daemons``
shows and controls them; ``attachdaemon_flask.gunicorn`` gives the gunicorn hooks;
``attachdaemon_flask.views.status_blueprint`` is an optional status page.
"""

from __future__ import annotations

from .extension import AttachDaemons

__all__ = ["AttachDaemons"]
