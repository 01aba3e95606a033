#!/usr/bin/env bash
# Set up a virtualenv in .venv (first run only), then run the linters, the type checker, the
# guard-rails (module size, import contracts) and the tests.
# Usage: bash scripts/test.sh [pytest arguments]     e.g. -m unit: the pure tests, in seconds
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
echo "== pytest"; "$VENV/bin/python" -m pytest "$@"
