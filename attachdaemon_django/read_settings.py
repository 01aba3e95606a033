"""``python -m attachdaemon_django.read_settings``: the gunicorn master's reader child for Django.

It loads the settings module named by DJANGO_SETTINGS_MODULE (no ``django.setup()``: the
declarations live in settings) and answers on the reader pipe (:mod:`attachdaemon_core.hosts.reader`).
"""

from __future__ import annotations

import os

from attachdaemon_core.hosts.reader import Declared, child_main


def produce(_args: list[str]) -> Declared:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise RuntimeError(
            "DJANGO_SETTINGS_MODULE is not set in the gunicorn master; set it in its environment "
            "or with raw_env = ['DJANGO_SETTINGS_MODULE=mysite.settings'] in gunicorn.conf.py"
        )
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018 - imports the settings module
    from . import conf

    return conf.declared()


if __name__ == "__main__":
    child_main(produce)
