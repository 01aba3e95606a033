"""Configure Django once for the in-process tests of this directory."""

from __future__ import annotations

from pathlib import Path

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["attachdaemon_django"],
        DATABASES={},
        BASE_DIR=Path("/srv/site"),
        ATTACH_DAEMONS={},
        ROOT_URLCONF="tests.django.urls",
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    )
    django.setup()
