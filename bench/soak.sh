#!/usr/bin/env bash
# The soak: one release instance on PostgreSQL + Redis holds half its measured login capacity
# for BENCH_SOAK_MINUTES (default 30) minutes — logins as sites make them, half through the
# native widget (an event stream waits) and half through authing-js-sdk (a check every 800 ms),
# the person scanning and confirming 1.5 s apart — and prints, each minute, the logins, the
# errors, the server's resident memory and open descriptors, and each endpoint's p99.
# Targets: no error, resident memory from minute 5 to the end within 5 %, descriptors flat.
# The server runs on core 0, the driver and the WeChat simulator on core 1.
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
MINUTES="${BENCH_SOAK_MINUTES:-30}"
APPID=wx0123456789abcdef
SECRET=bench-app-secret
BIN=target/release

cargo build --release --locked --features bench --bins 2>&1 | tail -n 1
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$PG" -c "DROP SCHEMA IF EXISTS $schema CASCADE" 2>/dev/null || true
  rm -rf "$work"
}
run=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
schema="soak_$run"
trap cleanup EXIT
psql -q "$PG" -c "CREATE SCHEMA $schema"

cat >"$work/soak.toml" <<TOML
listen = "127.0.0.1:18120"
public_url = "http://127.0.0.1:18120"
database_url = "$PG?options=-c%20search_path%3D$schema"
redis_url = "$REDIS"
redis_prefix = "soak-$run"
secret_key = "$(head -c 32 /dev/urandom | base64)"

[wechat]
api_base = "http://127.0.0.1:18121/"

# One load generator on one address stands in for many people.
[rate_limits]
qrcodes_per_minute = 0
sessions_per_minute = 0
exchanges_per_minute = 0
approvals_per_minute = 0
pending_qrcodes_per_address = 0
stale_scans_per_minute = 0

[connections]
per_address = 0
event_streams_per_address = 0

[[miniprograms]]
appid = "$APPID"
secret = "$SECRET"

[[apps]]
client_id = "soak"
name = "Soak"
redirect_uris = ["http://127.0.0.1:3000/callback"]
miniprogram = "$APPID"
# The driver's browsers keep no cookies; the match step is a person's tap.
require_binding = false
match_number = false
TOML

taskset -c 1 "$BIN/bench-driver" sim --listen 127.0.0.1:18121 --appid "$APPID" --secret "$SECRET" &
pids+=($!)
RUST_LOG=warn taskset -c 0 "$BIN/scangate" serve --config "$work/soak.toml" 2>"$work/server.log" &
pids+=($!)
pid_server=$!
for _ in $(seq 1 300); do
  curl -fs http://127.0.0.1:18120/healthz >/dev/null 2>&1 && break
  sleep 0.1
done
taskset -c 1 "$BIN/bench-driver" soak --url http://127.0.0.1:18120 \
  --sim http://127.0.0.1:18121 --app soak --appid "$APPID" --pid "$pid_server" \
  --minutes "$MINUTES" 2>"$work/driver.log" || { tail -n 20 "$work/driver.log"; exit 1; }
echo "server warnings and errors: $(grep -c -E 'WARN|ERROR' "$work/server.log" || true)"
if [ -s "$work/driver.log" ]; then
  echo "driver errors (first 5):"
  head -n 5 "$work/driver.log"
fi
