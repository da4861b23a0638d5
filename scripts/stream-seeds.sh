#!/usr/bin/env bash
# Runs the stream kill test on seeds FROM..TO (default 1..10): each seed a
# new 10-node loopback cluster appending logs, one node killed (SIGKILL) and
# restarted every 5 s, every closed window compared with `ryx-node exec`.
# Prints one line per seed and the count that passed.
set -uo pipefail
cd "$(dirname "$0")/.."
from="${1:-1}"; to="${2:-10}"
cargo build --release -p ryx-node --tests -q 2>/dev/null
pass=0; total=0
for seed in $(seq "$from" "$to"); do
  total=$((total + 1))
  out=$(RYX_STREAM_SEED=$seed cargo test --release -q -p ryx-node --test streams -- --nocapture 2>&1)
  if echo "$out" | grep -q "test result: ok"; then
    pass=$((pass + 1)); echo "$out" | grep "^seed "
  else
    echo "seed $seed: FAILED"; echo "$out" | grep -E "panicked|assert" | head -5
  fi
done
echo "passed $pass of $total seeds"
