#!/usr/bin/env bash
# A short overload run for comparing two builds by hand: `regstorm serve` (storm.sh's overload
# configuration: one MRA listener, retry_after_s = 300) and `regstorm load --profile mra-storm`
# with fresh-token devices arriving at X x 15,000 a second for S seconds, the two processes
# unpinned as in storm.sh. Writes the load's results folder and cpu.txt (per second: the CPU
# ticks of each process and the time its threads waited for a CPU, ms) under OUT, and prints
# the goodput during the arrivals and the engine's CPU per REGISTER.
#
#   scripts/overload-probe.sh                          # X=3 S=20, the release build of this tree
#   BIN=/tmp/regstorm.old X=3 S=40 OUT=/tmp/old scripts/overload-probe.sh
#
# Not a recorded benchmark (storm.sh is): a probe for profiling (attach perf to the pids it
# prints) and for A/B pairs of builds run one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
X=${X:-3} S=${S:-20}
OUT=${OUT:-$(mktemp -d /tmp/overload-probe.XXXXXX)}
fail() { echo "overload-probe: $*" >&2; exit 1; }
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
need_pkg python3 python3
need_pkg curl curl
if [ -z "${BIN:-}" ]; then
    build_release overload-probe
    BIN=$PWD/target/release/regstorm
fi
mkdir -p "$OUT"
lab=$(mktemp -d /tmp/overload-lab.XXXXXX)
spid=
trap 'stop_pid "$spid"; rm -rf "$lab"' EXIT
ulimit -n 20000
"$BIN" keys --out "$lab" >/dev/null 2>&1 || fail "regstorm keys --out $lab failed"
port=$(free_port) admin=$(free_port)
cat >"$lab/ov.toml" <<TOML
[registrar]
retry_after_s = 300

[auth]
jwks = "jwks.json"
[[listener]]
kind = "mra"
addr = "127.0.0.1:$port"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
expressway_names = ["expc1.example.com"]
[limits]
max_connections = 18000
[admin]
addr = "127.0.0.1:$admin"
TOML
"$BIN" serve --config "$lab/ov.toml" --log-level warn >"$OUT/serve.log" 2>&1 &
spid=$!
wait_healthy "$admin"
"$BIN" load --profile mra-storm --target "127.0.0.1:$port" --ca "$lab/ca.pem" \
    --signing-key "$lab/signing.key" --server-name localhost \
    --client-cert "$lab/expressway.pem" --client-key "$lab/expressway.key" \
    --devices $((15000 * X * S)) --ramp "$S" --duration $((S + 15)) \
    --out "$OUT" --log-level warn >"$OUT/load.out" 2>&1 &
lpid=$!
echo "== serve pid $spid, load pid $lpid, results in $OUT"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
waited() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {print int(s / 1e6)}'; }
echo "t serve_ticks load_ticks serve_waited_ms load_waited_ms" >"$OUT/cpu.txt"
t=0 a0=0 b0=0 c0=0 d0=0
while kill -0 "$lpid" 2>/dev/null; do
    a=$(cpu "$spid") b=$(cpu "$lpid") c=$(waited "$spid") d=$(waited "$lpid")
    echo "$t $((a - a0)) $((b - b0)) $((c - c0)) $((d - d0))" >>"$OUT/cpu.txt"
    a0=$a b0=$b c0=$c d0=$d t=$((t + 1))
    sleep 1
done
wait "$lpid" || fail "load failed: $(tail -3 "$OUT/load.out")"
curl -s "http://127.0.0.1:$admin/metrics" >"$OUT/metrics.txt" || true
python3 - "$OUT" "$S" <<'PY'
import glob, json, sys
out, s = sys.argv[1], int(sys.argv[2])
summary = json.load(open(glob.glob(out + "/mra-storm-*/summary.json")[0]))
tl = summary["timeline"]
good = [r["completed"] - r["status_503"] for r in tl[1:s - 1]]
print(f"goodput during the arrivals (answers other than 503 a second, seconds 1 to {s - 2}): "
      f"{sum(good) / max(len(good), 1):.0f}")
print(f"engine CPU per REGISTER: {summary['load']['cpu_us_per_register']:.1f} us")
PY
