"""attachdaemon for Django: add ``"attachdaemon_django"`` to INSTALLED_APPS and set ATTACH_DAEMONS.

``runserver`` (and commands built on it) starts the declared daemons for its whole life;
``manage.py daemons`` shows and controls them; ``attachdaemon_django.gunicorn`` gives the gunicorn
hooks; ``include("attachdaemon_django.urls")`` mounts a status page for staff users.
"""
