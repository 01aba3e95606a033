"""The Flask sample: the same home page as the Django sample, from an app factory.

``flask --app app run`` or gunicorn (``gunicorn -c gunicorn.conf.py``) start the daemons of
``ATTACH_DAEMONS`` — from ../sample_daemons.py, shared with the Django sample: ``kv`` (the Python
key-value daemon in ../kvstore.py) always, and redis-server, memcached and a dedicated PostgreSQL
where those programs are installed.
"""

import sys
from pathlib import Path

from flask import Flask, render_template, request, url_for

from attachdaemon_flask import AttachDaemons
from attachdaemon_flask.views import status_blueprint

SAMPLES_DIR = Path(__file__).resolve().parent.parent  # kvstore.py, sample_daemons.py, templates/
if str(SAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(SAMPLES_DIR))

import sample_daemons  # noqa: E402

daemons = AttachDaemons()


def create_app() -> Flask:
    app = Flask(__name__, template_folder=str(SAMPLES_DIR / "templates"))
    app.config["ATTACH_DAEMONS"] = sample_daemons.declarations("flask")
    # Hold gunicorn's master until the ready probes pass (PostgreSQL's first start runs initdb).
    app.config["ATTACH_DAEMONS_WAIT_READY"] = 60
    daemons.init_app(app)

    # attachdaemon's status page and JSON. Who may see them is the app's call: here requests from
    # 127.0.0.1, since gunicorn binds 127.0.0.1 only (never do that behind a reverse proxy).
    status = status_blueprint(allow=lambda: sample_daemons.is_loopback(request.remote_addr))
    app.register_blueprint(status, url_prefix="/daemons")

    @app.get("/")
    def home() -> tuple[str, int, dict[str, str]]:
        counters = sample_daemons.visit("flask", set(app.config["ATTACH_DAEMONS"]))
        page = render_template(
            "home.html",
            framework="Flask",
            counters=counters,
            status_json=url_for("attachdaemon.status_json"),
            status_page=url_for("attachdaemon.status_page"),
        )
        return page, 200, {"Cache-Control": "no-store"}

    return app
