#!/usr/bin/env bash
# Reruns benches/parse.rs (criterion) and, when valgrind is installed, counts instructions per
# iteration of each path with callgrind; prints the provenance lines first.
#
#   scripts/bench-parse.sh                 # criterion + callgrind
#   WARMUP=2 MEASURE=8 scripts/bench-parse.sh
#   CALLGRIND=0 scripts/bench-parse.sh     # criterion only
#   CRITERION=0 scripts/bench-parse.sh     # callgrind only
#
# Callgrind: examples/parse_iters.rs runs one workload N times; Ir/iter = (Ir(N2) - Ir(N1)) /
# (N2 - N1), which cancels process start-up, input building and the one-time checks.
set -euo pipefail
cd "$(dirname "$0")/.."

WARMUP=${WARMUP:-2}
MEASURE=${MEASURE:-8}
N1=${N1:-1000}
N2=${N2:-2000}
CALLGRIND=${CALLGRIND:-1}
CRITERION=${CRITERION:-1}

# shellcheck source=lib/provenance.sh
source scripts/lib/provenance.sh
echo "rsip:    $(grep -A1 '^name = "rsip"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
echo "memchr:  $(grep -A1 '^name = "memchr"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"

if [ "$CRITERION" = 1 ]; then
    echo
    echo "== criterion: cargo bench --bench parse -- --warm-up-time $WARMUP --measurement-time $MEASURE"
    cargo bench --bench parse -- --warm-up-time "$WARMUP" --measurement-time "$MEASURE"
    est=target/criterion/jabber_register
    if command -v python3 >/dev/null && [ -d "$est" ]; then
        python3 - "$est" <<'PY'
import json, sys, os
d = sys.argv[1]
ns = {}
for f in ("regstorm", "rsip", "memmem_floor"):
    e = json.load(open(os.path.join(d, f, "new", "estimates.json")))
    ns[f] = (e["median"]["point_estimate"], e["mean"]["point_estimate"])
    print(f"{f:13s} median {ns[f][0]:10.1f} ns   mean {ns[f][1]:10.1f} ns")
r, s, m = ns["regstorm"][0], ns["rsip"][0], ns["memmem_floor"][0]
print(f"ratios (medians): rsip/regstorm = {s / r:.2f}x   regstorm/memmem_floor = {r / m:.1f}x")
PY
    fi
fi

if [ "$CALLGRIND" = 1 ]; then
    echo
    if ! command -v valgrind >/dev/null; then
        echo "== callgrind: valgrind not installed (apt-get install -y valgrind); skipped"
        exit 0
    fi
    echo "== callgrind: instructions per iteration, (Ir($N2) - Ir($N1)) / $((N2 - N1))"
    cargo build --profile bench --example parse_iters
    bin=target/release/examples/parse_iters
    out=$(mktemp -d)
    declare -A ir
    for mode in regstorm regstorm-frame rsip memmem; do
        for n in "$N1" "$N2"; do
            valgrind --tool=callgrind --callgrind-out-file="$out/$mode.$n.out" "$bin" "$mode" "$n" \
                2>"$out/$mode.$n.log"
            ir[$mode.$n]=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$mode.$n.log")
        done
        per=$(( (ir[$mode.$N2] - ir[$mode.$N1]) / (N2 - N1) ))
        ir[$mode]=$per
        printf '%-15s %8d Ir/iter\n' "$mode" "$per"
    done
    awk -v r="${ir[regstorm]}" -v s="${ir[rsip]}" -v m="${ir[memmem]}" 'BEGIN {
        printf "ratios (Ir): rsip/regstorm = %.2fx   regstorm/memmem = %.1fx\n", s / r, r / m }'
    echo "callgrind profiles: $out (callgrind_annotate --inclusive=yes $out/regstorm.$N2.out)"
fi
