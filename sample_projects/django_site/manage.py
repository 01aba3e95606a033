#!/usr/bin/env python
"""The Django sample's manage.py: ``runserver`` starts the daemons, ``daemons status`` shows them."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
