#!/usr/bin/env bash
# What recording Prometheus metrics costs the hot paths: the status poll
# (GET /api/v1/qrcodes/{random}, Redis store) and the discovery document, each measured on two
# identical instances, one with `metrics = true` and one with `metrics = false`. Short runs
# alternate between the two (the order flips every round) and the summary takes the median of
# the per-round ratios, so load from elsewhere on a shared machine falls on both alike.
# Target: rates within 5 % of each other. Servers run on core 0 and wrk (64 connections) on
# core 1. Needs wrk and psql, PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
DURATION="${BENCH_DURATION:-3s}"
ROUNDS="${BENCH_ROUNDS:-8}"
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
url() { # side kind
  local port
  port=$([ "$1" = on ] && echo 18201 || echo 18202)
  case $2 in
    poll) echo "http://127.0.0.1:$port/api/v1/qrcodes/$random" ;;
    discovery) echo "http://127.0.0.1:$port/oidc/.well-known/openid-configuration" ;;
  esac
}
for round in $(seq 1 "$ROUNDS"); do
  order="on off"
  [ $((round % 2)) -eq 0 ] && order="off on"
  for kind in poll discovery; do
    for side in $order; do
      pid=pid_$side
      measure "${kind}_${side}_r$round" "${!pid}" "$(url "$side" "$kind")"
    done
  done
done
curl -fs http://127.0.0.1:18201/metrics | grep -c '^scangate_http_requests_total' |
  sed 's/^/series of scangate_http_requests_total on the metrics instance: /'

echo
echo "== summary (name req/s CPU-us-per-request)"
awk -v rounds="$ROUNDS" '
  function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
      t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { rate[$1] = $2; cpu[$1] = $3 }
  END {
    split("poll discovery", kinds, " ")
    for (k = 1; k <= 2; k++) {
      for (r = 1; r <= rounds; r++) {
        on = kinds[k] "_on_r" r; off = kinds[k] "_off_r" r
        ron[r] = rate[on]; roff[r] = rate[off]
        rr[r] = rate[on] / rate[off]; cr[r] = cpu[on] / cpu[off]
      }
      printf "%s: median rate with metrics %.0f/s, without %.0f/s; median of %d paired ratios: rate on/off %.3f, CPU per request on/off %.3f (target: rates within 5 %%)\n", kinds[k], median(ron, rounds), median(roff, rounds), rounds, median(rr, rounds), median(cr, rounds)
    }
  }' "$results"
PGOPTIONS=--client-min-messages=warning psql -q "$PG" -c "DROP SCHEMA $schema CASCADE"
