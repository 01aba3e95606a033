"""``python -m attachdaemon_flask.read_app APP``: the gunicorn master's reader child for Flask.

APP is what gunicorn serves (``module:app`` or ``module:create_app()``), or
``attach_daemons_flask_app`` from gunicorn.conf.py. The app is loaded the way ``flask --app``
loads it, and must have been given ``AttachDaemons``; the answer goes on the reader pipe.
"""

from __future__ import annotations

from attachdaemon_core.hosts.reader import Declared, child_main


def produce(args: list[str]) -> Declared:
    from flask import Flask
    from flask.cli import ScriptInfo

    from .extension import EXTENSION, AttachDaemons, read_state

    if not args:
        raise RuntimeError("no Flask app named: set attach_daemons_flask_app in gunicorn.conf.py")
    app = ScriptInfo(app_import_path=args[0]).load_app()
    if not isinstance(app, Flask):
        raise RuntimeError(
            f"{args[0]} is not a Flask app ({type(app).__name__}); name the Flask app with "
            "attach_daemons_flask_app = 'module:app' in gunicorn.conf.py"
        )
    if EXTENSION not in app.extensions:
        AttachDaemons().init_app(app)
    return read_state(app).declared


if __name__ == "__main__":
    child_main(produce)
