"""WSGI entry point of the Django sample (gunicorn serves ``demosite.wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
application = get_wsgi_application()
