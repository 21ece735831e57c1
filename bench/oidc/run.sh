#!/usr/bin/env bash
# The OpenID Connect benchmark: discovery and JWKS of ScanGate against a bare axum endpoint
# (bench/oidc/hello.rs) and against node-oidc-provider (bench/oidc/peer.mjs, production mode,
# RS256), all measured with wrk in one run; the signing rate per key algorithm
# (bench/oidc/sign.rs); and ScanGate's token endpoint under refresh-token grants in a closed
# loop (bench/oidc/token.rs), with an RS256 and with an ES256 pool key.
#
# Figures: requests per second, and server CPU time per request (utime + stime of the server
# process over the run, from /proc). Servers run on core 0, wrk on core 1. Absolute figures
# swing on a shared machine; the ratios within one run are what count.
#
# Needs wrk, taskset, curl, Node.js and npm.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
TICK=$(getconf CLK_TCK)

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release --locked --bin scangate \
    --example bench-oidc-hello --example bench-oidc-sign --example bench-oidc-token 2>&1 | tail -n 1
fi
(cd bench/oidc && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/scangate.toml" <<TOML
listen = "127.0.0.1:18301"
public_url = "http://127.0.0.1:18301"
database_url = "sqlite://$work/scangate.db"
secret_key = "$(head -c 32 /dev/urandom | base64)"
TOML

RUST_LOG=warn taskset -c 0 target/release/scangate serve --config "$work/scangate.toml" 2>"$work/scangate.log" &
pids+=($!); scangate=$!
taskset -c 0 target/release/examples/bench-oidc-hello 127.0.0.1:18300 &
pids+=($!); hello=$!
(cd bench/oidc && NODE_ENV=production exec taskset -c 0 node peer.mjs 18302 >"$work/peer.log" 2>&1) &
pids+=($!)

wait_up() { # url
  for _ in $(seq 1 300); do
    curl -fs "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  exit 1
}
wait_up http://127.0.0.1:18301/oidc/jwks
wait_up http://127.0.0.1:18300/hello
wait_up http://127.0.0.1:18302/jwks
peer=$(pgrep -f "node peer.mjs 18302" | head -n 1)

cpu_ticks() { # pid
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# measure NAME PID URL: prints "NAME rate cpu_us_per_request"
measure() {
  local name=$1 pid=$2 url=$3
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "$url" >/dev/null # warm-up
  local before after out requests rate
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$url")
  after=$(cpu_ticks "$pid")
  requests=$(echo "$out" | awk '/requests in/ { print $1 }')
  rate=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
  if echo "$out" | grep -q "Non-2xx"; then
    echo "$name: non-2xx answers" >&2
    echo "$out" >&2
    exit 1
  fi
  awk -v n="$name" -v r="$rate" -v q="$requests" -v t="$((after - before))" -v hz="$TICK" \
    'BEGIN { printf "%-22s %10.0f req/s %8.1f µs CPU/req\n", n, r, t / hz * 1e6 / q }'
}

echo "== discovery and JWKS ($CONNECTIONS connections, $DURATION each)"
{
  measure hello "$hello" http://127.0.0.1:18300/hello
  measure scangate_discovery "$scangate" http://127.0.0.1:18301/oidc/.well-known/openid-configuration
  measure scangate_jwks "$scangate" http://127.0.0.1:18301/oidc/jwks
  measure peer_discovery "$peer" http://127.0.0.1:18302/.well-known/openid-configuration
  measure peer_jwks "$peer" http://127.0.0.1:18302/jwks
} | tee "$work/results"

awk '
  { rate[$1] = $2; cpu[$1] = $4 }
  END {
    printf "\nscangate discovery / hello rate:  %.2f  (target >= 0.8)\n", rate["scangate_discovery"] / rate["hello"]
    printf "scangate jwks / hello rate:       %.2f  (target >= 0.8)\n", rate["scangate_jwks"] / rate["hello"]
    printf "scangate / peer CPU per request:  discovery %.2f, jwks %.2f  (target <= 0.25)\n", \
      cpu["scangate_discovery"] / cpu["peer_discovery"], cpu["scangate_jwks"] / cpu["peer_jwks"]
  }' "$work/results"

echo
echo "== signing, one core (ID-token-sized JWTs)"
taskset -c 0 target/release/examples/bench-oidc-sign 3

# The token endpoint: `scangate dev` (its demo public client and in-process WeChat simulator
# make the logins that start each connection's grant), one instance per key algorithm.
echo
echo "== token endpoint, refresh_token grants in a closed loop (${TOKEN_CONNECTIONS:-16} connections, $DURATION)"
for alg in RS256 ES256; do
  dir="$work/token-$alg"
  mkdir -p "$dir"
  cat > "$dir/scangate.toml" <<TOML
listen = "127.0.0.1:18303"
public_url = "http://127.0.0.1:18303"
database_url = "sqlite://$dir/scangate.db"
secret_key = "$(head -c 32 /dev/urandom | base64)"

[rate_limits]
qrcodes_per_minute = 0
sessions_per_minute = 0
exchanges_per_minute = 0
TOML
  # The first start creates the pool and its RS256 key; another algorithm is a rotation.
  RUST_LOG=warn taskset -c 0 target/release/scangate dev --config "$dir/scangate.toml" 2>"$dir/scangate.log" &
  pids+=($!); token_server=$!
  wait_up http://127.0.0.1:18303/oidc/jwks
  if [ "$alg" != RS256 ]; then
    kill "$token_server"
    wait "$token_server" 2>/dev/null || true
    RUST_LOG=warn target/release/scangate keys rotate --config "$dir/scangate.toml" --alg "$alg" >/dev/null
    RUST_LOG=warn taskset -c 0 target/release/scangate dev --config "$dir/scangate.toml" 2>>"$dir/scangate.log" &
    pids+=($!); token_server=$!
    wait_up http://127.0.0.1:18303/oidc/jwks
  fi
  taskset -c 1 target/release/examples/bench-oidc-token --base http://127.0.0.1:18303 \
    --sim http://127.0.0.1:18303/_dev/wechat --appid wx0123456789abcdef --client-id demo \
    --redirect-uri http://127.0.0.1:18303/_dev/callback --pid "$token_server" \
    --connections "${TOKEN_CONNECTIONS:-16}" --seconds "${DURATION%s}" --label "scangate_token_$alg" | tee -a "$work/token"
  kill "$token_server"
  wait "$token_server" 2>/dev/null || true
done

# The peer's refresh grant (one RS256 ID token and an opaque access token per grant), its
# grants seeded through its own models (bench/oidc/peer-token.mjs).
(cd bench/oidc && NODE_ENV=production exec taskset -c 0 node peer-token.mjs 18304 >"$work/peer-token.log" 2>&1) &
pids+=($!)
wait_up http://127.0.0.1:18304/jwks
peer_token=$(pgrep -f "node peer-token.mjs 18304" | head -n 1)
taskset -c 1 target/release/examples/bench-oidc-token --base http://127.0.0.1:18304 --sim - \
  --appid - --client-id demo --redirect-uri - --pid "$peer_token" \
  --seed-url http://127.0.0.1:18304/bench/seed --token-url http://127.0.0.1:18304/token \
  --client-secret bench-client-secret --connections "${TOKEN_CONNECTIONS:-16}" \
  --seconds "${DURATION%s}" --label peer_token_RS256 | tee -a "$work/token"

awk '
  { rate[$1] = $2; cpu[$1] = $4 }
  END {
    printf "\nscangate ES256 / peer, grants per second:  %.2f\n", rate["scangate_token_ES256"] / rate["peer_token_RS256"]
    printf "scangate ES256 / peer, JWTs per second:    %.2f  (2 JWTs per grant against 1; target >= 5)\n", 2 * rate["scangate_token_ES256"] / rate["peer_token_RS256"]
    printf "scangate RS256 / peer, grants per second:  %.2f\n", rate["scangate_token_RS256"] / rate["peer_token_RS256"]
  }' "$work/token"
