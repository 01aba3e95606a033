"""Settings of the Django sample: a home page served through the daemons declared below.

``ATTACH_DAEMONS`` comes from ../sample_daemons.py (shared with the Flask sample): ``kv`` (the
Python key-value daemon in ../kvstore.py) always, and redis-server, memcached and a dedicated
PostgreSQL where those programs are installed; each missing one is skipped with a line saying so.
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SAMPLES_DIR = BASE_DIR.parent  # kvstore.py, sample_daemons.py and the page template live there
if str(SAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(SAMPLES_DIR))

import sample_daemons  # noqa: E402

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "sample-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
INSTALLED_APPS = ["attachdaemon_django"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "demosite.views.loopback_sees_daemons",
]
ROOT_URLCONF = "demosite.urls"
WSGI_APPLICATION = "demosite.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SAMPLES_DIR / "templates"],
        "APP_DIRS": True,
    }
]
DATABASES: dict[str, dict[str, str]] = {}  # the counters live in the daemons, not in a Django DB
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets the process's TZ from this (its default is America/Chicago)

ATTACH_DAEMONS = sample_daemons.declarations("django")
# Hold gunicorn's master (and so the workers' first requests) until the daemons' ready probes
# pass: the first start of PostgreSQL runs initdb.
ATTACH_DAEMONS_WAIT_READY = 60
