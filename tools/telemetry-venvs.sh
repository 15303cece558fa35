#!/bin/sh
# Build (idempotently) the private venvs of the real telemetry services.
# Usage: tools/telemetry-venvs.sh gnocchi|ceilometer|keystone|all
# They go to ${METER_EXPORT_STACK_DIR:-$HOME/.cache/meter-export}/<name>-<version>.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ "$#" -eq 0 ]; then
    set -- all
fi
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m telemetry_stack.venvs "$@"
