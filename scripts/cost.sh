#!/usr/bin/env bash
# Deterministic costs (issue 13 item 2): instructions per hot-path operation, counted by
# valgrind's callgrind through gungraun (benches/cost.rs), compared with the committed baseline.
#
#   scripts/cost.sh             # run, print the table, write target/cost.json, compare;
#                               # exit 1 when a figure is more than 2 % above the baseline
#   scripts/cost.sh --update    # run, then rewrite benches/baseline/cost.json from it
#                               # (commit it on purpose, saying why, in the commit message)
#   TOLERANCE_PCT=2 scripts/cost.sh
#
# Each operation is a small fixed workload repeated N times inside one counted function (N is
# the `xN` of its bench id); its figure is the count divided by N, setup and teardown outside
# the count. Floors: a bare memchr::memmem scan of the seed REGISTER for the end of its head
# (the least a parser can do) and one SHA-256 of the token (what a cache hit cannot avoid).
# Counts depend on the compiler, the dependencies' versions and the CPU features valgrind
# reports, not on load: the same machine kind and toolchain give the same figures (within
# 0.07 % in results/gate-20261203/), which is what lets 2 % gate.
#
# Installs what it needs when missing: valgrind (apt-get) and gungraun-runner at the version of
# the gungraun crate in Cargo.lock (cargo install --locked).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "cost.sh: $*" >&2
    exit 2
}
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

UPDATE=0
case "${1:-}" in
--update) UPDATE=1 ;;
"") ;;
*) fail "usage: scripts/cost.sh [--update]" ;;
esac
TOLERANCE_PCT=${TOLERANCE_PCT:-2}
BASELINE=benches/baseline/cost.json
OUT=target/cost.json

need_pkg valgrind valgrind
need_pkg python3 python3
version=$(grep -A1 '^name = "gungraun"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
[ -n "$version" ] || fail "gungraun is not in Cargo.lock"
if [ "$(gungraun-runner --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
    echo "== cargo install --locked gungraun-runner --version $version"
    cargo install --locked --quiet gungraun-runner --version "$version" ||
        fail "cargo install gungraun-runner $version failed"
fi

# shellcheck source=lib/provenance.sh
source scripts/lib/provenance.sh
echo "valgrind: $(valgrind --version)"
echo "gungraun: $version"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo
echo "== cargo bench --bench cost -- --output-format=json"
if ! cargo bench --locked --bench cost -- --output-format=json >"$work/cost.jsonl" 2>"$work/bench.log"; then
    tail -30 "$work/bench.log" >&2
    fail "cargo bench --bench cost failed (log above)"
fi

python3 - "$work/cost.jsonl" "$OUT" "$BASELINE" "$TOLERANCE_PCT" "$UPDATE" "$version" <<'PY'
import json, os, re, subprocess, sys

jsonl, out, baseline_path, tolerance, update, gungraun = sys.argv[1:7]
tolerance = float(tolerance)

# Which floor each operation is compared with, where one exists.
FLOORS = {
    "parse_seed_register": "floor_memmem_scan",
    "verify_cache_hit": "floor_sha256",
}
WHAT = {
    "parse_seed_register": "frame + parse the seed Jabber REGISTER, every header the registrar reads, typed",
    "floor_memmem_scan": "floor: one memchr::memmem scan of it for CRLFCRLF",
    "register_cached_token": "REGISTER through the sans-IO registrar core, token in the cache, 200 written",
    "verify_cache_hit": "the verified-token cache hit alone (SHA-256 of the token, lookup)",
    "floor_sha256": "floor: one SHA-256 of the same token",
    "register_fresh_token_eddsa": "REGISTER with a token never seen: EdDSA verification, then as cached",
    "register_fresh_token_rs256": "the same with an RS256 (2048-bit) token",
    "register_shed": "the same on a core with no verification budget left: 503 with a Retry-After from the calendar",
    "binding_insert": "binding table alone: a new device's binding",
    "binding_refresh": "binding table alone: the same Call-ID, next CSeq",
    "engine_register_and_answer": "load engine: build a re-REGISTER (token text rebuilt), read its 200",
}

ops = {}
for line in open(jsonl):
    line = line.strip()
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    m = re.fullmatch(r"(?:(\w+?)_)?x(\d+)", d["id"])
    if not m:
        sys.exit(f"cost.sh: bench id {d['id']!r} does not end in xN (the repetitions)")
    name = d["function_name"] + (f"_{m.group(1)}" if m.group(1) else "")
    n = int(m.group(2))
    ir = d["profiles"][0]["data"]["total"]["metrics"]["Ir"]["values"]["new"]
    ops[name] = {"instructions": round(ir / n, 1), "repetitions": n, "counted": ir}
if not ops:
    sys.exit("cost.sh: the bench reported nothing")

def git(*a):
    try:
        return subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"

ratios = {
    op: round(ops[op]["instructions"] / ops[f]["instructions"], 2)
    for op, f in FLOORS.items()
    if op in ops and f in ops
}
result = {
    "schema": 1,
    "unit": "instructions per operation (callgrind Ir / repetitions)",
    "commit": git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if git("status", "--porcelain", "--", "src", "benches", "Cargo.toml", "Cargo.lock") else ""),
    "rustc": subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip(),
    "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip(),
    "gungraun": gungraun,
    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown"),
    "operations": ops,
    "ratio_to_floor": {op: {"floor": FLOORS[op], "ratio": r} for op, r in ratios.items()},
}
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

base = None
if os.path.exists(baseline_path):
    base = json.load(open(baseline_path)).get("operations", {})

print()
print(f"| operation | instructions | baseline | change | verdict | what |")
print(f"|---|---:|---:|---:|---|---|")
regressed, improved = [], []
for name, o in ops.items():
    ir = o["instructions"]
    b = (base or {}).get(name, {}).get("instructions")
    if b is None:
        change, verdict = "-", "new" if base is not None else "no baseline"
    else:
        pct = (ir - b) / b * 100
        change = f"{pct:+.2f} %"
        if pct > tolerance:
            verdict = "REGRESSED"
            regressed.append(f"{name}: {ir:,.0f} instructions, {pct:+.2f} % above the baseline {b:,.0f} (limit {tolerance:g} %)")
        elif pct < -tolerance:
            verdict = "improved"
            improved.append(f"{name}: {ir:,.0f} instructions, {pct:+.2f} % below the baseline {b:,.0f}")
        else:
            verdict = "holds"
    bs = f"{b:,.0f}" if b is not None else "-"
    print(f"| {name} | {ir:,.0f} | {bs} | {change} | {verdict} | {WHAT.get(name, '')} |")
print()
for op, r in ratios.items():
    print(f"{op}: {r:.2f}x its floor ({FLOORS[op]})")
print(f"wrote {out}")
for line in improved:
    print(f"improved: {line}; the baseline should follow (scripts/cost.sh --update, commit with the reason)")
for line in regressed:
    print(f"regressed: {line}")
if update == "1":
    os.makedirs(os.path.dirname(baseline_path), exist_ok=True)
    with open(baseline_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"updated {baseline_path}: commit it with the reason in the message")
    sys.exit(0)
if base is None:
    print(f"no {baseline_path} yet: nothing to compare (scripts/cost.sh --update writes it)")
    sys.exit(0)
missing = [n for n in base if n not in ops]
for n in missing:
    print(f"regressed: {n}: in the baseline, not measured any more")
sys.exit(1 if regressed or missing else 0)
PY
