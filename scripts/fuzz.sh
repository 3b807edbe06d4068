#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for N seconds each (default 60), one after the other,
# each as a single libFuzzer process.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment:
#   SANITIZER   address (default) or none: passed to `cargo fuzz -s`. The AddressSanitizer
#               runtime ships with the stable toolchain (librustc-stable_rt.asan.a), so the
#               default works without nightly.
#   FUZZ_ARGS   extra libFuzzer flags, e.g. "-max_len=8192".
#   REGSTORM_FUZZ_SKIP
#               comma-separated ids of known, not yet fixed findings whose assertion the
#               targets skip (see fuzz/src/lib.rs `skipping`); unset, every assertion is on.
#
# There is no nightly toolchain here: RUSTC_BOOTSTRAP=1 lets stable accept the -Z flags that
# cargo-fuzz passes (sanitizer, sancov). Corpora live in fuzz/corpus/<target> (git-ignored) and
# are seeded from tests/conformance (RFC 4475, RFC 5118 wire) and the Jabber REGISTER of the
# seed by fuzz/examples/seed_corpus.rs; crashes land in fuzz/artifacts/<target>.
set -euo pipefail

secs="${1:-60}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
conformance="$root/tests/conformance"
sanitizer="${SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

cd "$root/fuzz"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== seeding fuzz/corpus from $conformance"
# A plain (uninstrumented) host build: target/debug, apart from cargo-fuzz's target/<triple>.
cargo run --quiet --example seed_corpus -- "$root/fuzz/corpus" "$conformance"

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    cargo fuzz build -a -s "$sanitizer" "$t"
done

status=0
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "artifacts/$t"
    # One process (no -jobs/-workers: libFuzzer would fork and log to files instead).
    # shellcheck disable=SC2086
    if ! cargo fuzz run -a -s "$sanitizer" "$t" "$root/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-}; then
        echo "!! $t failed: see fuzz/artifacts/$t" >&2
        status=1
    fi
done
exit "$status"
