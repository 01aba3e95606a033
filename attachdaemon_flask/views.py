"""An optional status blueprint: an HTML page refreshing itself from a JSON endpoint (docs/status-json.md),
and ``/metrics``, the Prometheus text format (docs/monitoring.md).

``app.register_blueprint(status_blueprint(allow=lambda: current_user.is_admin), url_prefix="/daemons")``
— ``allow`` is required: the page shows pids and commands' errors, so who may see it is yours to say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template_string

from attachdaemon_core.hosts import metrics as prometheus
from attachdaemon_core.hosts.status import read_status

from .extension import state_of

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Daemons</title></head>
<body><h1>Daemons</h1><pre id="status">{{ text }}</pre>
<script>
(function () {
  var url = {{ url|tojson }};
  function refresh() {
    fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (d) { document.getElementById("status").textContent = JSON.stringify(d, null, 2); })
      .catch(function (e) { document.getElementById("status").textContent = String(e); })
      .then(function () { setTimeout(refresh, 2000); });
  }
  setTimeout(refresh, 2000);
})();
</script></body></html>
"""


def _runtime_dir() -> str:
    return state_of(current_app._get_current_object()).runtime_dir  # type: ignore[attr-defined]


def status_blueprint(allow: Callable[[], bool], name: str = "attachdaemon") -> Blueprint:
    bp = Blueprint(name, __name__)

    @bp.before_request
    def _allowed() -> None:
        if not allow():
            abort(403)

    @bp.get("/status.json")
    def status_json() -> Any:
        data, code = read_status(_runtime_dir())
        return jsonify(data), code, {"Cache-Control": "no-store"}

    @bp.get("/metrics")
    def metrics() -> Any:
        try:
            body, content_type = prometheus.render(_runtime_dir())
        except prometheus.MetricsUnavailable as exc:
            return f"{exc}\n", 501, {"Content-Type": "text/plain; charset=utf-8"}
        return body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"}

    @bp.get("/")
    def status_page() -> Any:
        import json

        from flask import url_for

        data, _ = read_status(_runtime_dir())
        return render_template_string(
            PAGE, text=json.dumps(data, indent=2), url=url_for(f"{name}.status_json")
        )

    return bp
