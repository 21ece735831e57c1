#!/usr/bin/env bash
# A few seconds of each fuzz target from its committed seeds (fuzz/seeds/), as CI runs it.
# New inputs go to a scratch folder, so the seeds stay as committed. On the stable toolchain
# without sanitizers (`--sanitizer none`): ScanGate forbids unsafe code, so a crash is a panic,
# which libFuzzer catches as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-5}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
  scratch=$(mktemp -d)
  mkdir -p "$scratch/corpus"
  if ! cargo fuzz run --sanitizer none "$target" "$scratch/corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 >"$scratch/log" 2>&1; then
    tail -n 60 "$scratch/log"
    echo "fuzz target $target failed"
    exit 1
  fi
  echo "fuzz $target: $(grep -E '^stat::number_of_executed_units' "$scratch/log") in ${secs}s"
  rm -rf "$scratch"
done
