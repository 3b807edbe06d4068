#!/usr/bin/env bash
# Reruns benches/registrar.rs (criterion) and, when valgrind is installed, counts instructions
# per iteration of each path with callgrind; prints the provenance lines first, then one table
# (ns median and Ir per mode) and where the pipeline's instructions go (top functions).
#
#   scripts/bench-registrar.sh                   # criterion + callgrind
#   WARMUP=2 MEASURE=8 scripts/bench-registrar.sh
#   CALLGRIND=0 scripts/bench-registrar.sh       # criterion only
#   CRITERION=0 scripts/bench-registrar.sh       # callgrind only
#   N1=1000 N2=2000 TOP=15 scripts/bench-registrar.sh
#   OUT=results/registrar-$(date -u +%Y%m%d) scripts/bench-registrar.sh   # also OUT/summary.md
#
# Modes (the same setup in the bench and in examples/registrar_iters.rs, from
# benches/common_registrar/mod.rs: one device re-registering, 10,000 others in the table):
#   pipeline    criterion registrar/register_cached_token_200: frame + parse + Registrar::handle
#               (token cache hit, binding table update, 200 OK written)
#   frame       criterion registrar/frame: Framer::next alone on the same bytes
#   verify-hit  criterion registrar/verify_hit: Verifier::verify of the cached token alone
#
# Callgrind: examples/registrar_iters.rs runs one mode N times; Ir/iter = (Ir(N2) - Ir(N1)) /
# (N2 - N1), which cancels process start-up, the setup and the one-time checks. Collection is
# also limited to the timed loop (--toggle-collect=registrar_iters::timed_loop): the setup
# (10,000 Ed25519 signatures and verifications with a random key, randomly keyed tables) varies
# by millions of instructions from run to run, which would otherwise swamp the difference.
# The function breakdown is the same difference taken per function, read from the callgrind
# out files (inclusive: a function with its callees, entries nest and overlap; self: its own
# instructions, these add up to the total).
set -euo pipefail
cd "$(dirname "$0")/.."

WARMUP=${WARMUP:-2}
MEASURE=${MEASURE:-8}
N1=${N1:-1000}
N2=${N2:-2000}
TOP=${TOP:-15}
CALLGRIND=${CALLGRIND:-1}
CRITERION=${CRITERION:-1}
OUT=${OUT:-}

modes=(pipeline frame verify-hit)
work=$(mktemp -d)
command="WARMUP=$WARMUP MEASURE=$MEASURE N1=$N1 N2=$N2 TOP=$TOP CALLGRIND=$CALLGRIND CRITERION=$CRITERION${OUT:+ OUT=$OUT} scripts/bench-registrar.sh"

# shellcheck source=lib/provenance.sh
source scripts/lib/provenance.sh | tee "$work/provenance.txt"
echo "ring:    $(grep -A1 '^name = "ring"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')" |
    tee -a "$work/provenance.txt"
echo "valgrind: $(valgrind --version 2>/dev/null || echo 'not installed')" | tee -a "$work/provenance.txt"

: >"$work/ns.tsv"
if [ "$CRITERION" = 1 ]; then
    echo
    echo "== criterion: cargo bench --bench registrar -- --warm-up-time $WARMUP --measurement-time $MEASURE"
    cargo bench --bench registrar -- --warm-up-time "$WARMUP" --measurement-time "$MEASURE" |
        tee "$work/criterion.txt"
    python3 - target/criterion/registrar "$work/ns.tsv" <<'PY'
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    for mode, name in (("pipeline", "register_cached_token_200"), ("frame", "frame"),
                       ("verify-hit", "verify_hit")):
        e = json.load(open(os.path.join(d, name, "new", "estimates.json")))["median"]
        ci = e["confidence_interval"]
        f.write(f"{mode}\t{e['point_estimate']:.1f}\t{ci['lower_bound']:.1f}\t{ci['upper_bound']:.1f}\n")
PY
fi

: >"$work/ir.tsv"
if [ "$CALLGRIND" = 1 ]; then
    echo
    if ! command -v valgrind >/dev/null; then
        echo "== callgrind: valgrind not installed (apt-get install -y valgrind); skipped"
        CALLGRIND=0
    else
        echo "== callgrind: instructions per iteration, (Ir($N2) - Ir($N1)) / $((N2 - N1)), timed loop only"
        cargo build --profile bench --example registrar_iters
        bin=target/release/examples/registrar_iters
        for mode in "${modes[@]}"; do
            declare -A ir=()
            for n in "$N1" "$N2"; do
                valgrind --tool=callgrind --toggle-collect='registrar_iters::timed_loop' \
                    --callgrind-out-file="$work/$mode.$n.out" "$bin" "$mode" "$n" \
                    2>"$work/$mode.$n.log"
                ir[$n]=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/$mode.$n.log")
                if [ -z "${ir[$n]}" ] || [ "${ir[$n]}" = 0 ]; then
                    echo "callgrind counted nothing in $mode $n (toggle-collect pattern?): $work/$mode.$n.log" >&2
                    exit 1
                fi
            done
            per=$(((ir[$N2] - ir[$N1]) / (N2 - N1)))
            printf '%-11s %8d Ir/iter   (Ir(%d) = %d, Ir(%d) = %d)\n' \
                "$mode" "$per" "$N1" "${ir[$N1]}" "$N2" "${ir[$N2]}"
            printf '%s\t%s\n' "$mode" "$per" >>"$work/ir.tsv"
        done
    fi
fi

# One table per mode, then the pipeline's top functions; the same text goes to summary.md.
python3 - "$work" "$N1" "$N2" "$TOP" "$CALLGRIND" <<'PY' | tee "$work/tables.md"
import collections, os, re, sys
work, n1, n2, top, callgrind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"

def tsv(name):
    p = os.path.join(work, name)
    return {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(p) if l.strip()}

ns, ir = tsv("ns.tsv"), tsv("ir.tsv")
what = {
    "pipeline": "frame + parse + Registrar::handle (cached token, table update, 200 written)",
    "frame": "Framer::next only, same bytes",
    "verify-hit": "Verifier::verify of the cached token only",
}
print()
print("## Per REGISTER, by mode")
print()
print("| mode | what | median ns [95% CI] | Ir/iter |")
print("|---|---|---:|---:|")
for m in ("pipeline", "frame", "verify-hit"):
    t = f"{float(ns[m][0]):,.1f} [{float(ns[m][1]):,.1f}, {float(ns[m][2]):,.1f}]" if m in ns else "-"
    i = f"{int(ir[m][0]):,}" if m in ir else "-"
    print(f"| {m} | {what[m]} | {t} | {i} |")
if all(m in ir for m in what):
    rest = int(ir["pipeline"][0]) - int(ir["frame"][0]) - int(ir["verify-hit"][0])
    tr = ""
    if all(m in ns for m in what):
        tr = f"{float(ns['pipeline'][0]) - float(ns['frame'][0]) - float(ns['verify-hit'][0]):,.1f}"
    print(f"| rest | pipeline - frame - verify-hit: typed access, checks, table update, 200 | {tr or '-'} | {rest:,} |")

if not callgrind:
    sys.exit(0)

def profile(path):
    """Self and inclusive Ir by function name, read from a callgrind out file (event Ir only).
    Inclusive = the function's own cost lines plus the cost of its calls to other functions."""
    names, own, incl = {}, collections.Counter(), collections.Counter()
    fn = cfn = None
    call = False

    def name(v):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", v)
        if not m:
            return v
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]

    for line in open(path, errors="replace"):
        if line.startswith("fn="):
            fn = name(line[3:].strip())
        elif line.startswith(("cfn=", "cfni=")):
            cfn = name(line.split("=", 1)[1].strip())
        elif line.startswith("calls="):
            call = True
        elif line[:1] in "0123456789+-*":
            parts = line.split()
            cost = int(parts[1]) if len(parts) > 1 else 0
            if call:
                if cfn != fn:  # self-recursion is already inside
                    incl[fn] += cost
                call = False
            else:
                own[fn] += cost
                incl[fn] += cost
    return {"self": own, "inclusive": incl}

total = int(ir["pipeline"][0])
a = profile(os.path.join(work, f"pipeline.{n1}.out"))
b = profile(os.path.join(work, f"pipeline.{n2}.out"))
loop = b["inclusive"]["registrar_iters::timed_loop"]
for kind in ("inclusive", "self"):
    per = {f: (v - a[kind].get(f, 0)) / (n2 - n1) for f, v in b[kind].items()}
    if kind == "inclusive":
        # The timed loop and its callers (main, ...) are the whole figure by construction.
        per = {f: v for f, v in per.items() if b[kind][f] < loop}
    best = sorted(per.items(), key=lambda kv: -kv[1])[:top]
    print()
    print(f"## pipeline: top {top} functions by {kind} Ir per REGISTER")
    print()
    print("Inclusive: the function and everything it calls; entries nest, so shares overlap."
          if kind == "inclusive" else
          "Self: the function's own instructions, with what was inlined into it; these add up.")
    print("Share: of the pipeline's Ir/iter.")
    print()
    print(f"| {kind} Ir/iter | share | function |")
    print("|---:|---:|---|")
    for f, v in best:
        print(f"| {v:,.0f} | {100 * v / total:.1f} % | `{f}` |")
PY

if [ "$CALLGRIND" = 1 ]; then
    echo
    echo "callgrind profiles: $work (callgrind_annotate --inclusive=yes $work/pipeline.$N2.out)"
fi

if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    {
        echo "# Registrar pipeline bench, $(date -u +%Y-%m-%d): ns (criterion) and Ir (callgrind) per REGISTER"
        echo
        echo "Workload (\`benches/common_registrar/mod.rs\`, shared by \`benches/registrar.rs\` and"
        echo "\`examples/registrar_iters.rs\`): the seed's Jabber REGISTER with an EdDSA Bearer token"
        echo "already in the token cache, from one device re-registering, two Call-IDs alternating so"
        echo "that every request is applied; the binding table and the cache hold 10,000 other devices."
        echo "Each path is checked before and after timing (200 OK with the binding, cache hit)."
        echo
        echo "Command:"
        echo
        echo '```'
        echo "$command"
        echo "# = cargo bench --bench registrar -- --warm-up-time $WARMUP --measurement-time $MEASURE"
        echo "#   cargo build --profile bench --example registrar_iters"
        echo "#   valgrind --tool=callgrind --toggle-collect=registrar_iters::timed_loop \\"
        echo "#       target/release/examples/registrar_iters <pipeline|frame|verify-hit> <$N1|$N2>"
        echo "#   Ir/iter = (Ir($N2) - Ir($N1)) / $((N2 - N1))"
        echo '```'
        echo
        echo "Machine and commit:"
        echo
        echo '```'
        cat "$work/provenance.txt"
        echo '```'
        cat "$work/tables.md"
        if [ -s "$work/criterion.txt" ]; then
            echo
            echo "## Criterion output"
            echo
            echo '```'
            # Estimates and outliers; not the change against a previous run (its own time: line).
            awk '/^ +change:/ { skip = 2; next } skip > 0 { skip--; next }
                 /^registrar\/|^ +(time|thrpt):|outliers/' "$work/criterion.txt"
            echo '```'
        fi
    } >"$OUT/summary.md"
    echo "wrote $OUT/summary.md"
fi
