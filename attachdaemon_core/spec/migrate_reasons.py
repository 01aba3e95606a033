"""Why a uWSGI option has no gunicorn setting, and what to use instead (docs/migrate.md).

Keyed by uWSGI option; :mod:`.migrate_gunicorn` gives a generic reason for any key not here.
"""

from __future__ import annotations

__all__ = ["REASONS"]

_ONE_MASTER = "gunicorn always runs a master process; nothing to set"
_STATIC = (
    "gunicorn serves no static files: serve them with WhiteNoise (Django: add "
    "whitenoise.middleware.WhiteNoiseMiddleware; Flask: app.wsgi_app = WhiteNoise(app.wsgi_app, root=…)) "
    "or the front web server (nginx location /static/ { alias …; })"
)
_SOCKET_PERMS = "gunicorn's unix socket: set umask (e.g. umask = 0o007) and user/group instead"
_PLUGIN = "gunicorn is a Python server that speaks HTTP itself; there are no plugins to load"
_LOGGING = "gunicorn's logging: accesslog, errorlog, access_log_format and loglevel; or logconfig_dict"
_VENV = "run gunicorn from that virtualenv (/path/to/venv/bin/gunicorn -c gunicorn.conf.py)"
_GEVENT = "worker_class = 'gevent' and worker_connections = N (pip install gevent); patching is the worker's"
_BUFFERS = (
    "gunicorn has no such buffer; its request limits are limit_request_line and limit_request_field_size"
)
_NA = "uWSGI-internal; gunicorn has no equivalent and needs none"
_BODY = "gunicorn hands the body to the app as it arrives; buffer uploads in nginx if needed"
_TIMEOUT = "gunicorn's timeout covers a whole request; the proxy's read timeout is the client side"
_RECYCLE = "no gunicorn equivalent: recycle workers with max_requests (and max_requests_jitter)"
_AS_USER = "not run (W008): a gunicorn on_starting hook, or a one-shot daemon (oneshot = true)"

REASONS: dict[str, str] = {
    "master": _ONE_MASTER,
    "vacuum": "gunicorn removes its unix socket and pidfile on exit by itself",
    "enable-threads": "Python threads always work under gunicorn",
    "lazy-apps": "gunicorn loads the app in each worker after fork by default (preload_app = False)",
    "lazy": "gunicorn loads the app in each worker after fork by default (preload_app = False)",
    "static-map": _STATIC,
    "static-map2": _STATIC,
    "check-static": _STATIC,
    "static-expires": _STATIC,
    "offload-threads": "gunicorn has no offloading; let the front web server or WhiteNoise send files",
    "buffer-size": _BUFFERS,
    "post-buffering": _BODY,
    "post-buffering-bufsize": _BODY,
    "thunder-lock": "gunicorn's workers accept in turn without a lock; nothing to set",
    "single-interpreter": "gunicorn runs one interpreter per worker; nothing to set",
    "need-app": "gunicorn exits when the app cannot be loaded; nothing to set",
    "strict": "gunicorn refuses unknown settings by itself",
    "plugin": _PLUGIN,
    "plugins": _PLUGIN,
    "chmod-socket": _SOCKET_PERMS,
    "chown-socket": _SOCKET_PERMS,
    "vhost": _NA,
    "manage-script-name": "set SCRIPT_NAME in the environment (raw_env) or the proxy's X-Script-Name",
    "mount": "one app per gunicorn; mount sub-apps in the app (werkzeug DispatcherMiddleware) or run two",
    "virtualenv": _VENV,
    "venv": _VENV,
    "home": _VENV,
    "gevent": _GEVENT,
    "gevent-early-monkey-patch": _GEVENT,
    "import": "import it from the app's wsgi module, or in a gunicorn hook (post_fork)",
    "http-keepalive": "gunicorn's keepalive setting (seconds), for the sync worker behind a proxy only",
    "http-timeout": _TIMEOUT,
    "socket-timeout": _TIMEOUT,
    "harakiri-verbose": _NA,
    "reload-on-rss": _RECYCLE,
    "max-worker-lifetime": _RECYCLE,
    "reload-mercy": "graceful_timeout (seconds a worker has to finish on restart)",
    "worker-reload-mercy": "graceful_timeout (seconds a worker has to finish on restart)",
    "cheaper": "gunicorn runs a fixed number of workers; change it with TTIN/TTOU signals",
    "cheaper-algo": "gunicorn runs a fixed number of workers; change it with TTIN/TTOU signals",
    "cheaper-initial": "gunicorn runs a fixed number of workers; change it with TTIN/TTOU signals",
    "cheaper-step": "gunicorn runs a fixed number of workers; change it with TTIN/TTOU signals",
    "memory-report": "no gunicorn equivalent; use statsd_host or an APM",
    "stats": "gunicorn's statsd_host sends metrics; `attachdaemon status` covers the daemons",
    "disable-logging": _LOGGING,
    "log-4xx": _LOGGING,
    "log-5xx": _LOGGING,
    "log-master": _LOGGING,
    "log-date": _LOGGING,
    "log-format": _LOGGING + " (access_log_format has its own %(…)s atoms)",
    "logformat": _LOGGING + " (access_log_format has its own %(…)s atoms)",
    "logformat-strftime": _LOGGING,
    "log-buffering": _LOGGING,
    "log-x-forwarded-for": "forwarded_allow_ips, and %({x-forwarded-for}i)s in access_log_format",
    "daemonize": "gunicorn's daemon = True and errorlog = PATH; a process manager (systemd) is better",
    "disable-write-exception": _NA,
    "max-fd": "raise the open-file limit in the service manager (LimitNOFILE=, ulimit -n)",
    "http-websockets": (
        "websockets need an ASGI server (uvicorn workers: worker_class = 'uvicorn.workers.UvicornWorker')"
    ),
    "http-to": "gunicorn has no router; the front web server forwards requests",
    "route": "gunicorn has no router; route in the front web server or in the app",
    "exec-pre": "not run: uWSGI runs it before privileges drop; run it before gunicorn (ExecStartPre)",
    "hook-as-user": _AS_USER,
    "exec-as-user": _AS_USER,
    "unenv": "remove the variable from gunicorn's environment before it starts",
    "ienv": "a variable for the daemons only; gunicorn gets its environment as it starts (raw_env for more)",
    "procname": "proc_name (the prefix gunicorn puts in process titles; setproctitle installed)",
    "auto-procname": "gunicorn titles its processes itself with setproctitle installed",
}
