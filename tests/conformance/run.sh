#!/usr/bin/env bash
# Runs the official @microsoft/signalr client against hubs served by this project: first the
# protocol checks against examples/conformance_server.rs, then a short session against the
# simulator's Event Hub (`mesolive-supervisor sim`).
#
#   tests/conformance/run.sh                 builds and starts both servers, runs both checks
#   tests/conformance/run.sh URL [TOKEN]     runs the protocol checks against a running hub instead
#
# Exits non-zero when npm ci, a server start or any check fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

if [[ $# -ge 1 ]]; then
  exec node "$here/conformance.mjs" "$@"
fi

cargo build --quiet --manifest-path "$root/Cargo.toml" --example conformance_server --bin mesolive-supervisor

pids=()
logs=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -f "${logs[@]}"
}
trap cleanup EXIT

# start NAME PATTERN COMMAND...: starts a server and sets `started` to what the sed PATTERN
# captures from its log, within 10 s. (Not run in a subshell: `pids` must keep the server.)
started=""
start() {
  local name="$1" pattern="$2"
  shift 2
  local log
  log="$(mktemp)"
  logs+=("$log")
  NO_COLOR=1 "$@" >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do
    local found
    found="$(sed -n "$pattern" "$log" | head -n 1)"
    if [[ -n "$found" ]]; then
      started="$found"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited early:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$name did not start within 10 s:" >&2
  cat "$log" >&2
  return 1
}

start "conformance server" 's/^listening on //p' "$root/target/debug/examples/conformance_server"
url="$started"
echo "checking $url"
node "$here/conformance.mjs" "$url" conformance-token

start "simulator" 's/.*event=\([^ ]*\) admin=\([^ ]*\).*/\1 \2/p' \
  "$root/target/debug/mesolive-supervisor" sim --port 0 --admin-port 0 --token sim-token
read -r event_url admin_url <<<"$started"
echo "checking the simulator's Event Hub at $event_url (admin $admin_url)"
node "$here/sim_session.mjs" "$event_url" "$admin_url" sim-token
