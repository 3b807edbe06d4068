#!/usr/bin/env bash
# The scale runs of issue 5, registrar and load engine as separate processes on this machine
# (serve pinned to CPU 0 with one executor, load pinned to CPU 1), recorded under OUT:
#   onprem   9,000 on-premises TLS devices, one connection each, re-registering as soon as
#            answered, 20 s tokens (each swaps its token mid-run); goal >= 50,000 REGISTER/s
#   storm    profiles/storm.toml: 9,000 TLS devices connecting at once; goal: all registered
#            (407 -> token -> 200) within 3 s
#   million  profiles/million.toml: 1,000,000 MRA devices over 100 mutual-TLS connections, all
#            registered; the registrar's RSS per registered device (goal <= 300 bytes)
#
#   scripts/scale-runs.sh                 # all three
#   RUNS="onprem storm" scripts/scale-runs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
RUNS=${RUNS:-onprem storm million}
OUT=${OUT:-results/scale-$(date -u +%Y%m%d)}
mkdir -p "$OUT"
cargo build --release --bin regstorm >/dev/null 2>&1
bin=$root/target/release/regstorm
work=$(mktemp -d /tmp/scale.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$bin" keys --out "$work/lab" >/dev/null 2>&1
cat >"$work/lab/scale.toml" <<TOML
[registrar]
cores = 1
[auth]
jwks = "jwks.json"
[[listener]]
kind = "oauth"
addr = "127.0.0.1:25090"
cert = "server.pem"
key = "server.key"
[[listener]]
kind = "mra"
addr = "127.0.0.1:25091"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
expressway_names = ["expc1.example.com"]
[limits]
max_connections = 18000
TOML
cat >"$work/onprem.toml" <<'TOML'
name = "onprem9000"
devices = 9000
connections = 9000
mode = "oauth"
duration_s = 30
ramp_s = 5
rate = 0
reregister_s = 0
token_ttl_s = 20
challenge_first = true
body = "cisco"
TOML

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

{
    echo "# Scale runs ($(date -u +%Y-%m-%d))"
    echo
    echo "Command: \`RUNS=\"$RUNS\" scripts/scale-runs.sh\`. Registrar: \`taskset -c 0 regstorm serve\`"
    echo "(one executor, TLS 5090 and mutual TLS 5091); load engine: \`taskset -c 1 regstorm load\`."
    echo
    echo '```'
    # shellcheck source=lib/provenance.sh
    source scripts/lib/provenance.sh
    echo '```'
} >>"$OUT/summary.md"

for run in $RUNS; do
    case $run in
    onprem) profile=$work/onprem.toml port=25090 extra=() ;;
    storm) profile=storm port=25090 extra=() ;;
    million) profile=million port=25091 extra=(--client-cert "$work/lab/expressway.pem" --client-key "$work/lab/expressway.key") ;;
    *) echo "scale-runs: unknown run $run" >&2; exit 2 ;;
    esac
    taskset -c 0 "$bin" serve --config "$work/lab/scale.toml" --log-level warn >"$work/serve-$run.log" 2>&1 &
    server_pid=$!
    sleep 1
    rss0=$(rss_kb "$server_pid"); cpu0=$(cpu_ticks "$server_pid")
    echo "== $run: registrar pid $server_pid, RSS ${rss0} kB before"
    rc=0
    taskset -c 1 "$bin" load --profile "$profile" --target "127.0.0.1:$port" --ca "$work/lab/ca.pem" \
        --signing-key "$work/lab/signing.key" --server-name localhost "${extra[@]}" \
        --out "$OUT" --log-level warn >"$work/load-$run.out" 2>&1 || rc=$?
    rss1=$(rss_kb "$server_pid"); cpu1=$(cpu_ticks "$server_pid")
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    cat "$work/load-$run.out"
    {
        echo
        echo "## $run (load exit $rc)"
        echo
        echo '```'
        cat "$work/load-$run.out"
        echo '```'
        echo
        echo "Registrar RSS before the run ${rss0} kB, at its end ${rss1} kB; registrar CPU $(( (cpu1 - cpu0) / 100 )) s."
        # Per run: when every device had its 200 (cumulative answers reach 2 per device: the
        # 407 and the 200), and the RSS per registered device.
        python3 - "$OUT" "$run" "$rss0" "$rss1" <<'PY'
import glob, json, os, sys
out, run, rss0, rss1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
names = {"onprem": "onprem9000", "storm": "storm", "million": "million"}
files = sorted(glob.glob(os.path.join(out, names[run] + "-*", "summary.json")), key=os.path.getmtime)
if not files:
    print("no summary.json"); sys.exit()
s = json.load(open(files[-1]))
devices = s["responses"].get("407", 0)
total = 0
# Only where every device registers once in the window (no re-REGISTER before the end).
for row in s["timeline"] if run != "onprem" else []:
    total += row["completed"]
    if total >= 2 * devices:
        print(f"All {devices} devices had 407 then 200 by the end of second {row['t'] + 1} of the run.")
        break
else:
    if run != "onprem":
        print(f"Not every device registered: {total} answers for {devices} devices.")
print(f"completed {s['completed_per_s']:.0f} REGISTER/s; p50 {s['latency_us']['p50']} us, p99 {s['latency_us']['p99']} us; errors {s['errors']}, timeouts {s['timeouts']}; bottleneck: {s['bottleneck']}.")
if devices:
    print(f"Registrar RSS growth per registered device: {(rss1 - rss0) * 1024 / devices:.0f} bytes (RSS {rss1} kB at the end, {rss0} kB before).")
PY
    } >>"$OUT/summary.md"
done
echo "== written: $OUT/summary.md"
