#!/usr/bin/env bash
# Instructions per request of the hot paths, counted by callgrind: a regression guard that does
# not move with machine noise (wall-clock rates on a shared machine swing by a quarter; these
# counts move by well under 1 %). One release instance (SQLite + Redis store, so the status is
# answered from the near cache as in production) runs under `valgrind --tool=callgrind`; after a
# warm-up, the counters are zeroed, a fixed number of requests is sent over one keep-alive
# connection, and the instructions of the whole server process (every thread) are divided by
# that number. Measured:
#   - poll:  GET /api/v1/qrcodes/{random}                      (the status poll)
#   - check: GET /api/v2/qrcode/check?random=…, x-authing-app-id (Authing-compatible)
#   - image: GET /api/v1/qrcodes/{random}/image.png             (an image-cache hit)
# `BENCH_POLLS` requests each (default 2000); `BENCH_PROFILE_DIR` keeps each profile there
# (`callgrind_annotate DIR/poll.callgrind`); `BENCH_NO_BUILD=1` and `BENCH_BIN` run binaries
# already built. Needs valgrind, curl and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
N="${BENCH_POLLS:-2000}"
BIN="${BENCH_BIN:-target/release}"
PORT=18190

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release --locked --bin scangate 2>&1 | tail -n 1
fi

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

run=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$work/scangate.toml" <<TOML
listen = "127.0.0.1:$PORT"
public_url = "http://127.0.0.1:$PORT"
database_url = "sqlite://$work/scangate.db"
redis_url = "$REDIS"
redis_prefix = "instr-$run"
secret_key = "$(head -c 32 /dev/urandom | base64)"

[wechat]
api_base = "http://127.0.0.1:9/"

[rate_limits]
qrcodes_per_minute = 0

[[miniprograms]]
appid = "wx0123456789abcdef"
secret = "bench-app-secret"

[[apps]]
client_id = "bench"
name = "Bench"
redirect_uris = ["http://127.0.0.1:3000/callback"]
miniprogram = "wx0123456789abcdef"
qr_ttl_secs = 3600
require_binding = false
TOML

wait_up() { # seconds
  for _ in $(seq 1 $(($1 * 10))); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "no answer from the server" >&2
  exit 1
}

# A first start outside valgrind creates the database and the signing key.
RUST_LOG=warn "$BIN/scangate" serve --config "$work/scangate.toml" >"$work/first.log" 2>&1 &
pid=$!
wait_up 30
sleep 1
kill "$pid"
wait "$pid" 2>/dev/null || true

RUST_LOG=info valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
  "$BIN/scangate" serve --config "$work/scangate.toml" >"$work/server.log" 2>&1 &
pid=$!
wait_up 300

base="http://127.0.0.1:$PORT"
random=$(curl -fs -X POST -H 'content-type: application/json' -d '{"app_id":"bench"}' \
  "$base/api/v1/qrcodes" | sed 's/.*"random":"\([^"]*\)".*/\1/')

requests() { # count url [header]: that many GETs of url over one connection
  local i
  for i in $(seq 1 "$1"); do
    [ "$i" -gt 1 ] && echo next # each request with only its own header
    echo "url = \"$2\""
    echo 'output = "/dev/null"'
    [ -n "${3:-}" ] && echo "header = \"$3\""
  done >"$work/curl.cfg"
  curl -fsS -K "$work/curl.cfg"
}

count() { # label url [header]
  requests 200 "$2" "${3:-}" # warm-up: caches filled, connection set up
  callgrind_control --zero "$pid" >/dev/null 2>&1
  requests "$N" "$2" "${3:-}"
  rm -f "$work"/cg.out.*
  callgrind_control --dump="$1" "$pid" >/dev/null 2>&1
  local dump total
  for _ in $(seq 1 100); do
    dump=$(ls "$work"/cg.out.* 2>/dev/null | head -n 1 || true)
    [ -n "$dump" ] && grep -q '^totals:' "$dump" && break
    sleep 0.1
  done
  total=$(cat "$work"/cg.out.* | awk '/^totals:/ { s += $2 } END { print s }')
  # BENCH_PROFILE_DIR keeps the profile, for callgrind_annotate.
  [ -n "${BENCH_PROFILE_DIR:-}" ] && cat "$work"/cg.out.* >"$BENCH_PROFILE_DIR/$1.callgrind"
  awk -v t="$total" -v n="$N" -v l="$1" \
    'BEGIN { printf "%-6s %10.0f instructions per request (%d requests)\n", l, t / n, n }'
}

count poll "$base/api/v1/qrcodes/$random"
count check "$base/api/v2/qrcode/check?random=$random" "x-authing-app-id: bench"
count image "$base/api/v1/qrcodes/$random/image.png"
