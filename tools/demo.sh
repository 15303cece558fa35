#!/bin/sh
# README's first command: a local real Gnocchi, a day of Ceilometer-like usage
# for a few projects, one sync into the embedded SQLite default, and what landed.
#   tools/demo.sh            (everything lands in ./demo/, Gnocchi is stopped at the end)
set -eu
cd "$(dirname "$0")/.."
VENV=${METER_EXPORT_VENV:-.venv}
tools/project-venv.sh
tools/telemetry-venvs.sh gnocchi
exec "$VENV/bin/python" tools/demo.py "$@"
