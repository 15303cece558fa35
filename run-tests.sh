#!/bin/sh
# The project's one test command: installs what the tests need, then runs them.
#   ./run-tests.sh                 every suite (unit, real databases, real Gnocchi and Ceilometer)
#   ./run-tests.sh tests/unit      any pytest arguments narrow the run
# Needs python3.11 and the local PostgreSQL and MariaDB (see README.rst).
set -eu
cd "$(dirname "$0")"
VENV=${METER_EXPORT_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]" > "$VENV/pip-install.log" 2>&1 || { cat "$VENV/pip-install.log"; exit 1; }
# The real telemetry servers live in their own venvs (their pins clash with ours).
tools/telemetry-venvs.sh all
if [ "$#" -eq 0 ]; then set -- tests; fi
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rs "$@"
