#!/usr/bin/env bash
# Reruns benches/token.rs (criterion) and examples/cache_memory.rs, printing provenance first.
#
#   scripts/bench-token.sh                # criterion + cache memory at 1,000,000 entries
#   WARMUP=2 MEASURE=8 ENTRIES=1000000 scripts/bench-token.sh
set -euo pipefail
cd "$(dirname "$0")/.."

WARMUP=${WARMUP:-2}
MEASURE=${MEASURE:-8}
ENTRIES=${ENTRIES:-1000000}

# shellcheck source=lib/provenance.sh
source scripts/lib/provenance.sh
echo "ring:    $(grep -A1 '^name = "ring"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"

echo
echo "== criterion: cargo bench --bench token -- --warm-up-time $WARMUP --measurement-time $MEASURE"
cargo bench --bench token -- --warm-up-time "$WARMUP" --measurement-time "$MEASURE"
est=target/criterion/token
if command -v python3 >/dev/null && [ -d "$est" ]; then
    python3 - "$est" <<'PY'
import json, os, sys
d = sys.argv[1]
ns = {}
for case in ("miss/EdDSA", "miss/ES256", "miss/RS256", "hit/EdDSA", "decode_only/EdDSA"):
    f = os.path.join(d, case.replace("/", os.sep), "new", "estimates.json")
    if os.path.exists(f):
        ns[case] = json.load(open(f))["median"]["point_estimate"]
        print(f"{case:18s} median {ns[case] / 1000:9.3f} us   ({1e9 / ns[case]:10.0f} per second per core)")
if "hit/EdDSA" in ns and "miss/EdDSA" in ns:
    print(f"hit / EdDSA miss = {100 * ns['hit/EdDSA'] / ns['miss/EdDSA']:.2f} %  (goal: at most 2 %)")
PY
fi

echo
echo "== cache memory: cargo run --release --example cache_memory -- $ENTRIES"
cargo run --release --example cache_memory -- "$ENTRIES"
