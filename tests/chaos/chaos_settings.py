"""The Django sample's settings with redis' persistence on, for the chaos suite only.

The chaos suite checks that nothing written to redis before a SIGKILL is lost, which needs the
append-only file with an fsync per write. The sample has no knob for that, so rather than edit
the sample, the suite runs gunicorn with ``-e DJANGO_SETTINGS_MODULE=tests.chaos.chaos_settings``
(the command line replaces the sample's ``raw_env``): everything is the sample's, except redis'
command, which gains ``--appendonly yes --appendfsync always``.
"""

import copy

from demosite.settings import *  # noqa: F403
from demosite.settings import ATTACH_DAEMONS as _SAMPLE_DAEMONS

ATTACH_DAEMONS = copy.deepcopy(_SAMPLE_DAEMONS)
if "redis" in ATTACH_DAEMONS:
    ATTACH_DAEMONS["redis"]["command"] = [
        *ATTACH_DAEMONS["redis"]["command"],
        *("--appendonly", "yes", "--appendfsync", "always"),
    ]
