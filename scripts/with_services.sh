#!/usr/bin/env bash
# Run a command with DATABASE_URL and REDIS_URL pointing at running servers.
#   with_services.sh STATE_DIR (auto|fixed) (stop|keep) -- command [args...]
# Servers given through DATABASE_URL / REDIS_URL are used as they are; otherwise embedded ones
# are started (auto: free ports; fixed: the documented ports) and, with `stop`, stopped afterwards.
set -euo pipefail
state=$1 ports=$2 after=$3
shift 3
[ "${1:-}" = "--" ] && shift
py=.venv/bin/python
args=(--state "$state")
if [ "$ports" = auto ]; then args+=(--pg-port auto --redis-port auto); fi
exports=$("$py" scripts/devservices.py up "${args[@]}")
eval "$exports"
if [ "$after" = stop ]; then
  trap '"$py" scripts/devservices.py down --state "$state"' EXIT
fi
"$@"
