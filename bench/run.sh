#!/usr/bin/env bash
# One command for the whole benchmark: bash bench/run.sh [--quick] [--only uwsgi,...] [--skip phase,...]
# (--only attachdaemon-portable: attachdaemon beside itself on the portable process layer)
# Creates bench/.venv (attachdaemon installed editable, plus pyuwsgi, supervisor 4, circus 0.19,
# gunicorn), builds the C probe into bench/.build/, then runs bench.py.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
VENV=$HERE/.venv
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || { echo "cannot create $VENV"; exit 1; }
fi
STAMP=$VENV/.bench-installed
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16) v2"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1
    # Editable in "compat" mode: a plain path in a .pth file, as cheap at start-up as an installed
    # wheel. The default (strict) mode imports a finder (pathlib, importlib.util, urllib.parse) in
    # site.py, about 10 ms in every interpreter: the owner's and the guard's, not a user's cost.
    "$VENV/bin/pip" install -q -e "$ROOT" --config-settings editable_mode=compat \
        || { echo "cannot install attachdaemon into $VENV"; exit 1; }
    # Each peer on its own: one that cannot be installed is reported by the bench and skipped.
    for req in "pyuwsgi>=2.0,<2.1" "supervisor>=4,<5" "circus>=0.19,<0.20" "gunicorn>=22"; do
        "$VENV/bin/pip" install -q "$req" || echo "bench: could not install $req; it will be reported unavailable"
    done
    echo "$WANT" > "$STAMP"
fi
# Byte-compile attachdaemon as an installed wheel would be (the editable install is not, and
# PYTHONDONTWRITEBYTECODE may be set): otherwise every supervisor start compiles it from source.
"$VENV/bin/python" -m compileall -q "$ROOT/attachdaemon_core" "$ROOT/attachdaemon_django" "$ROOT/attachdaemon_flask" >/dev/null
mkdir -p "$HERE/.build"
if command -v cc >/dev/null 2>&1; then
    for prog in probe reaper; do
        if [ ! -x "$HERE/.build/$prog" ] || [ "$HERE/src/$prog.c" -nt "$HERE/.build/$prog" ]; then
            cc -O2 -static -o "$HERE/.build/$prog" "$HERE/src/$prog.c" 2>/dev/null \
                || cc -O2 -o "$HERE/.build/$prog" "$HERE/src/$prog.c" \
                || { echo "bench: cc failed for $prog"; exit 1; }
        fi
    done
else
    echo "bench: no C compiler; falling back to Python probes (probe start-up is ~15 ms slower)"
    for prog in probe reaper; do
        { echo "#!$VENV/bin/python3 -S"; cat "$HERE/src/$prog.py"; } > "$HERE/.build/$prog"
        chmod +x "$HERE/.build/$prog"
    done
fi
exec "$VENV/bin/python" "$HERE/bench.py" "$@"
