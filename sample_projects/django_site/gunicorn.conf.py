"""gunicorn for the Django sample: ``gunicorn -c gunicorn.conf.py`` (what scripts/demo.sh runs).

The import installs attachdaemon's hooks: the master reads ``ATTACH_DAEMONS`` from
demosite/settings.py in a short-lived child (it never imports the project), starts the daemons
before the workers boot, and stops the attached ones when gunicorn exits (Ctrl-C).
"""

import os

from attachdaemon_django.gunicorn import *  # noqa: F403

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "demosite.wsgi:application"
raw_env = ["DJANGO_SETTINGS_MODULE=demosite.settings"]
bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = 2
worker_class = "sync"
# gunicorn >= 25.1 opens a control socket in ~/.gunicorn by default; the sample needs none.
control_socket_disable = True
