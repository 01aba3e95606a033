#!/usr/bin/env bash
# Set up a virtualenv in .venv (first run only), then run the linters, the type checker, the
# guard-rails (module size, import contracts) and the tests, in two passes: every selected test on
# the process layer chosen for this machine, then the tests marked both_layers (the event table,
# the safety tests, runserver and flask run; tests/conftest.py BOTH_LAYERS) again with the portable
# layer forced (ATTACHDAEMON_PLATFORM=portable, issue 14). Both passes run; either failing fails.
# Usage: bash scripts/test.sh [pytest arguments]     e.g. -m unit: the pure tests, in seconds
# The arguments go to both passes; the second one keeps only the both_layers tests among those they
# select (a -m EXPR becomes -m "(EXPR) and both_layers"), and is left out under -m unit.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}  # noxfile.py passes each session's own
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e '.[dev]'
echo "== ruff check"; "$VENV/bin/ruff" check .
echo "== ruff format --check"; "$VENV/bin/ruff" format --check .
echo "== mypy --strict"; "$VENV/bin/mypy"
echo "== module size"; "$VENV/bin/python" scripts/check_module_size.py
echo "== import contracts"; "$VENV/bin/lint-imports" --no-cache --no-logo
status=0
echo "== pytest"; "$VENV/bin/python" -m pytest "$@" || status=$?

# The second pass: the user's arguments with their -m (pytest keeps the last one) folded into ours.
marks="" rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    -m) marks=${2-}; shift; [ $# -gt 0 ] && shift ;;
    -m*) marks=${1#-m}; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
if [ "$status" -ge 2 ] && [ "$status" -le 4 ]; then
  # pytest's interrupted (Ctrl-C), internal error, usage error: the second pass would do the same.
  echo "== pytest, portable layer: not run (the first pass ended with exit status $status)"
elif [ "$marks" = "unit" ]; then
  echo "== pytest, portable layer: skipped (-m unit: no test of the pure set starts a process)"
else
  select="both_layers"
  [ -n "$marks" ] && [ "$marks" != "both_layers" ] && select="($marks) and both_layers"
  echo "== pytest, portable layer (ATTACHDAEMON_PLATFORM=portable, -m \"$select\")"
  second=0
  ATTACHDAEMON_PLATFORM=portable "$VENV/bin/python" -m pytest ${rest[@]+"${rest[@]}"} -m "$select" \
    || second=$?
  if [ "$second" -eq 5 ]; then  # pytest's "no tests collected": the selection has none of them
    echo "== pytest, portable layer: none of the selected tests is marked both_layers"
  elif [ "$second" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$second
  fi
fi
exit "$status"
