#!/usr/bin/env bash
# Runs the official @microsoft/signalr client against a hub served by this project.
#
#   tests/conformance/run.sh                 builds and starts examples/conformance_server.rs
#   tests/conformance/run.sh URL [TOKEN]     checks an already running hub instead
#
# Exits non-zero when npm ci, the server start or any check fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

if [[ $# -ge 1 ]]; then
  exec node "$here/conformance.mjs" "$@"
fi

cargo build --quiet --manifest-path "$root/Cargo.toml" --example conformance_server
server_bin="$root/target/debug/examples/conformance_server"

log="$(mktemp)"
"$server_bin" >"$log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$log"' EXIT

url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/^listening on //p' "$log" | head -n 1)"
  [[ -n "$url" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "conformance server exited early:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$url" ]]; then
  echo "conformance server did not start within 10 s:" >&2
  cat "$log" >&2
  exit 1
fi

echo "checking $url"
node "$here/conformance.mjs" "$url" conformance-token
