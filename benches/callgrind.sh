#!/usr/bin/env bash
# Instruction counts per call of each happy-path variant of benches/overhead.rs
# and of one open-gate check, under valgrind's callgrind (deterministic, so the
# ratios hold on a noisy shared machine). Needs valgrind (Debian: `valgrind`).
#
# Each variant runs with N calls and with 0 calls; (Ir(N) - Ir(0)) / N is the
# cost of one call, request construction included (the same in every variant).
#
# Usage: bash benches/callgrind.sh [N]   (default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-5000}"
cargo bench --bench overhead --no-run >/dev/null 2>&1
bin=$(cargo bench --bench overhead --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*overhead[^"]*\)".*/\1/p' | tail -n1)
ir() {
  OVERHEAD_PROFILE="$1" OVERHEAD_CALLS="$2" valgrind --tool=callgrind \
    --callgrind-out-file=/dev/null "$bin" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '| variant | instructions per call |\n|---|---:|\n'
for v in bare retry_layer gate_layer both_layers tower_retry_clone gate_check atomic_bool_check; do
  zero=$(ir "$v" 0)
  full=$(ir "$v" "$n")
  awk -v v="$v" -v z="$zero" -v f="$full" -v n="$n" 'BEGIN { printf "| %s | %.1f |\n", v, (f - z) / n }'
done
