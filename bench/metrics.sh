#!/usr/bin/env bash
# What recording Prometheus metrics costs the hot paths: the status poll
# (GET /api/v1/qrcodes/{random}, Redis store) and the discovery document, each measured on two
# identical instances, one with `metrics = true` and one with `metrics = false`, alternated
# twice in one run. Target: rates within 5 % of each other. Servers run on core 0 and wrk
# (64 connections) on core 1. Needs wrk and psql, PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
DURATION="${BENCH_DURATION:-10s}"
APPID=wx0123456789abcdef
SECRET=bench-app-secret
BIN=target/release

cargo build --release --locked --features bench --bins 2>&1 | tail -n 1

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_up() { # url
  for _ in $(seq 1 300); do
    curl -fs "$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  exit 1
}

run=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
schema="bench_$run"
psql -q "$PG" -c "CREATE SCHEMA $schema"
PG_URL="$PG?options=-c%20search_path%3D$schema"
SECRET_KEY=$(head -c 32 /dev/urandom | base64)

config() { # name port metrics
  cat > "$work/$1.toml" <<TOML
listen = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$2"
database_url = "$PG_URL"
redis_url = "$REDIS"
redis_prefix = "bench-$run"
secret_key = "$SECRET_KEY"
metrics = $3

[wechat]
api_base = "http://127.0.0.1:18200/"

[rate_limits]
qrcodes_per_minute = 0
sessions_per_minute = 0
exchanges_per_minute = 0

[[miniprograms]]
appid = "$APPID"
secret = "$SECRET"

[[apps]]
client_id = "bench"
name = "Bench"
redirect_uris = ["http://127.0.0.1:3000/callback"]
miniprogram = "$APPID"
qr_ttl_secs = 3600
require_binding = false
TOML
}

"$BIN/bench-driver" sim --listen 127.0.0.1:18200 --appid "$APPID" --secret "$SECRET" &
pids+=($!)
config on 18201 true
config off 18202 false
taskset -c 0 "$BIN/scangate" serve --config "$work/on.toml" >"$work/on.log" 2>&1 &
pids+=($!)
pid_on=$!
wait_up http://127.0.0.1:18201
taskset -c 0 "$BIN/scangate" serve --config "$work/off.toml" >"$work/off.log" 2>&1 &
pids+=($!)
pid_off=$!
wait_up http://127.0.0.1:18202

random=$("$BIN/bench-driver" create --url http://127.0.0.1:18201 --app bench)
results="$work/results"
: >"$results"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # name pid url
  local before after out rate requests
  before=$(cpu_ticks "$2")
  out=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" "$3")
  after=$(cpu_ticks "$2")
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$1 $rate $(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.2f", t / hz * 1e6 / n}')" | tee -a "$results"
}
for round in 1 2; do
  for side in on off; do
    pid=pid_$side
    port=$([ "$side" = on ] && echo 18201 || echo 18202)
    measure "poll_${side}_r$round" "${!pid}" "http://127.0.0.1:$port/api/v1/qrcodes/$random"
    measure "discovery_${side}_r$round" "${!pid}" \
      "http://127.0.0.1:$port/oidc/.well-known/openid-configuration"
  done
done
curl -fs http://127.0.0.1:18201/metrics | grep -c '^scangate_http_requests_total' |
  sed 's/^/series of scangate_http_requests_total on the metrics instance: /'

echo
echo "== summary (name req/s CPU-us-per-request)"
awk '
  { rate[$1] = $2; cpu[$1] = $3 }
  END {
    split("poll discovery", kinds, " ")
    for (k = 1; k <= 2; k++) for (r = 1; r <= 2; r++) {
      on = kinds[k] "_on_r" r; off = kinds[k] "_off_r" r
      printf "%s round %d: metrics on %.0f/s (%.2f us CPU), off %.0f/s (%.2f us CPU); rate on/off %.3f, CPU on/off %.3f (target: rates within 5 %%)\n", kinds[k], r, rate[on], cpu[on], rate[off], cpu[off], rate[on] / rate[off], cpu[on] / cpu[off]
    }
  }' "$results"
psql -q "$PG" -c "DROP SCHEMA $schema CASCADE"
