#!/usr/bin/env bash
# QR image benchmark.
#
# 1. Render rate on one core (taskset -c 0): ScanGate's branded 300-px PNG and SVG (logo and
#    colours) and a plain PNG, then the npm `qrcode` package (toBuffer, error correction H,
#    width 300, no logo), in the same run, and the ratio. Target: branded PNG >= 5x npm.
# 2. Latency of image requests against a release build under 50 concurrent clients (wrk):
#    one cached image, and images never asked for before (a fresh code and size each request).
# 3. Average image size in bytes.
#
# Usage: bench/qr/run.sh            (QR_BENCH_SECONDS=3, WRK_SECONDS=10 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HERE=$ROOT/bench/qr
SECONDS_EACH=${QR_BENCH_SECONDS:-3}
WRK_SECONDS=${WRK_SECONDS:-10}
PORT=${PORT:-18480}
export QR_BENCH_SECONDS=$SECONDS_EACH

echo "== building (release)" >&2
cargo build --release --locked --bin scangate >&2
cargo bench --locked --bench qr --no-run >&2
if [ ! -d "$HERE/node_modules/qrcode" ]; then
  (cd "$HERE" && npm ci --silent --no-audit --no-fund) >&2
fi

echo "== render rate, one core"
RUST_OUT=$(taskset -c 0 cargo bench --locked --bench qr 2>/dev/null | grep '^{')
NODE_OUT=$(cd "$HERE" && taskset -c 0 node node-bench.mjs)
echo "$RUST_OUT"
echo "$NODE_OUT"
rate() { echo "$1" | grep "\"name\":\"$2\"" | sed 's/.*"per_sec":\([0-9]*\).*/\1/'; }
PNG=$(rate "$RUST_OUT" branded_png_300)
SVG=$(rate "$RUST_OUT" branded_svg_300)
NPM=$(rate "$NODE_OUT" npm_qrcode_png_300)
awk -v p="$PNG" -v s="$SVG" -v n="$NPM" 'BEGIN {
  printf "ratio branded PNG / npm = %.1fx (target >= 5x)\n", p / n;
  printf "ratio branded SVG / npm = %.1fx\n", s / n }'

echo "== HTTP latency, 50 concurrent clients"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cp "$HERE/logo.svg" "$WORK/logo.svg"
cat > "$WORK/scangate.toml" <<TOML
listen = "127.0.0.1:$PORT"
public_url = "http://127.0.0.1:$PORT"
database_url = "sqlite://$WORK/scangate.db"
log_format = "json"

[[miniprograms]]
appid = "wx0123456789abcdef"
secret = "bench-secret"

[[apps]]
client_id = "bench"
name = "Bench shop"
miniprogram = "wx0123456789abcdef"
logo = "$WORK/logo.svg"
qr_ttl_secs = 3600
qr_foreground = "#1b3a6b"
qr_background = "#fff8e7"
TOML
RUST_LOG=warn "$ROOT/target/release/scangate" serve --config "$WORK/scangate.toml" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break
  sleep 0.1
done
: > "$WORK/randoms"
for _ in $(seq 1 300); do
  R=$(curl -sf -X POST -H 'content-type: application/json' -d '{"app_id":"bench"}' \
    "http://127.0.0.1:$PORT/api/v1/qrcodes" | sed 's/.*"random":"\([^"]*\)".*/\1/')
  echo "$R" >> "$WORK/randoms"
done
ONE=$(head -n 1 "$WORK/randoms")
TOTAL=0; COUNT=0
for r in $(head -n 50 "$WORK/randoms"); do
  for ext in png svg; do
    N=$(curl -sf "http://127.0.0.1:$PORT/api/v1/qrcodes/$r/image.$ext" | wc -c)
    TOTAL=$((TOTAL + N)); COUNT=$((COUNT + 1))
    if [ "$ext" = png ]; then PNG_TOTAL=$(( ${PNG_TOTAL:-0} + N )); fi
  done
done
echo "average image size over HTTP: png $((PNG_TOTAL / 50)) bytes, png+svg $((TOTAL / COUNT)) bytes"

echo "-- one cached image (${WRK_SECONDS}s)"
wrk -t2 -c50 -d"${WRK_SECONDS}s" --latency "http://127.0.0.1:$PORT/api/v1/qrcodes/$ONE/image.png" \
  | grep -E 'Requests/sec|Latency |50%|90%|99%|Non-2xx'
echo "-- images never asked for before: a fresh code and size each request (${WRK_SECONDS}s)"
RANDOMS_FILE="$WORK/randoms" wrk -t2 -c50 -d"${WRK_SECONDS}s" --latency -s "$HERE/uncached.lua" \
  "http://127.0.0.1:$PORT" | grep -E 'Requests/sec|Latency |50%|90%|99%|Non-2xx'
