#!/bin/sh
# The project's one test command: installs what the tests need, then runs them.
#   ./run-tests.sh                 every suite (unit, real databases, real Gnocchi and Ceilometer)
#   ./run-tests.sh tests/unit      any pytest arguments narrow the run
# Needs python3.11 and the local PostgreSQL and MariaDB (see README.rst).
set -eu
cd "$(dirname "$0")"
VENV=${METER_EXPORT_VENV:-.venv}
tools/project-venv.sh test
# The real telemetry servers live in their own venvs (their pins clash with ours).
tools/telemetry-venvs.sh all
if [ "$#" -eq 0 ]; then set -- tests; fi
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rs "$@"
