#!/usr/bin/env bash
# A/B timing in one run (issue 13 item 3): REV against the working tree, side by side.
#
#   scripts/ab.sh REV [-- BENCH FLAGS...]
#   ROUNDS=5 OUT=target/ab/run scripts/ab.sh HEAD~1
#   scripts/ab.sh main -- --reregister 0      # the ci profile as a throughput test
#
# Builds REV (a detached git worktree under target/ab/, its own target folder) and the working
# tree (target/, as usual) with `cargo build --release`, copies both binaries aside, then runs
# ROUNDS rounds (default 5) of `regstorm bench --profile ci` (registrar and load engine in one
# process, as `bench` always runs) with both binaries in each round, the order alternating
# (base first in odd rounds, current first in even ones), so drift on the machine falls on both
# sides alike. The pairs go to `regstorm gate` (the working tree's) in paired mode: per figure
# the median of the per-round ratios with a bootstrap 95 % interval, a regression only when the
# whole interval lies beyond the threshold (profiles/gate.toml, or GATE_CONFIG=FILE). No
# absolute time is compared with a stored one.
#
# On the ci profile (closed loop, each device re-registering every second) completed_per_s is
# the schedule's, so the timings that tell are latency and CPU per REGISTER; flags after `--`
# go to every `bench` (e.g. `--reregister 0`: each device re-registers at once, a capacity
# test).
#
# Writes OUT (default target/ab/<UTC time>): base/ and current/ (one results folder per round),
# gate.txt, gate.md, gate.xml and summary.md (command, machine, commits). Exit status: the
# gate's (0 holds, 1 regression, 2 bad input); 2 also for a failed build or run.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "ab.sh: $*" >&2
    exit 2
}

[ $# -ge 1 ] || fail "usage: scripts/ab.sh REV [-- BENCH FLAGS...]"
REV=$1
shift
if [ "${1:-}" = "--" ]; then shift; fi
FLAGS=("$@")
ROUNDS=${ROUNDS:-5}
PROFILE=${PROFILE:-ci}
OUT=${OUT:-target/ab/$(date -u +%Y%m%dT%H%M%SZ)}
GATE_CONFIG=${GATE_CONFIG:-}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || fail "ROUNDS=$ROUNDS: a positive count"
command="OUT=$OUT ROUNDS=$ROUNDS PROFILE=$PROFILE${GATE_CONFIG:+ GATE_CONFIG=$GATE_CONFIG} scripts/ab.sh $REV${FLAGS[*]:+ -- ${FLAGS[*]}}"

base_sha=$(git rev-parse --verify --quiet "$REV^{commit}") || fail "$REV: not a commit"
head_sha=$(git rev-parse HEAD)
dirty=$(git status --porcelain -- src benches examples profiles Cargo.toml Cargo.lock)

mkdir -p target/ab "$OUT"
[ -z "$(ls -A "$OUT")" ] || fail "$OUT: not empty"
work=$(mktemp -d)
src=target/ab/src-${base_sha:0:12}
cleanup() {
    git worktree remove --force "$src" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=lib/provenance.sh
source scripts/lib/provenance.sh | tee "$work/provenance.txt"
echo "base:    $(git log -1 --format='%h %s' "$base_sha" | cut -c1-100) ($REV)" | tee -a "$work/provenance.txt"
echo "current: working tree at $(git log -1 --format='%h' HEAD)${dirty:+ + uncommitted changes}" | tee -a "$work/provenance.txt"

echo
echo "== build base: $REV (${base_sha:0:12}) in $src, CARGO_TARGET_DIR=target/ab/target"
git worktree remove --force "$src" >/dev/null 2>&1 || true
git worktree add --detach --quiet "$src" "$base_sha"
# The base's own target folder, first seeded from this tree's release build so that unchanged
# dependencies are not compiled again (cargo rebuilds whatever differs).
if [ ! -d target/ab/target/release ] && [ -d target/release ]; then
    mkdir -p target/ab/target
    cp -a target/release target/ab/target/
fi
(cd "$src" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --locked --bin regstorm) \
    >"$work/build-base.log" 2>&1 || {
    tail -20 "$work/build-base.log" >&2
    fail "building $REV failed"
}
echo "== build current: the working tree (target/)"
cargo build --release --locked --bin regstorm >"$work/build-current.log" 2>&1 || {
    tail -20 "$work/build-current.log" >&2
    fail "building the working tree failed"
}
mkdir -p target/ab/bin
cp target/ab/target/release/regstorm "target/ab/bin/regstorm-base"
cp target/release/regstorm "target/ab/bin/regstorm-current"

abs_out=$(cd "$OUT" && pwd)
run_side() { # side round
    # Each side runs in its own checkout, so that its summary.json names its own commit.
    local dir=. bin=$PWD/target/ab/bin/regstorm-$1
    [ "$1" = base ] && dir=$src
    echo "== round $2: $1"
    if ! (cd "$dir" && "$bin" bench --profile "$PROFILE" --log-level warn --out "$abs_out/$1" \
        "${FLAGS[@]}") >"$work/$1-$2.log" 2>&1; then
        tail -20 "$work/$1-$2.log" >&2
        fail "round $2, $1: bench failed"
    fi
    grep -E '^\| (completed|latency p50|latency p99 |registrar CPU|load CPU / REGISTER) ' \
        "$work/$1-$2.log" | tr -s ' ' | sed 's/^/   /'
}
for ((i = 1; i <= ROUNDS; i++)); do
    if ((i % 2 == 1)); then
        run_side base "$i"
        run_side current "$i"
    else
        run_side current "$i"
        run_side base "$i"
    fi
done

echo
echo "== gate: regstorm gate --baseline $OUT/base --current $OUT/current${GATE_CONFIG:+ --config $GATE_CONFIG}"
status=0
target/ab/bin/regstorm-current gate --baseline "$OUT/base" --current "$OUT/current" \
    ${GATE_CONFIG:+--config "$GATE_CONFIG"} --junit "$OUT/gate.xml" --markdown "$OUT/gate.md" \
    >"$OUT/gate.txt" 2>"$work/gate.err" || status=$?
cat "$OUT/gate.txt"
cat "$work/gate.err" >&2

{
    echo "# A/B: $REV against the working tree, $(date -u +%Y-%m-%d)"
    echo
    echo "Command:"
    echo
    echo '```'
    echo "$command"
    echo "# = cargo build --release (REV in a git worktree, CARGO_TARGET_DIR=target/ab/target;"
    echo "#   the working tree in target/), then $ROUNDS rounds, the order alternating, of"
    echo "#   regstorm bench --profile $PROFILE --out OUT/{base,current}${FLAGS[*]:+ ${FLAGS[*]}}"
    echo "#   regstorm gate --baseline OUT/base --current OUT/current${GATE_CONFIG:+ --config $GATE_CONFIG}"
    echo '```'
    echo
    echo "Machine and commits:"
    echo
    echo '```'
    cat "$work/provenance.txt"
    echo '```'
    echo
    echo "Gate (exit status $status):"
    echo
    echo '```'
    cat "$OUT/gate.txt"
    echo '```'
} >"$OUT/summary.md"
echo "wrote $OUT/summary.md"
exit "$status"
