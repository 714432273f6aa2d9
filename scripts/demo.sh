#!/usr/bin/env bash
# `make demo`: services, migrations, an admin account, then the API and a worker until Ctrl-C,
# and ROUNDS (default 2) toy-world rounds driven through the REST API in the background
# (scripts/demo_rounds.py; its log: $DEMO_LOGS/rounds.log). SERVE=0 runs the rounds headless,
# prints the per-round table, writes .dev/demo/report.json and exits with their status;
# SERVE=0 ROUNDS=0 stops after the set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
bin=.venv/bin
state=${DEMO_STATE:-.dev/services}
port=${PORT:-8000}
serve=${SERVE:-1}
rounds=${ROUNDS:-2}
admin_email=${DEMO_ADMIN_EMAIL:-admin@example.com}
logs=${DEMO_LOGS:-.dev/demo-logs}
mkdir -p "$logs"

pids=()
driver=""
serving=0
cleanup() {
  # make may exit and the terminal close while we clean up: finish the job regardless.
  trap '' HUP INT TERM
  trap - EXIT
  set +e
  if [ -n "$driver" ]; then
    # The round driver and the set-up step it may be running (python -m training ...).
    kill -TERM -- "-$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  if [ ${#pids[@]} -gt 0 ]; then
    echo "stopping the app and the worker..."
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 "${pids[@]}" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "${pids[@]}" 2>/dev/null
    # Pool children the worker left behind; the pattern names this demo's own artifacts directory,
    # so another demo's worker is never hit.
    pkill -KILL -f "celery -A worker.celery_app worker .*--schedule ${ARTIFACTS_DIR:-$PWD/.dev/artifacts}/" 2>/dev/null
  fi
  "$py" scripts/devservices.py down --state "$state"
  echo "stopped"
}
trap cleanup EXIT
# Ctrl-C (or SIGTERM) is how a running demo is meant to stop: that is success, exit 0, so that
# make does not report "Error 130". During the set-up it interrupts unfinished work: exit 130.
trap 'if [ "$serving" = 1 ]; then exit 0; else exit 130; fi' INT TERM

exports=$("$py" scripts/devservices.py up --state "$state" --persist)
eval "$exports"
export DATABASE_URL REDIS_URL
export ARTIFACTS_DIR=${ARTIFACTS_DIR:-$PWD/.dev/artifacts}
"$bin/saferlhf" migrate

if [ -n "${DEMO_ADMIN_PASSWORD:-}" ]; then
  "$bin/saferlhf" create-user --email "$admin_email" --role admin --password-env DEMO_ADMIN_PASSWORD --if-missing
  "$bin/saferlhf" set-password --email "$admin_email" --password-env DEMO_ADMIN_PASSWORD >/dev/null
else
  "$bin/saferlhf" create-user --email "$admin_email" --role admin --generate --if-missing
fi

if [ "$serve" = 0 ] && [ "$rounds" = 0 ]; then
  echo "set-up complete (SERVE=0): services were started, migrated and stopped again"
  exit 0
fi

serving=1
"$bin/saferlhf" worker --beat --loglevel WARNING >"$logs/worker.log" 2>&1 &
pids+=($!)
"$bin/saferlhf" serve --port "$port" >"$logs/api.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[1]}" 2>/dev/null; then echo "the API failed to start; see $logs/api.log" >&2; exit 1; fi
  sleep 0.2
done

start_rounds() {
  # The driver works over REST with a one-day token of the demo's admin, in a process group of
  # its own so that stopping the demo also stops the training step it may be running.
  local token
  token=$("$bin/saferlhf" create-token --email "$admin_email" --name "demo rounds" --expires-in-days 1)
  SAFERLHF_TOKEN=$token setsid "$py" scripts/demo_rounds.py --url "http://127.0.0.1:$port" \
    --rounds "$rounds" --work "${DEMO_WORK:-.dev/demo}" ${DEMO_ROUNDS_ARGS:-} &
  driver=$!
}

if [ "$serve" = 0 ]; then
  serving=0  # Ctrl-C interrupts unfinished rounds: exit 130
  echo "running $rounds toy-world round(s) headless (SERVE=0); logs: $logs/"
  start_rounds
  set +e
  wait "$driver"
  status=$?
  set -e
  driver=""
  exit $status
fi

if [ "$rounds" != 0 ]; then
  start_rounds >"$logs/rounds.log" 2>&1
fi
echo
echo "  Safe RLHF platform is running at http://127.0.0.1:$port/"
echo "  log in as $admin_email with the password printed when it was created"
echo "  (or start with DEMO_ADMIN_PASSWORD=... make demo to set one)"
if [ "$rounds" != 0 ]; then
  echo "  $rounds toy-world round(s) run in the background: watch them at http://127.0.0.1:$port/admin/rounds"
  echo "  (progress: $logs/rounds.log; the table at the end goes to ${DEMO_WORK:-.dev/demo}/report.json)"
fi
echo "  logs: $logs/   stop: Ctrl-C"
echo
wait -n "${pids[@]}" || true
echo "a process exited; see $logs/" >&2
exit 1
