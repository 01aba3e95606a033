"""attach-daemon family lines nobody on this project wrote, taken verbatim from public sources.

Each :class:`CorpusLine` holds one line as uWSGI reads it (``option = value``; a YAML, Nix or
command-line original is noted in ``source``), where it comes from, and what it must become: the
native declaration dict with *uWSGI's* meaning (read from uWSGI's core/daemons.c
``uwsgi_opt_add_daemon``/``uwsgi_opt_add_daemon2``, core/utils.c ``uwsgi_kvlist_parse`` and
``magic_sub``, core/ini.c), or the exact problem(s) a line is refused with. ``notes`` are the exact
W004 notes the parser adds where it follows uWSGI in ignoring what the user probably meant (an
attach-daemon2 key without ``=``, or with a space after ``, ``), which ``attachdaemon check``
shows. Paths stay verbatim; runtime tests move them under a temporary directory.

``DISAGREEMENTS`` lists the lines where the parser does not give uWSGI's meaning today: what
uWSGI does and what the parser gives instead. Their ``expect`` is uWSGI's meaning, not the parser's.
None is left: the five found (``%%``, a bare ``daemonize``, keys after ``, ``) are now read as
uWSGI reads them.

Shapes, for lines that run as declared: accepted by the parser with uWSGI's meaning, and (for
smart lines) with the pidfile named on the command line or written by a launcher. ``shape`` is
None for refused lines, lines the parser misreads (``DISAGREEMENTS``), lines holding template or
doc markup (``{{ … }}``, ``**UID**``), and smart lines whose pidfile is set in a config file or
data directory (``mysqld --defaults-file``, ``postgres -D``, a ``redis.conf``):

- ``foreground``: a binary, or an interpreter running a script, that stays in the foreground; a
  smart one writes its pidfile itself (``mongod --pidfilepath``); ``nice -n 5 celery`` is one
  (``nice`` execs celery in place);
- ``self-daemonizing``: smart, the program forks into the background and writes the pidfile
  naming itself (``memcached -d -P``, ``redis-server --daemonize yes --pidfile``);
- ``launcher-script``: smart, a script or launcher starts the daemon in the background, which
  writes the pidfile under another name (``my_daemon.sh``, ``apache2ctl -k start``);
- ``console-script``: a Python script run directly, as pip's entry points are (``celery``,
  ``daphne``, ``rq-dashboard``, ``./manage.py``);
- ``sh-c``: the line needs ``/bin/sh -c "… exec …"`` (a leading ``VAR=value``, ``$VAR``,
  redirections, ``~``);
- ``smart2``: the supervisor daemonizes it and writes the pidfile. No public line found offers one
  that runs: the only ``smart-attach-daemon2`` line uses ``%(…)``, and uWSGI ignores the
  ``daemonize`` items of the ``attach-daemon2`` lines found (a bare key, or one after ``, ``), so
  those run as plain attached daemons.

``CORPUS_ENV`` holds the environment variables the lines' ``$(NAME)`` placeholders need.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError, Problem
from attachdaemon_core.spec.uwsgi_lines import parse_uwsgi_line

__all__ = [
    "CORPUS_ENV",
    "DISAGREEMENTS",
    "LINES",
    "SHAPES",
    "CorpusLine",
    "Disagreement",
    "corpus_counts",
    "corpus_env",
    "problems_text",
    "source_repository",
]

SHAPES = ("foreground", "self-daemonizing", "launcher-script", "console-script", "sh-c", "smart2")
CORPUS_ENV = {"HOME": "/home/corpus", "CELERY_NICE_LEVEL": "5"}
PLACEHOLDER_HINT = "write the value out, or use $(NAME) for an environment variable"


@dataclass(frozen=True)
class CorpusLine:
    line: str  # "option = value", verbatim value
    source: str  # "owner/repo:path" or doc page; say if the original was YAML/XML
    expect: dict[str, object] | None  # the exact native declaration dict parse_uwsgi_line must give
    error: str | None  # or: the exact problem message(s) it must give (refused with reason)
    shape: str | None  # runtime shape if it is runnable; None otherwise
    notes: tuple[str, ...] = ()  # the exact W004 notes (str(problem)) the line gets, accepted or not


@dataclass(frozen=True)
class Disagreement:
    """A line the parser reads differently from uWSGI: ``uwsgi`` says what uWSGI does; the parser
    gives ``parser`` (a declaration dict) or refuses it with ``parser_error``; parse_declarations
    then refuses its dict with ``declarations_error``, or builds the spec it stands for."""

    uwsgi: str
    parser: dict[str, object] | None
    parser_error: str | None
    declarations_error: str | None = None


def _placeholder(line: str, token: str) -> str:
    """The problem text for a line refused for uWSGI's ini-only ``%(…)``/``%d`` magic."""
    return f"uWSGI line {line!r}: uWSGI placeholder {token!r} is not supported ({PLACEHOLDER_HINT})"


def _refused(line: str, token: str, source: str) -> CorpusLine:
    return CorpusLine(line, source, None, _placeholder(line, token), None)


def _spaced_keys(daemon: str, *keys: str) -> tuple[str, ...]:
    """The notes for attach-daemon2 keys written after ``, ``: uWSGI compares keys exactly
    (strcmp in uwsgi_kvlist_parse), so `` pidfile`` matches nothing and is ignored."""
    return tuple(
        f"daemon {daemon!r}, key 'attach-daemon2': key ' {key}' has a space, so it is not {key!r}: "
        "uWSGI ignores it, and so does attachdaemon (remove the space after the ',' to use it)"
        for key in keys
    )


_UNBIT_DOCS = "unbit/unbit-docs:docs/{}@b475c45 (ini code block in reST)"
_DOCS = "unbit/uwsgi-docs:AttachingDaemons.rst@ecb5670 (ini code block in reST)"
_CHANGELOG = "unbit/uwsgi-docs:Changelog-1.9.9.rst@ecb5670 (ini code block in reST; also unbit/uwsgi#269)"
_UWSGI_IT = "unbit/uwsgi.it:snippets/{}@a07bc74 (ini code block in Markdown)"
_CONTAINERS = "unbit/uwsgi.it:services/containers.ini@a07bc74"
_DISPATCHARR = "Dispatcharr/Dispatcharr:docker/{}@fd413f0"
_DISPATCHARR_PR = "Dispatcharr/Dispatcharr:docker/{}@c8e84e1 (pull request #1296's commit)"
_HEALTHCHECKS = "healthchecks/healthchecks:docker/uwsgi.ini@29b5ec2"
_IMPRESSO = "impresso/impresso-user-admin:README.md@46cd8f9 (ini code block in Markdown)"
_UDATA = "opendatateam/udata:docs/installation.md@96d0052 (ini code block in Markdown)"
_PDFUPLOAD = "swasher/pdfupload:{}@075a8d4"
_ALEKSIS = "deepanshumehtaa/AlekSIS-Core:docs/admin/01_install.rst@b215f55 (ini code block in reST)"
_SALT = (
    "mitodl/salt-ops:pillar/apps/redash.sls@{} (YAML folded scalar 'attach-daemon2: >-' in a "
    "Salt/Jinja pillar, its lines joined by single spaces as YAML folds them; Jinja left as written)"
)
_ISSUE = "unbit/uwsgi#{} (issue text, https://github.com/unbit/uwsgi/issues/{})"

_NICE_WORKER = (
    "attach-daemon = nice -n $(CELERY_NICE_LEVEL) celery -A dispatcharr worker -Q celery "
    "-n default@%%h --autoscale=6,1"
)
_NICE_DVR = (
    "attach-daemon = nice -n $(CELERY_NICE_LEVEL) celery -A dispatcharr worker -Q dvr "
    "-n dvr@%%h --pool=threads --concurrency=20"
)
_NIX_DAEMONIZE = "attach-daemon2 = cmd=./run-celery.sh,daemonize"
_WEB2PY = (
    "attach-daemon2 = cmd=python web2py.py -S player -M -R applications/player/private/tools/run_mprpc.py,"
    " pidfile=/tmp/mprpc.pid, touch=/home/www-data/web2py/applications/player/private/tools/run_mprpc.py,"
    "chdir=/home/www-data/web2py"
)
_REDASH_ESCAPED = (
    "attach-daemon2 = cmd=/usr/local/pyenv/versions/{{ python_version }}/bin/celery worker "
    "-A redash.worker -B -c2 -Qscheduled_queries\\,queries\\,celery --pidfile /opt/{{ app_name }}/celery.pid "
    "-Ofair --maxtasksperchild=10 -linfo, pidfile=/opt/{{ app_name }}/celery.pid, daemonize=true, "
    "touch=/opt/{{ app_name}}/deploy_complete.txt"
)
_REDASH_UNESCAPED = (
    "attach-daemon2 = cmd=/usr/local/pyenv/versions/{{ python_version }}/bin/celery worker "
    "-A redash.worker -B -c2 -Qqueries,celery --pidfile /opt/{{ app_name }}/celery.pid -Ofair, "
    "pidfile=/opt/{{ app_name }}/celery.pid, daemonize=true, touch=/opt/{{ app_name}}/deploy_complete.txt"
)
_REDASH_COMMAND = [
    "/usr/local/pyenv/versions/{{",
    "python_version",
    "}}/bin/celery",
    "worker",
    "-A",
    "redash.worker",
    "-B",
    "-c2",
    "-Qscheduled_queries,queries,celery",  # the escaped commas stay in the argument
    "--pidfile",
    "/opt/{{",
    "app_name",
    "}}/celery.pid",
    "-Ofair",
    "--maxtasksperchild=10",
    "-linfo",
]


LINES: tuple[CorpusLine, ...] = (
    # --- uWSGI's own documentation ---------------------------------------------------------------
    CorpusLine(
        "attach-daemon = memcached -p 11311 -u roberto",
        _DOCS,
        {"name": "memcached", "command": ["memcached", "-p", "11311", "-u", "roberto"]},
        None,
        "foreground",
    ),
    CorpusLine(
        "smart-attach-daemon = /tmp/memcached.pid memcached -p 11311 -d -P /tmp/memcached.pid -u roberto",
        _DOCS,
        {
            "name": "memcached",
            "pidfile": "/tmp/memcached.pid",
            "command": ["memcached", "-p", "11311", "-d", "-P", "/tmp/memcached.pid", "-u", "roberto"],
        },
        None,
        "self-daemonizing",
    ),
    CorpusLine(
        "smart-attach-daemon = /tmp/mongo1.pid mongod --pidfilepath /tmp/mongo1.pid --dbpath foo1 --port"
        " 50001",
        _DOCS,
        {
            "name": "mongod",
            "pidfile": "/tmp/mongo1.pid",
            "command": ["mongod", "--pidfilepath", "/tmp/mongo1.pid", "--dbpath", "foo1", "--port", "50001"],
        },
        None,
        "foreground",
    ),
    CorpusLine(
        "smart-attach-daemon = /tmp/mongo2.pid mongod --pidfilepath /tmp/mongo2.pid --dbpath foo2 --port"
        " 50002",
        _DOCS,
        {
            "name": "mongod",
            "pidfile": "/tmp/mongo2.pid",
            "command": ["mongod", "--pidfilepath", "/tmp/mongo2.pid", "--dbpath", "foo2", "--port", "50002"],
        },
        None,
        "foreground",
    ),
    CorpusLine(
        "smart-attach-daemon = /db/foobar1/postmaster.pid /usr/lib/postgresql/9.1/bin/postgres -D"
        " /db/foobar1",
        _DOCS,
        {
            "name": "postgres",
            "pidfile": "/db/foobar1/postmaster.pid",
            "command": ["/usr/lib/postgresql/9.1/bin/postgres", "-D", "/db/foobar1"],
        },
        None,
        None,
    ),
    CorpusLine(
        "smart-attach-daemon = /tmp/celery.pid celery -A tasks worker --pidfile=/tmp/celery.pid",
        _DOCS,
        {
            "name": "celery",
            "pidfile": "/tmp/celery.pid",
            "command": ["celery", "-A", "tasks", "worker", "--pidfile=/tmp/celery.pid"],
        },
        None,
        "console-script",
    ),
    _refused(
        "smart-attach-daemon = %(chdir)/tmp/pids/delayed_job.pid %(chdir)/script/delayed_job start",
        "%(chdir)",
        _DOCS,
    ),
    CorpusLine(
        "attach-daemon = /usr/sbin/dropbear -j -k -p 1022 -E -F -I 300",
        _DOCS,
        {
            "name": "dropbear",
            "command": ["/usr/sbin/dropbear", "-j", "-k", "-p", "1022", "-E", "-F", "-I", "300"],
        },
        None,
        "foreground",
    ),
    CorpusLine(
        "legion-smart-attach-daemon = mylegion /tmp/celery-beat.pid celery beat"
        " --pidfile=/tmp/celery-beat.pid",
        _DOCS,
        {
            "name": "celery",
            "leader": {"lock": "mylegion", "backend": "file"},
            "pidfile": "/tmp/celery-beat.pid",
            "command": ["celery", "beat", "--pidfile=/tmp/celery-beat.pid"],
        },
        None,
        "console-script",
    ),
    CorpusLine(
        "attach-daemon2 = cmd=my_daemon.sh,pidfile=/tmp/my.pid,uid=33,gid=33,stopsignal=3",
        _DOCS,
        {
            "name": "my_daemon.sh",
            "command": ["my_daemon.sh"],
            "pidfile": "/tmp/my.pid",
            "user": 33,
            "group": 33,
            "stop_signal": 3,
        },
        None,
        "launcher-script",
    ),
    CorpusLine(
        "legion-attach-daemon = legion1 memcached -p 10001",
        _CHANGELOG,
        {
            "name": "memcached",
            "leader": {"lock": "legion1", "backend": "file"},
            "command": ["memcached", "-p", "10001"],
        },
        None,
        "foreground",
    ),
    CorpusLine(
        "legion-smart-attach-daemon = legion1 /tmp/memcached.pid memcached -p 10002 -d -P /tmp/memcached.pid",
        _CHANGELOG,
        {
            "name": "memcached",
            "leader": {"lock": "legion1", "backend": "file"},
            "pidfile": "/tmp/memcached.pid",
            "command": ["memcached", "-p", "10002", "-d", "-P", "/tmp/memcached.pid"],
        },
        None,
        "self-daemonizing",
    ),
    # --- unbit's hosting snippets (uwsgi.it) -----------------------------------------------------
    CorpusLine(
        "attach-daemon2 = ns_pid=1,touch=/etc/uwsgi/configurator.pl,command=perl /etc/uwsgi/configurator.pl",
        _CONTAINERS,
        None,
        "daemon 'perl', key 'attach-daemon2': ns_pid (a new PID namespace) is not supported "
        "(run it in a container)",
        None,
    ),
    CorpusLine(
        "attach-daemon2 = ns_pid=1,uid=33,gid=33,touch=/etc/uwsgi/dominator.pl,command=perl"
        " /etc/uwsgi/dominator.pl",
        _CONTAINERS,
        None,
        "daemon 'perl', key 'attach-daemon2': ns_pid (a new PID namespace) is not supported "
        "(run it in a container)",
        None,
    ),
    CorpusLine(
        "smart-attach-daemon = /run/apache2.pid apache2ctl -k start -d $(HOME)/etc/apache2",
        _UWSGI_IT.format("apache.md"),
        {
            "name": "apache2ctl",
            "pidfile": "/run/apache2.pid",
            "command": ["apache2ctl", "-k", "start", "-d", "/home/corpus/etc/apache2"],
        },
        None,
        "launcher-script",
    ),
    CorpusLine(
        "smart-attach-daemon = /run/apache2/apache2.pid apache2ctl -k start",
        _UWSGI_IT.format("apache.md"),
        {
            "name": "apache2ctl",
            "pidfile": "/run/apache2/apache2.pid",
            "command": ["apache2ctl", "-k", "start"],
        },
        None,
        "launcher-script",
    ),
    CorpusLine(
        "attach-daemon = node index.js",
        _UWSGI_IT.format("ghost.md"),
        {"name": "node", "command": ["node", "index.js"]},
        None,
        "foreground",
    ),
    CorpusLine(
        "smart-attach-daemon = /run/memcached.pid memcached -m 128 -d -P /run/memcached.pid",
        _UWSGI_IT.format("memcached.md"),
        {
            "name": "memcached",
            "pidfile": "/run/memcached.pid",
            "command": ["memcached", "-m", "128", "-d", "-P", "/run/memcached.pid"],
        },
        None,
        "self-daemonizing",
    ),
    _refused(
        "smart-attach-daemon = %(mongopath)/mongod.pid mongod --dbpath %(mongopath) "
        "--pidfilepath %(mongopath)/mongod.pid",
        "%(mongopath)",
        _UWSGI_IT.format("mongodb.md"),
    ),
    CorpusLine(  # ",180": uWSGI checks the missing pidfile 180 times, once a second, before respawning
        "smart-attach-daemon = $(HOME)/db.mysql/mysqld.pid,180 mysqld --defaults-file=$(HOME)/.my.cnf",
        _UWSGI_IT.format("mysql.md"),
        {
            "name": "mysqld",
            "pidfile": "/home/corpus/db.mysql/mysqld.pid",
            "start_timeout": 180,
            "command": ["mysqld", "--defaults-file=/home/corpus/.my.cnf"],
        },
        None,
        None,
    ),
    CorpusLine(
        "attach-daemon = /usr/sbin/nullmailer-send",
        _UWSGI_IT.format("nullmailer.md"),
        {"name": "nullmailer-send", "command": ["/usr/sbin/nullmailer-send"]},
        None,
        "foreground",
    ),
    _refused(
        "smart-attach-daemon = %(pg)/postmaster.pid /usr/lib/postgresql/9.6/bin/postgres -D %(pg)",
        "%(pg)",
        _UWSGI_IT.format("postgresql.md"),
    ),
    CorpusLine(
        "attach-daemon = redis-server",
        _UWSGI_IT.format("redis.md"),
        {"name": "redis-server", "command": ["redis-server"]},
        None,
        "foreground",
    ),
    CorpusLine(  # the snippet copies Debian's redis.conf, which says "daemonize yes"
        "smart-attach-daemon = $(HOME)/run/redis-server.pid /usr/bin/redis-server $(HOME)/etc/redis.conf",
        _UWSGI_IT.format("redis.md"),
        {
            "name": "redis-server",
            "pidfile": "/home/corpus/run/redis-server.pid",
            "command": ["/usr/bin/redis-server", "/home/corpus/etc/redis.conf"],
        },
        None,
        None,
    ),
    # --- unbit's older hosting docs (unbit-docs), and django-uwsgi's ---------------------------------
    CorpusLine(
        "attach-daemon = /opt/unbit/couchdb120/bin/couchdb -a /proc/unbit/db.couch/couch.ini",
        _UNBIT_DOCS.format("couchdb.rst"),
        {
            "name": "couchdb",
            "command": ["/opt/unbit/couchdb120/bin/couchdb", "-a", "/proc/unbit/db.couch/couch.ini"],
        },
        None,
        "foreground",
    ),
    CorpusLine(  # '~' is the shell's: uWSGI's /bin/sh -c expands it
        "smart-attach-daemon = /proc/unbit/db.couch/couch.pid /opt/unbit/couchdb120/bin/couchdb -a"
        " ~/db.couch/couch.ini",
        _UNBIT_DOCS.format("couchdb.rst"),
        {
            "name": "couchdb",
            "pidfile": "/proc/unbit/db.couch/couch.pid",
            "command": ["/bin/sh", "-c", "exec /opt/unbit/couchdb120/bin/couchdb -a ~/db.couch/couch.ini"],
            "shell": True,
            "process_name": "/opt/unbit/couchdb120/bin/couchdb",
        },
        None,
        None,
    ),
    CorpusLine(
        "attach-daemon = /opt/unbit/mongodb222/bin/mongod -f /proc/unbit/db.mongo/mongod.conf",
        _UNBIT_DOCS.format("mongodb.rst"),
        {
            "name": "mongod",
            "command": ["/opt/unbit/mongodb222/bin/mongod", "-f", "/proc/unbit/db.mongo/mongod.conf"],
        },
        None,
        "foreground",
    ),
    CorpusLine(
        "smart-attach-daemon = /proc/unbit/db.mongo/mongod.pid /opt/unbit/mongodb222/bin/mongod -f"
        " ~/db.mongo/mongod.conf",
        _UNBIT_DOCS.format("mongodb.rst"),
        {
            "name": "mongod",
            "pidfile": "/proc/unbit/db.mongo/mongod.pid",
            "command": ["/bin/sh", "-c", "exec /opt/unbit/mongodb222/bin/mongod -f ~/db.mongo/mongod.conf"],
            "shell": True,
            "process_name": "/opt/unbit/mongodb222/bin/mongod",
        },
        None,
        None,
    ),
    CorpusLine(  # '**…**' is reST bold in the doc, and a glob to sh (matching nothing, it stays)
        "attach-daemon = java -Djetty.host= **127.0.0.2** -Djetty.port= **19898** -jar start.jar"
        " ./etc/jetty.xml",
        _UNBIT_DOCS.format("Solr.rst") + " (a parsed-literal block: ** marks bold)",
        {
            "name": "java",
            "command": [
                "/bin/sh",
                "-c",
                "exec java -Djetty.host= **127.0.0.2** -Djetty.port= **19898** -jar start.jar"
                " ./etc/jetty.xml",
            ],
            "shell": True,
        },
        None,
        None,
    ),
    CorpusLine(
        "smart-attach-daemon = /proc/unbit/pids/memcached.pid memcached -m 64 -l 127.0.0.2 -p **UID** -U 0 "
        "-d -P /proc/unbit/pids/memcached.pid",
        _UNBIT_DOCS.format("memcached.rst") + " (**UID** stands for the account's uid)",
        {
            "name": "memcached",
            "pidfile": "/proc/unbit/pids/memcached.pid",
            "command": [
                "/bin/sh",
                "-c",
                "exec memcached -m 64 -l 127.0.0.2 -p **UID** -U 0 -d -P /proc/unbit/pids/memcached.pid",
            ],
            "shell": True,
            "process_name": "memcached",
        },
        None,
        None,
    ),
    CorpusLine(
        "attach-daemon = /opt/unbit/redis2417/bin/redis-server /proc/unbit/db.redis/redis.conf",
        _UNBIT_DOCS.format("redis.rst"),
        {
            "name": "redis-server",
            "command": ["/opt/unbit/redis2417/bin/redis-server", "/proc/unbit/db.redis/redis.conf"],
        },
        None,
        "foreground",
    ),
    _refused(
        "smart-attach-daemon = %(pg)/postmaster.pid /opt/unbit/postgresql924/bin/postgres -D %(pg)",
        "%(pg)",
        _UNBIT_DOCS.format("postgresql.rst"),
    ),
    CorpusLine(
        "attach-daemon = memcached -p 11311",
        "unbit/django-uwsgi:docs/command.rst@f6d4524 (a Python settings dict: "
        "UWSGI = {'attach-daemon': ['memcached -p 11311', …]}, each list item one option)",
        {"name": "memcached", "command": ["memcached", "-p", "11311"]},
        None,
        "foreground",
    ),
    CorpusLine(
        "attach-daemon = celery -A my.project.tasks worker",
        "unbit/django-uwsgi:docs/command.rst@f6d4524 (a Python settings dict: "
        "UWSGI = {'attach-daemon': [… 'celery -A my.project.tasks worker']})",
        {"name": "celery", "command": ["celery", "-A", "my.project.tasks", "worker"]},
        None,
        "console-script",
    ),
    # --- Dispatcharr ------------------------------------------------------------------------------
    CorpusLine(  # uWSGI's ini reader turns "%%" into "%": celery gets "-n default@%h"
        _NICE_WORKER,
        _DISPATCHARR.format("uwsgi.ini"),
        {
            "name": "nice",
            "command": [
                "nice",
                "-n",
                "5",
                "celery",
                "-A",
                "dispatcharr",
                "worker",
                "-Q",
                "celery",
                "-n",
                "default@%h",
                "--autoscale=6,1",
            ],
        },
        None,
        "foreground",
    ),
    CorpusLine(
        _NICE_DVR,
        _DISPATCHARR.format("uwsgi.ini"),
        {
            "name": "nice",
            "command": [
                "nice",
                "-n",
                "5",
                "celery",
                "-A",
                "dispatcharr",
                "worker",
                "-Q",
                "dvr",
                "-n",
                "dvr@%h",
                "--pool=threads",
                "--concurrency=20",
            ],
        },
        None,
        "foreground",
    ),
    CorpusLine(
        "attach-daemon = nice -n $(CELERY_NICE_LEVEL) celery -A dispatcharr beat",
        _DISPATCHARR.format("uwsgi.ini"),
        {"name": "nice", "command": ["nice", "-n", "5", "celery", "-A", "dispatcharr", "beat"]},
        None,
        "foreground",
    ),
    CorpusLine(
        "attach-daemon = daphne -b 0.0.0.0 -p 8001 dispatcharr.asgi:application",
        _DISPATCHARR.format("uwsgi.ini"),
        {
            "name": "daphne",
            "command": ["daphne", "-b", "0.0.0.0", "-p", "8001", "dispatcharr.asgi:application"],
        },
        None,
        "console-script",
    ),
    CorpusLine(
        "attach-daemon = redis-server --protected-mode no",
        _DISPATCHARR.format("uwsgi.dev.ini"),
        {"name": "redis-server", "command": ["redis-server", "--protected-mode", "no"]},
        None,
        "foreground",
    ),
    CorpusLine(
        "attach-daemon = cd /app/frontend && npm run dev",
        _DISPATCHARR.format("uwsgi.dev.ini"),
        None,
        "uWSGI line 'attach-daemon = cd /app/frontend && npm run dev': shell syntax '&&' is not "
        'supported: a daemon is one command (declare it natively as {"command": "npm run dev", '
        '"cwd": "/app/frontend"})',
        None,
    ),
    CorpusLine(
        "smart-attach-daemon = /tmp/redis.pid redis-server --daemonize yes --pidfile /tmp/redis.pid",
        _DISPATCHARR_PR.format("uwsgi.ini"),
        {
            "name": "redis-server",
            "pidfile": "/tmp/redis.pid",
            "command": ["redis-server", "--daemonize", "yes", "--pidfile", "/tmp/redis.pid"],
        },
        None,
        "self-daemonizing",
    ),
    CorpusLine(
        "smart-attach-daemon = /tmp/redis.pid redis-server --daemonize yes --pidfile /tmp/redis.pid "
        "--protected-mode no",
        _DISPATCHARR_PR.format("uwsgi.dev.ini"),
        {
            "name": "redis-server",
            "pidfile": "/tmp/redis.pid",
            "command": [
                "redis-server",
                "--daemonize",
                "yes",
                "--pidfile",
                "/tmp/redis.pid",
                "--protected-mode",
                "no",
            ],
        },
        None,
        "self-daemonizing",
    ),
    # --- healthchecks ------------------------------------------------------------------------------
    CorpusLine(
        "attach-daemon = ./manage.py sendalerts --skip-checks",
        _HEALTHCHECKS,
        {"name": "manage.py", "command": ["./manage.py", "sendalerts", "--skip-checks"]},
        None,
        "console-script",
    ),
    CorpusLine(
        "attach-daemon = ./manage.py sendreports --loop --skip-checks",
        _HEALTHCHECKS,
        {"name": "manage.py", "command": ["./manage.py", "sendreports", "--loop", "--skip-checks"]},
        None,
        "console-script",
    ),
    _refused(  # inside "if-env = SMTPD_PORT": %(_) is the variable's value
        "attach-daemon = ./manage.py smtpd --port %(_) --skip-checks",
        "%(_)",
        _HEALTHCHECKS,
    ),
    # --- attach-daemon2 in the wild ---------------------------------------------------------------
    CorpusLine(  # reloadsignal acts on a smart daemon only with notifypid, which is absent
        "attach-daemon2 = cmd=/home/respa/run-exchange-sync.sh,pidfile=/home/respa/exchange_sync.pid,"
        "reloadsignal=15,touch=/home/respa/service_state/touch_to_reload",
        "City-of-Helsinki/respa:README.md@58421a2 (YAML: 'uwsgi:' mapping, 'attach-daemon2: cmd=…')",
        {
            "name": "run-exchange-sync.sh",
            "command": ["/home/respa/run-exchange-sync.sh"],
            "pidfile": "/home/respa/exchange_sync.pid",
            "touch": ["/home/respa/service_state/touch_to_reload"],
        },
        None,
        "launcher-script",
    ),
    CorpusLine(  # a leading VAR=value: sh exports it to celery
        "attach-daemon2= cmd=ENV=prod /home/impresso/.virtualenvs/impresso/bin/celery -A impresso worker"
        " -l info -c 1",
        _IMPRESSO,
        {
            "name": "celery",
            "command": [
                "/bin/sh",
                "-c",
                "ENV=prod exec /home/impresso/.virtualenvs/impresso/bin/celery -A impresso worker -l info"
                " -c 1",
            ],
            "shell": True,
        },
        None,
        "sh-c",
    ),
    CorpusLine(
        "attach-daemon2= cmd=ENV=dev"
        " /opt/impresso/.local/share/virtualenvs/impresso-user-admin-zSElDo3l/bin/celery "
        "-A impresso worker -l info -c 1",
        _IMPRESSO,
        {
            "name": "celery",
            "command": [
                "/bin/sh",
                "-c",
                "ENV=dev exec /opt/impresso/.local/share/virtualenvs/impresso-user-admin-zSElDo3l/bin/celery "
                "-A impresso worker -l info -c 1",
            ],
            "shell": True,
        },
        None,
        "sh-c",
    ),
    CorpusLine(  # reloadsignal on an attached daemon: uWSGI stops it with 15 when reloading
        "attach-daemon2 = stopsignal=15,reloadsignal=15,cmd=.virtualenv/bin/celery -A app.tasks worker "
        "--pidfile=/tmp/celery_example.pid --loglevel=debug --logfile logs/celery.log --concurrency=5",
        "gipi/blog:posts/2015/12/30/manage-processes.md@fa6ef4b (ini code block in Markdown)",
        {
            "name": "celery",
            "stop_signal": 15,
            "command": [
                ".virtualenv/bin/celery",
                "-A",
                "app.tasks",
                "worker",
                "--pidfile=/tmp/celery_example.pid",
                "--loglevel=debug",
                "--logfile",
                "logs/celery.log",
                "--concurrency=5",
            ],
            "on_reload": "restart",
            "reload_stop_signal": 15,
        },
        None,
        "console-script",
    ),
    CorpusLine(  # uWSGI's kvlist ignores an item without '=': "daemonize" alone sets nothing, so
        # the script (not public) runs as an attached daemon, in the foreground as uWSGI needs it
        _NIX_DAEMONIZE,
        "rnl-dei/nixrnl:hosts/selene.nix@d9f8db4 (Nix attribute "
        "'attach-daemon2 = \"cmd=./run-celery.sh,daemonize\";' in services.uwsgi vassals)",
        {"name": "run-celery.sh", "command": ["./run-celery.sh"]},
        None,
        "foreground",
        (
            "daemon 'run-celery.sh', key 'attach-daemon2': key 'daemonize' has no value: uWSGI ignores "
            "it, and so does attachdaemon (write daemonize=1 to use it)",
        ),
    ),
    CorpusLine(  # uWSGI's kvlist matches keys exactly: " pidfile" and " touch" are unknown, ignored
        _WEB2PY,
        _ISSUE.format(2024, 2024),
        {
            "name": "python",
            "command": [
                "python",
                "web2py.py",
                "-S",
                "player",
                "-M",
                "-R",
                "applications/player/private/tools/run_mprpc.py",
            ],
            "cwd": "/home/www-data/web2py",
        },
        None,
        "foreground",
        _spaced_keys("python", "pidfile", "touch"),
    ),
    CorpusLine(  # the same: only cmd= counts; the escaped commas stay in celery's -Q argument
        _REDASH_ESCAPED,
        _SALT.format("7430807"),
        {"name": "daemon", "command": _REDASH_COMMAND},
        None,
        None,
        _spaced_keys("daemon", "pidfile", "daemonize", "touch"),
    ),
    CorpusLine(  # uWSGI splits cmd= at the unescaped comma and silently drops the rest of the command
        _REDASH_UNESCAPED,
        _SALT.format("0791bd0"),
        None,
        "daemon 'daemon', key 'attach-daemon2': unknown attach-daemon2 key "
        "'celery --pidfile /opt/{{ app_name }}/celery.pid -Ofair' (if it is part of the command, "
        "write the ',' before it as '\\,')",
        None,
        _spaced_keys("daemon", "pidfile", "daemonize", "touch"),
    ),
    # --- celery, rq, django-q and friends ---------------------------------------------------------
    _refused(
        "smart-attach-daemon = /tmp/celery-worker.pid %(home)/bin/celery -A udata.worker worker "
        "--pidfile=/tmp/celery-worker.pid",
        "%(home)",
        _UDATA,
    ),
    _refused(
        "smart-attach-daemon = /tmp/celery-beat.pid %(home)/bin/celery -A udata.worker beat "
        "--pidfile=/tmp/celery-beat.pid",
        "%(home)",
        _UDATA,
    ),
    _refused(
        "smart-attach-daemon = /tmp/pybusmap-celery.pid %(home)/bin/celery -A celerytasks.celery worker"
        " --beat "
        "--pidfile=/tmp/pybusmap-celery.pid --logfile=%(base)/log/celery/%n.log",
        "%(home)",
        "antsar/pybusmap:README.md@e66a07c (ini code block in Markdown)",
    ),
    _refused(
        "smart-attach-daemon = %(basedir)/celery.pid %(basedir)/bin/celery -A helfertool worker -c 2 "
        "--pidfile=%(basedir)/celery.pid",
        "%(basedir)",
        "helfertool/docs:source/deploy/installation/uwsgi.rst@552b064 (ini code block in reST)",
    ),
    _refused(
        "smart-attach-daemon2 = %(pidfile)_celery %(virtualenv)/bin/celery --app={{django_settings_folder}} "
        "worker -l info --pidfile=%(pidfile)_celery",
        "%(pidfile)",
        "raffienficiaud/ansible-django-webapp-deployment-role:README.md@587e148 "
        "(YAML list item of uwsgi_additional_options, a quoted 'option = value' string)",
    ),
    CorpusLine(
        "attach-daemon = celery -A aleksis.core worker --concurrency=4",
        _ALEKSIS,
        {"name": "celery", "command": ["celery", "-A", "aleksis.core", "worker", "--concurrency=4"]},
        None,
        "console-script",
    ),
    CorpusLine(
        "attach-daemon = celery -A aleksis.core beat",
        _ALEKSIS,
        {"name": "celery", "command": ["celery", "-A", "aleksis.core", "beat"]},
        None,
        "console-script",
    ),
    CorpusLine(
        "attach-daemon = python /home/swasher/pdfupload/manage.py rqworker default",
        _PDFUPLOAD.format("README.md") + " (indented ini block in Markdown)",
        {"name": "python", "command": ["python", "/home/swasher/pdfupload/manage.py", "rqworker", "default"]},
        None,
        "foreground",
    ),
    _refused(
        "attach-daemon = python %(chdir)/manage.py rqworker default",
        "%(chdir)",
        _PDFUPLOAD.format("provision/roles/uwsgi/templates/uwsgi.ini.j2") + " (ini Jinja template)",
    ),
    CorpusLine(
        "attach-daemon = rq-dashboard",
        _PDFUPLOAD.format("provision/roles/uwsgi/templates/uwsgi.ini.j2") + " (ini Jinja template)",
        {"name": "rq-dashboard", "command": ["rq-dashboard"]},
        None,
        "console-script",
    ),
    CorpusLine(
        "attach-daemon = python3.11 ./manage.py qcluster",
        "Uberspace/lab:source/guide_mailman-3.rst@ca0109d (ini code block in reST)",
        {"name": "python3.11", "command": ["python3.11", "./manage.py", "qcluster"]},
        None,
        "foreground",
    ),
    CorpusLine(
        "attach-daemon = ./manage.py qcluster",
        "maxking/docker-mailman:web/mailman-web/uwsgi.ini@5a6509b",
        {"name": "manage.py", "command": ["./manage.py", "qcluster"]},
        None,
        "console-script",
    ),
    CorpusLine(
        "attach-daemon = /data/project/qs-dev/www/python/venv/bin/python3 "
        "/data/project/qs-dev/www/python/src/manage.py send_batches",
        "wikimediabrasil/quickstatements3:uwsgi.ini@8307e7a",
        {
            "name": "python3",
            "command": [
                "/data/project/qs-dev/www/python/venv/bin/python3",
                "/data/project/qs-dev/www/python/src/manage.py",
                "send_batches",
            ],
        },
        None,
        "foreground",
    ),
    # --- from uWSGI's issue tracker ---------------------------------------------------------------
    CorpusLine(  # uWSGI would take "celery" for the pidfile and run "flower …"
        "smart-attach-daemon = celery flower -A MyApp --address=0.0.0.0 --port=5555 "
        "--log-file-prefix=/var/log/Myapp/flower.log",
        _ISSUE.format(2561, 2561),
        None,
        "uWSGI line 'smart-attach-daemon = celery flower -A MyApp --address=0.0.0.0 --port=5555 "
        "--log-file-prefix=/var/log/Myapp/flower.log': the pidfile is missing ('celery' is not a "
        "pidfile path) (write 'PIDFILE CMD' with a space between them)",
        None,
    ),
    CorpusLine(  # a socket for a pidfile: accepted as uWSGI reads it, but it never names a pid
        "smart-attach-daemon = /tmp/celery_flower.sock celery flower -A MyApp --address=0.0.0.0 "
        "--unix-socket='/tmp/celery_flower.sock' --log-file-prefix=/var/log/Myapp/flower.log",
        _ISSUE.format(2561, 2561),
        {
            "name": "celery",
            "pidfile": "/tmp/celery_flower.sock",
            "command": [
                "celery",
                "flower",
                "-A",
                "MyApp",
                "--address=0.0.0.0",
                "--unix-socket=/tmp/celery_flower.sock",
                "--log-file-prefix=/var/log/Myapp/flower.log",
            ],
        },
        None,
        None,
    ),
    CorpusLine(
        "smart-attach-daemon = /proc/unbit/tmp/memcached.pid memcached -s %d/memcached.socket -d "
        "-P /proc/unbit/tmp/memcached.pid",
        _ISSUE.format(65, 65),
        None,
        _placeholder(
            "smart-attach-daemon = /proc/unbit/tmp/memcached.pid memcached -s %d/memcached.socket -d "
            "-P /proc/unbit/tmp/memcached.pid",
            "%d",
        ),
        None,
    ),
    CorpusLine(
        "attach-daemon = /usr/bin/upaas_admin builder_worker",
        _ISSUE.format(461, 461),
        {"name": "upaas_admin", "command": ["/usr/bin/upaas_admin", "builder_worker"]},
        None,
        "console-script",
    ),
    # --- smart2, adapted ------------------------------------------------------------------------
    # No public configuration offers a smart-attach-daemon2 line that runs (the one found uses
    # %(…)); these two put real foreground commands from the lines above into the smart2 form,
    # the form uWSGI documents for exactly such commands. Adapted here, not found verbatim.
    CorpusLine(
        "smart-attach-daemon2 = /tmp/celery-worker.pid celery -A my.project.tasks worker",
        "adapted: the command of an attach-daemon line of unbit/django-uwsgi:docs/command.rst@f6d4524,"
        " in smart2 form",
        {
            "name": "celery",
            "pidfile": "/tmp/celery-worker.pid",
            "command": ["celery", "-A", "my.project.tasks", "worker"],
            "daemonize": True,
        },
        None,
        "smart2",
    ),
    CorpusLine(
        "smart-attach-daemon2 = /tmp/memcached-fg.pid memcached -p 11311",
        "adapted: the command of an attach-daemon line of unbit/django-uwsgi:docs/command.rst@f6d4524,"
        " in smart2 form",
        {
            "name": "memcached",
            "pidfile": "/tmp/memcached-fg.pid",
            "command": ["memcached", "-p", "11311"],
            "daemonize": True,
        },
        None,
        "smart2",
    ),
)


DISAGREEMENTS: dict[str, Disagreement] = {}


@contextlib.contextmanager
def corpus_env() -> Iterator[None]:
    """Set :data:`CORPUS_ENV` in ``os.environ`` for the duration, then restore what was there."""
    saved = {name: os.environ.get(name) for name in CORPUS_ENV}
    os.environ.update(CORPUS_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def problems_text(problems: Sequence[Problem]) -> str:
    """Problems as a corpus ``error``: each one as ``str(problem)``, one a line."""
    return "\n".join(str(p) for p in problems)


def source_repository(source: str) -> str:
    """``owner/repo`` of a source (a path, a commit or an issue number may follow)."""
    head = source.split(maxsplit=1)[0]
    for mark in (":", "@", "#"):
        head = head.partition(mark)[0]
    return head


def corpus_counts() -> tuple[int, int, int, int]:
    """(lines, accepted, refused_with_reason, unclear), by parsing every line both ways.

    A line is accepted when ``parse_uwsgi_line`` gives no error and ``parse_declarations`` (the
    path hosts use) accepts it; refused with reason when either refuses it with a message for
    every problem; unclear when a refusal has an empty message or a parse raises anything else.
    """
    accepted = refused = unclear = 0
    with corpus_env():
        for item in LINES:
            try:
                _, problems = parse_uwsgi_line(item.line)
                errors = [p for p in problems if not p.code.startswith("W")]
                if not errors:
                    parse_declarations([item.line], base_dir="/srv/app")
            except ConfigError as exc:
                errors = list(exc.problems)
            except Exception:  # anything else is what "unclear" counts
                unclear += 1
                continue
            if not errors:
                accepted += 1
            elif all(p.message.strip() for p in errors):
                refused += 1
            else:
                unclear += 1
    return len(LINES), accepted, refused, unclear
