#!/usr/bin/env bash
# Instruction counts per call under valgrind's callgrind (deterministic, so the
# ratios hold on a noisy shared machine). Needs valgrind (Debian: `valgrind`).
#
# - benches/overhead.rs variants: one in-memory call each (request
#   construction included, the same in every variant), one gate check.
# - benches/e2e.rs variants: one loopback request, client and server on one
#   thread, user space only (the kernel's TCP work is not counted), with
#   callgrind's cache simulation: the first-level instruction and data cache
#   misses of a request (in the simulation the client's and the server's code
#   evict the layers' between requests; what a line costs in wall-clock
#   depends on the row: BENCHMARKS.md, section 2).
#
# Each variant runs with N calls and with 0 calls; (Ir(N) - Ir(0)) / N is the
# cost of one call.
#
# Usage: bash benches/callgrind.sh [N]   (default 5000; e2e uses N/5)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-5000}"
exe() {
  cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
    sed -n "s/.*\"executable\":\"\([^\"]*deps\/$1-[^\"]*\)\".*/\1/p" | tail -n1
}
overhead=$(exe overhead)
e2e=$(exe e2e)
ir() { # ENV_PREFIX binary variant calls [valgrind options]
  env "$1_PROFILE=$3" "$1_CALLS=$4" valgrind --tool=callgrind "${@:5}" \
    --callgrind-out-file=/dev/null "$2" 2>&1 | sed -n 's/.*Collected : \([0-9 ]*\).*/\1/p'
}
per_call() { # ENV_PREFIX binary variant calls
  local zero full
  zero=$(ir "$1" "$2" "$3" 0)
  full=$(ir "$1" "$2" "$3" "$4")
  awk -v b="$5" -v v="$3" -v z="$zero" -v f="$full" -v n="$4" \
    'BEGIN { printf "| %s | %s | %.1f |\n", b, v, (f - z) / n }'
}
printf '| bench | variant | instructions per call |\n|---|---|---:|\n'
for v in bare retry_layer gate_layer both_layers tower_retry_clone gate_check atomic_bool_check; do
  per_call OVERHEAD "$overhead" "$v" "$n" overhead
done
# Events with --cache-sim=yes: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
per_call_cached() { # binary variant calls
  local zero full
  zero=$(ir E2E "$1" "$2" 0 --cache-sim=yes)
  full=$(ir E2E "$1" "$2" "$3" --cache-sim=yes)
  awk -v v="$2" -v z="$zero" -v f="$full" -v n="$3" 'BEGIN {
    split(z, a, " "); split(f, b, " ")
    printf "| e2e | %s | %.1f | %.1f | %.1f | %.1f |\n", v,
      (b[1] - a[1]) / n, (b[4] - a[4]) / n, (b[5] - a[5]) / n, (b[6] - a[6]) / n
  }'
}
printf '\n| bench | variant | instructions per request | I1 misses | D1 read misses | D1 write misses |\n'
printf '|---|---|---:|---:|---:|---:|\n'
for v in bare both_layers; do
  per_call_cached "$e2e" "$v" "$((n / 5))"
done
