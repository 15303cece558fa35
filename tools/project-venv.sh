#!/bin/sh
# Create the project venv if missing and install the project into it, quietly
# (the pip log is shown only on failure). Used by run-tests.sh and demo.sh.
#   tools/project-venv.sh [EXTRAS]     e.g. tools/project-venv.sh test
set -eu
cd "$(dirname "$0")/.."
VENV=${METER_EXPORT_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
target=.
if [ -n "${1:-}" ]; then
    target=".[$1]"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e "$target" > "$VENV/pip-install.log" 2>&1 || { cat "$VENV/pip-install.log"; exit 1; }
