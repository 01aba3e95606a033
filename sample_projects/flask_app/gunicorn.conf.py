"""gunicorn for the Flask sample: ``gunicorn -c gunicorn.conf.py`` (``scripts/demo.sh flask``).

The import installs attachdaemon's hooks: the master reads ``app.config["ATTACH_DAEMONS"]`` from
``create_app()`` in a short-lived child (it never imports the app), starts the daemons before the
workers boot, and stops the attached ones when gunicorn exits (Ctrl-C).
"""

import os

from attachdaemon_flask.gunicorn import *  # noqa: F403

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "app:create_app()"
bind = f"127.0.0.1:{os.environ.get('PORT', '8010')}"
workers = 2
worker_class = "sync"
# gunicorn >= 25.1 opens a control socket in ~/.gunicorn by default; the sample needs none.
control_socket_disable = True
