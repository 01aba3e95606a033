#!/usr/bin/env bash
# Run a sample under gunicorn with its daemons, on a fresh machine: needs only Python 3.10+.
#
#   bash scripts/demo.sh [django|flask|stop-smart]     (default: django)
#
# Makes .venv on the first run (and installs attachdaemon with Django, Flask and gunicorn into
# it), prints the URL, then runs gunicorn in the foreground. The sample always runs kv (a small
# key-value daemon in Python) and, where installed, redis-server, memcached and a dedicated
# PostgreSQL. Ctrl-C stops gunicorn and the attached daemons (kv, memcached); the smart ones
# (redis, PostgreSQL) keep running, as uWSGI's smart daemons do, and the next start re-adopts
# them. `bash scripts/demo.sh stop-smart` ends them. PORT changes the web port.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
what=${1:-django}
case "$what" in
  django) dir=sample_projects/django_site; port=${PORT:-8000} ;;
  flask) dir=sample_projects/flask_app; port=${PORT:-8010} ;;
  stop-smart) ;;
  *) echo "usage: bash scripts/demo.sh [django|flask|stop-smart]" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "demo: needs Python 3.10 or newer as $PYTHON (set PYTHON=/path/to/python3)" >&2
    exit 1
  fi
  echo "demo: creating .venv (first run)"
  "$PYTHON" -m venv .venv
fi
# Checked from / so that the repository's own directory on sys.path does not count as installed.
if ! (cd / && "$ROOT/.venv/bin/python" -c 'import attachdaemon_django, attachdaemon_flask, gunicorn') 2>/dev/null
then
  echo "demo: installing attachdaemon with Django, Flask and gunicorn into .venv"
  .venv/bin/pip install -q -e '.[django,flask,gunicorn]'
fi

if [ "$what" = stop-smart ]; then
  exec .venv/bin/python sample_projects/sample_daemons.py stop-smart
fi

export PORT=$port
echo "demo: the $what sample: http://127.0.0.1:$port/"
echo "demo: Ctrl-C stops it (kv and memcached stop with it; redis and PostgreSQL keep running:"
echo "demo: 'bash scripts/demo.sh stop-smart' ends them)"
cd "$dir"
exec "$ROOT/.venv/bin/gunicorn" -c gunicorn.conf.py
