#!/usr/bin/env bash
# ScanGate's core benchmarks. Every target is a ratio or a bound measured in this one run, since
# absolute figures swing from run to run on a shared two-core machine:
#   - status poll (GET /api/v1/qrcodes/{random}, Redis store) against the reference server
#     (axum + one Redis GET, bench/reference.rs) and an axum hello world (bench/oidc/hello.rs),
#     wrk at 64 connections, in A B C C B A order; the Authing-compatible check
#     (GET /api/v2/qrcode/check?random=) on the same code;
#   - the token endpoint: authorization-code redemptions with PKCE at 64 connections, codes
#     minted beforehand through the whole login, one instance per key algorithm (RS256, ES256),
#     and the share of its CPU time spent signing (two JWTs per grant, at the rate one core
#     signs them, bench/oidc/sign.rs);
#   - confirm → waiting browser over SSE: one instance (embedded; PostgreSQL + Redis) and two
#     instances sharing PostgreSQL + Redis, 200 logins each;
#   - 10,000 concurrent SSE waiters on one instance, resident memory;
#   - start to first answer, and idle resident memory.
# Servers run on core 0 and wrk on core 1. Needs wrk, redis-cli and psql, PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
DURATION="${BENCH_DURATION:-10s}"
WAITERS="${BENCH_WAITERS:-10000}"
APPID=wx0123456789abcdef
SECRET=bench-app-secret
BIN=target/release

TOKEN_CODES="${BENCH_TOKEN_CODES:-1500}"

cargo build --release --locked --features bench --bins --example bench-oidc-hello \
  --example bench-oidc-sign --example bench-oidc-token 2>&1 | tail -n 1
# Ten thousand waiters need as many descriptors in the server and in the driver.
ulimit -n "$(ulimit -Hn)"

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

config() { # name port database_url redis_url
  cat > "$work/$1.toml" <<TOML
listen = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$2"
database_url = "$3"
redis_url = "$4"
redis_prefix = "bench-$run"
secret_key = "$SECRET_KEY"

[wechat]
api_base = "http://127.0.0.1:18100/"

# One load generator on one address stands in for many clients.
[rate_limits]
qrcodes_per_minute = 0
sessions_per_minute = 0
exchanges_per_minute = 0
approvals_per_minute = 0
pending_qrcodes_per_address = 0

[connections]
per_address = 0
event_streams_per_address = 0

[[miniprograms]]
appid = "$APPID"
secret = "$SECRET"

[[apps]]
client_id = "bench"
name = "Bench"
redirect_uris = ["http://127.0.0.1:3000/callback"]
allowed_origins = ["http://127.0.0.1:3000"]
miniprogram = "$APPID"
qr_ttl_secs = 3600
require_binding = false
# The phone confirms at once; the match step is a person's tap, not the server's work.
match_number = false
TOML
}

start() { # name [args of scangate]
  local name=$1
  shift
  taskset -c 0 "$BIN/scangate" serve --config "$work/$name.toml" >"$work/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
}

"$BIN/bench-driver" sim --listen 127.0.0.1:18100 --appid "$APPID" --secret "$SECRET" &
pids+=($!)
taskset -c 0 "$BIN/bench-reference" 127.0.0.1:18101 "$REDIS" &
pids+=($!)
pid_ref=$!
taskset -c 0 "$BIN/examples/bench-oidc-hello" 127.0.0.1:18106 &
pids+=($!)
pid_hello=$!
config a 18102 "$PG_URL" "$REDIS"
config b 18103 "$PG_URL" "$REDIS"
config e 18104 "sqlite://$work/e.db" ""
start a
wait_up http://127.0.0.1:18102
start b
start e
wait_up http://127.0.0.1:18103
wait_up http://127.0.0.1:18104

results="$work/results"
: >"$results"
note() { echo "$*" | tee -a "$results"; }

# Status poll: ScanGate (Redis store) and the reference, alternated twice.
random=$("$BIN/bench-driver" create --url http://127.0.0.1:18102 --app bench)
body=$(curl -fs "http://127.0.0.1:18102/api/v1/qrcodes/$random")
redis-cli -u "$REDIS" SET "bench:$random" "$body" >/dev/null
cpu_ticks() { # pid: user + system time so far, in clock ticks (0 for a process not seen here)
  if [ -r "/proc/${1:-none}/stat" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi
}
poll() { # name pid url [header]: the rate, and the server's CPU time per request (steadier
  # than rates on a shared machine)
  local before after out extra=()
  [ -n "${4:-}" ] && extra=(-H "$4")
  before=$(cpu_ticks "$2")
  out=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" "${extra[@]}" "$3")
  after=$(cpu_ticks "$2")
  local rate requests
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  last_requests=$requests
  note "$1 $rate req/s"
  note "$1_cpu $(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.1f", t / hz * 1e6 / n}') us/req"
}
# Redis's CPU time counts too: the reference spends a round trip per request.
pid_redis=$(redis-cli -u "$REDIS" INFO server | awk -F: '/^process_id/ { print $2 }' | tr -d '\r')
poll_pair() { # name pid url [header]: poll, and Redis's CPU time per request over the same run
  local before after
  before=$(cpu_ticks "$pid_redis")
  poll "$@"
  after=$(cpu_ticks "$pid_redis")
  note "$1_redis $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$last_requests" \
    'BEGIN {printf "%.1f", t / hz * 1e6 / n}') us/req"
}
reference() { poll_pair "poll_reference_r$1" "$pid_ref" "http://127.0.0.1:18101/api/v1/qrcodes/$random"; }
scangate() { poll_pair "poll_scangate_r$1" "$pid_a" "http://127.0.0.1:18102/api/v1/qrcodes/$random"; }
hello() { poll_pair "poll_hello_r$1" "$pid_hello" "http://127.0.0.1:18106/hello"; }
check() {
  poll_pair "check_scangate_r$1" "$pid_a" "http://127.0.0.1:18102/api/v2/qrcode/check?random=$random" \
    "x-authing-app-id: bench"
}
# A B C D D C B A: what the machine's load does to one side it does to the other.
reference 1; scangate 1; hello 1; check 1
check 2; hello 2; scangate 2; reference 2

# Confirm → waiting browser.
latency() { # label pc mp
  "$BIN/bench-driver" latency --label "$1" --pc "$2" --mp "$3" --sim http://127.0.0.1:18100 \
    --app bench --appid "$APPID" --n 200 | tee -a "$results"
}
latency sse_embedded http://127.0.0.1:18104 http://127.0.0.1:18104
latency sse_one_redis http://127.0.0.1:18102 http://127.0.0.1:18102
latency sse_two_redis http://127.0.0.1:18102 http://127.0.0.1:18103

# Concurrent SSE waiters on the embedded instance.
"$BIN/bench-driver" waiters --url http://127.0.0.1:18104 --app bench --n "$WAITERS" \
  --pid "$pid_e" | tee -a "$results"

# Start to first answer (embedded default; the first run creates the database and key).
config s 18105 "sqlite://$work/s.db" ""
"$BIN/bench-driver" startup --url http://127.0.0.1:18105 --app bench --runs 6 -- \
  "$BIN/scangate" serve --config "$work/s.toml" | tee -a "$results"

# The token endpoint: `scangate dev` (its demo public client and in-process WeChat simulator
# make the logins that mint the codes), one instance per key algorithm of its pool.
taskset -c 0 "$BIN/examples/bench-oidc-sign" 3 | tee -a "$results"
for alg in RS256 ES256; do
  dir="$work/token-$alg"
  mkdir -p "$dir"
  cat >"$dir/scangate.toml" <<TOML
listen = "127.0.0.1:18107"
public_url = "http://127.0.0.1:18107"
database_url = "sqlite://$dir/scangate.db"
secret_key = "$SECRET_KEY"

[rate_limits]
qrcodes_per_minute = 0
sessions_per_minute = 0
exchanges_per_minute = 0
approvals_per_minute = 0
pending_qrcodes_per_address = 0
TOML
  # The first start creates the pool and its RS256 key; another algorithm is a rotation.
  RUST_LOG=warn taskset -c 0 "$BIN/scangate" dev --config "$dir/scangate.toml" 2>"$dir/log" &
  pid_token=$!
  wait_up http://127.0.0.1:18107
  if [ "$alg" != RS256 ]; then
    kill "$pid_token"
    wait "$pid_token" 2>/dev/null || true
    RUST_LOG=warn "$BIN/scangate" keys rotate --config "$dir/scangate.toml" --alg "$alg" >/dev/null
    RUST_LOG=warn taskset -c 0 "$BIN/scangate" dev --config "$dir/scangate.toml" 2>>"$dir/log" &
    pid_token=$!
    wait_up http://127.0.0.1:18107
  fi
  taskset -c 1 "$BIN/examples/bench-oidc-token" --base http://127.0.0.1:18107 \
    --sim http://127.0.0.1:18107/_dev/wechat --appid wx0123456789abcdef --client-id demo \
    --redirect-uri http://127.0.0.1:18107/_dev/callback --pid "$pid_token" --connections 64 \
    --codes "$TOKEN_CODES" --label "token_$alg" |
    awk '{ print $1, $2, "req/s"; print $1 "_cpu", $4, "us/req" }' | tee -a "$results"
  kill "$pid_token"
  wait "$pid_token" 2>/dev/null || true
done

echo
echo "== summary"
awk '
  { v[$1] = $2 }
  END {
    for (r = 1; r <= 2; r++) {
      ref = v["poll_reference_r" r]; sg = v["poll_scangate_r" r]; hw = v["poll_hello_r" r]
      sgc = v["poll_scangate_r" r "_cpu"] + v["poll_scangate_r" r "_redis"]
      refc = v["poll_reference_r" r "_cpu"] + v["poll_reference_r" r "_redis"]
      printf "status poll round %d: scangate %.0f/s, reference %.0f/s, hello world %.0f/s; poll/reference %.2f (target >= 1.0), poll/hello world %.2f (target >= 0.7); server + Redis CPU per request %.1f vs reference %.1f us, ratio %.2f (target <= 0.8)\n", r, sg, ref, hw, sg / ref, sg / hw, sgc, refc, sgc / refc
      printf "Authing check round %d: %.0f/s, %.2f of the poll, %.1f us CPU per request\n", r, v["check_scangate_r" r], v["check_scangate_r" r] / sg, v["check_scangate_r" r "_cpu"]
    }
    for (a = 1; a <= 2; a++) {
      alg = a == 1 ? "RS256" : "ES256"
      sign = 2 * 1e6 / v["sign_" alg]
      printf "token endpoint, authorization_code + PKCE, %s: %.0f grants/s, %.1f us CPU per grant, of which signing (two JWTs, %.1f us) %.0f %%\n", alg, v["token_" alg], v["token_" alg "_cpu"], sign, 100 * sign / v["token_" alg "_cpu"]
    }
    printf "confirm -> browser p99: embedded %.2f ms, one instance on Redis %.2f ms (target <= 5); two instances %.2f ms (target <= 10)\n", v["sse_embedded_p99"], v["sse_one_redis_p99"], v["sse_two_redis_p99"]
    printf "SSE waiters: %d open, RSS %.1f MB (target <= 200)\n", v["waiters_open"], v["waiters_rss"]
    printf "idle RSS %.1f MB (target <= 30); start to first answer %.1f ms warm, %.1f ms first (target <= 200)\n", v["idle_rss"], v["startup_warm_median"], v["startup_first"]
  }' "$results"
psql -q "$PG" -c "DROP SCHEMA $schema CASCADE"
