#!/usr/bin/env bash
# Two load generators, the same registrar, the same load (issue 5, "Prove it"): the CPU each
# generator spends per REGISTER answered. Goal: regstorm load at least 2x less than SIPp.
#   sipp      SIPp from Debian (sip-tester) with scripts/sipp/jabber_steady.xml: the Jabber
#             re-REGISTER with a Bearer token (one per user, made beforehand with `regstorm token`,
#             read from a CSV) and the Cisco multipart body, -t t1 (one TCP connection)
#   regstorm  `regstorm load --transport tcp` with a profile written here: the same USERS as
#             devices on connections = 1, open loop at the same RATE, challenge_first = false (every
#             REGISTER carries its token, as SIPp's steady scenario), tokens valid all run long
#             (minted once per device at start: that CPU is the engine's and is counted),
#             body = "cisco"
# Both drive one `regstorm serve` (cores = 1, one tcp listener, admin port), started once; RATE/s
# for DURATION s each, one after the other, ROUNDS times interleaved (the order alternates per
# round), medians reported. One unmeasured SIPp pass registers every user first.
# CPU of a generator: the whole process (every thread, start-up and exit included), read when it
# has exited: utime+stime from wait4()'s rusage (the kernel's per-thread sum_exec_runtime, the
# figure /proc/PID/task/*/schedstat shows, kept for threads that have exited; microseconds) and
# from /proc/PID/stat of the zombie before it is reaped (clock ticks, cross-check). Divided by
# the REGISTERs it got answered: SIPp's SuccessfulCall(C), regstorm's summary.json responses.
# The registrar's /metrics before and after each run give REGISTERs answered, bytes received
# and TCP connections opened per generator (a check that both use exactly one connection).
# CPUs: with PIN=1 (default, on 2+ CPUs) the registrar runs under `taskset -c 0` and each
# generator under `taskset -c 1`: SIPp is single-threaded and the engine starts one executor
# per allowed CPU, so on one CPU both are one thread on the same core, neither shares a core
# with the registrar, and the engine keeps to one connection (given two CPUs it opens one per
# executor). PIN=0 runs everything unpinned (the engine then takes both cores).
#
#   scripts/compare-sipp.sh
#   RATE=2000 DURATION=20 USERS=1000 ROUNDS=3 OUT=/tmp/sipp-vs-load scripts/compare-sipp.sh
#
# Environment: RATE (2000), DURATION (20), USERS (1000), ROUNDS (3), PIN (1),
# QUIET_PCT and QUIET_WAIT (20, 120: before each measured run, wait up to QUIET_WAIT s for the
# machine to be under QUIET_PCT % busy; what was found is recorded), OUT
# (results/sipp-vs-load-YYYYMMDD), KEEP=1 keeps the work directory.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

RATE=${RATE:-2000}
DURATION=${DURATION:-20}
USERS=${USERS:-1000}
ROUNDS=${ROUNDS:-3}
PIN=${PIN:-1}
QUIET_PCT=${QUIET_PCT:-20}
QUIET_WAIT=${QUIET_WAIT:-120}
OUT=${OUT:-results/sipp-vs-load-$(date -u +%Y%m%d)}
COUNT=$((RATE * DURATION))
DOMAIN=10.10.10.1
USER_START=1000000

fail() { echo "compare-sipp: $*" >&2; exit 1; }
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

need_pkg sipp sip-tester
need_pkg taskset util-linux
command -v python3 >/dev/null || fail "python3 missing (free ports, CPU accounting, summary.json)"

build_release compare-sipp
bin=$root/target/release/regstorm

if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    server_cpus=(taskset -c 0); gen_cpus=(taskset -c 1); pinning="registrar on CPU 0, each generator on CPU 1 (taskset)"
else
    server_cpus=(); gen_cpus=(); pinning="unpinned: registrar and generators on all $(nproc) CPUs"
fi

work=$(mktemp -d /tmp/compare-sipp.XXXXXX)
server_pid=
cleanup() {
    stop_pid "$server_pid" 100
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT




# measure LIMIT_S LOG CMD...: runs CMD (stdin /dev/null, stdout and stderr to LOG), kills it
# after LIMIT_S, and prints "exit_code cpu_us stat_ticks wall_s": the process's CPU over its
# whole life, every thread, from wait4()'s rusage and from /proc/PID/stat read while it is a
# zombie (waitid with WNOWAIT), before it is reaped.
measure() {
    python3 - "$@" <<'EOF'
import os, subprocess, sys, time
limit, log, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
with open(log, "wb") as out:
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
deadline = t0 + limit
while True:
    r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if r is not None:
        break
    if time.monotonic() > deadline:
        p.kill()
    time.sleep(0.05)
wall = time.monotonic() - t0
with open(f"/proc/{p.pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
_, status, ru = os.wait4(p.pid, 0)
rc = os.waitstatus_to_exitcode(status)
rc = 124 if rc < 0 else rc
print(rc, round((ru.ru_utime + ru.ru_stime) * 1e6), ticks, f"{wall:.2f}")
EOF
}

# The registrar's counters: "registers_200 bytes_in tcp_connections_total".
metrics() {
    python3 - "$admin" <<'EOF'
import sys, urllib.request
want = {'regstorm_registers_total{status="200"}': 0, "regstorm_bytes_in_total": 0,
        'regstorm_connections_total{listener="tcp"}': 0}
for line in urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode().splitlines():
    k, _, v = line.rpartition(" ")
    if k in want:
        want[k] = int(float(v))
print(*want.values())
EOF
}


echo "== lab material and $USERS tokens"
"$bin" keys --out "$work/lab" >"$work/keys.log" 2>&1 || fail "regstorm keys failed: $(tail -n 1 "$work/keys.log")"
csv=$work/users.csv
# The claims the engine mints (sub, dev, iat, exp; no iss/aud), so both send tokens of one size.
{
    echo SEQUENTIAL
    for i in $(seq 0 $((USERS - 1))); do
        u=$((USER_START + i))
        t=$("$bin" token --key "$work/lab/signing.key" --sub "$u" --dev "CSF$u" --ttl 86400 2>/dev/null)
        printf '%s;%s;a8ae9f92-4b07-a0d7-d701-%012d\n' "$u" "$t" "$u"
    done
} >"$csv"
token_len=$(sed -n 2p "$csv" | cut -d';' -f2 | tr -d '\n' | wc -c)

port=$(free_port tcp); admin=$(free_port tcp)
cat >"$work/lab/compare.toml" <<EOF
[registrar]
realm = "ccmsipline"
cores = 1

[auth]
jwks = "jwks.json"

[[listener]]
kind = "tcp"
addr = "127.0.0.1:$port"

[admin]
addr = "127.0.0.1:$admin"
EOF
profile=$work/sipp-match.toml
cat >"$profile" <<EOF
# scripts/compare-sipp.sh: SIPp's steady load from regstorm load. $USERS devices take turns on
# one connection at $RATE REGISTER/s for $DURATION s, every REGISTER with its token.
name = "sipp-match"
devices = $USERS
connections = 1
mode = "oauth"
duration_s = $DURATION
ramp_s = 0
rate = $RATE
reregister_s = 3600
token_ttl_s = 86400
challenge_first = false
body = "cisco"
timeout_s = 5
domain = "$DOMAIN"
user_start = $USER_START
seed = 1
EOF

echo "== regstorm serve (cores = 1) on 127.0.0.1:$port, admin $admin; $pinning"
"${server_cpus[@]}" "$bin" serve --config "$work/lab/compare.toml" --log-level warn >"$work/serve.log" 2>&1 &
server_pid=$!
for i in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || fail "regstorm serve exited during start-up: $(tail -n 2 "$work/serve.log" | tr '\n' ' ')"
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then break; fi
    [ "$i" -lt 100 ] || fail "regstorm serve is not listening on 127.0.0.1:$port after 10 s"
    sleep 0.1
done

# gen_sipp dir rate count -> "rc cpu_us ticks wall"; statistics in dir/stat.csv
gen_sipp() {
    local dir=$1
    mkdir -p "$dir"
    (cd "$dir" && measure $((DURATION * 3 + 10)) sipp.out "${gen_cpus[@]}" sipp "127.0.0.1:$port" \
        -sf "$root/scripts/sipp/jabber_steady.xml" -inf "$csv" -key domain "$DOMAIN" -t t1 \
        -r "$2" -rp 1000 -m "$3" -l 2000 -timeout "$((DURATION * 3))s" -timeout_error -nostdin \
        -trace_stat -stf stat.csv -fd 60 -trace_err -error_file errors.log)
}

# gen_load dir -> "rc cpu_us ticks wall"; results in dir/results/sipp-match-*/summary.json
gen_load() {
    local dir=$1
    mkdir -p "$dir"
    measure $((DURATION + 40)) "$dir/load.out" "${gen_cpus[@]}" "$bin" load --profile "$profile" \
        --target "127.0.0.1:$port" --transport tcp --signing-key "$work/lab/signing.key" \
        --out "$dir/results" --log-level warn
}

echo "== warm-up (unmeasured): SIPp registers each of the $USERS users once"
read -r rc _ _ _ < <(gen_sipp "$work/warmup" 1000 "$USERS")
[ "$rc" = 0 ] || fail "warm-up SIPp exit $rc: $(tail -n 2 "$work/warmup/sipp.out" | tr '\n' ' ')"

mkdir -p "$OUT"
raw=$OUT/raw.tsv
printf 'round\tgenerator\tanswered\tfailed\texit\twall_s\tcpu_us_rusage\tcpu_ticks_stat\tus_per_register\tus_per_register_stat\tself_reported_cpu_s\tmint_cpu_s\tregistrar_200\tbytes_in_per_register\ttcp_connections\tbusy_pct_before\tloadavg_before\n' >"$raw"
hz=$(getconf CLK_TCK)

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="sipp regstorm"; else order="regstorm sipp"; fi
    for gen in $order; do
        busy=$(wait_quiet)
        load=$(cut -d' ' -f1 /proc/loadavg)
        dir=$work/$gen-$round
        read -r r0 b0 c0 < <(metrics)
        if [ "$gen" = sipp ]; then
            read -r rc cpu ticks wall < <(gen_sipp "$dir" "$RATE" "$COUNT")
            ok=$(stat_col "$dir/stat.csv" 'SuccessfulCall(C)')
            failed=$(stat_col "$dir/stat.csv" 'FailedCall(C)')
            self=-; mint=-
            cp "$dir/sipp.out" "$OUT/sipp-$round.out"
            cp "$dir/stat.csv" "$OUT/sipp-$round-stat.csv"
            if [ -s "$dir/errors.log" ]; then head -c 20000 "$dir/errors.log" >"$OUT/sipp-$round-errors.log"; fi
        else
            read -r rc cpu ticks wall < <(gen_load "$dir")
            summary=$(find "$dir/results" -name summary.json 2>/dev/null | head -1)
            [ -n "$summary" ] || fail "regstorm load (round $round) wrote no summary.json, exit $rc: $(tail -n 1 "$dir/load.out")"
            read -r ok failed self mint < <(python3 - "$summary" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(sum(s["responses"].values()), s["errors"] + s["timeouts"], s["load"]["cpu_s"], s["load"]["mint_cpu_s"])
EOF
)
            cp "$summary" "$OUT/load-$round-summary.json"
            cp "$(dirname "$summary")/summary.md" "$OUT/load-$round-summary.md"
        fi
        read -r r1 b1 c1 < <(metrics)
        awk -v r="$round" -v g="$gen" -v ok="$ok" -v f="$failed" -v rc="$rc" -v wall="$wall" \
            -v cpu="$cpu" -v t="$ticks" -v hz="$hz" -v self="$self" -v mint="$mint" \
            -v reg=$((r1 - r0)) -v bytes=$((b1 - b0)) -v conns=$((c1 - c0)) -v busy="$busy" -v load="$load" 'BEGIN {
            printf "%d\t%s\t%d\t%d\t%d\t%.2f\t%d\t%d\t%.2f\t%.2f\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r, g, ok, f, rc, wall,
                cpu, t, ok ? cpu / ok : 0, ok ? t * 1e6 / hz / ok : 0, self, mint, reg, reg ? bytes / reg : 0,
                conns, busy, load }' >>"$raw"
        tail -n 1 "$raw" | awk -F'\t' '{printf "   round %s %-8s %6d answered (failed %s, exit %s) in %5s s: %6.2f us/REGISTER (rusage), %6.2f (stat); %d B/REGISTER, %d TCP connection(s); machine %s %% busy before\n", $1, $2, $3, $4, $5, $6, $9, $10, $14, $15, $16}'
        [ "$rc" = 0 ] || fail "$gen (round $round) exit $rc: see $OUT"
        [ "$ok" -ge $((COUNT * 9 / 10)) ] || fail "$gen (round $round): only $ok of $COUNT REGISTERs answered"
        [ "$((c1 - c0))" = 1 ] || echo "   !! $gen (round $round) opened $((c1 - c0)) TCP connections, not 1"
    done
done

{
    echo "# compare-sipp: load generator CPU per REGISTER, SIPp vs regstorm load"
    echo
    echo "Command: \`RATE=$RATE DURATION=$DURATION USERS=$USERS ROUNDS=$ROUNDS PIN=$PIN scripts/compare-sipp.sh\`"
    echo
    echo "Registrar (the same process for every run): \`regstorm serve\`, cores = 1, one tcp listener, tokens verified (Ed25519, verified-token cache); started once, then one unmeasured SIPp pass registering each of the $USERS users."
    echo
    echo "Generators, one after the other, $RATE REGISTER/s for $DURATION s ($COUNT REGISTERs) over one TCP connection, $USERS users (1000000..), $ROUNDS rounds, the order alternating per round:"
    echo "- **sipp**: SIPp $(sipp -v 2>&1 | sed -n 's/.*SIPp \(v[0-9.]*[0-9]\).*/\1/p' | head -1) (Debian sip-tester), scripts/sipp/jabber_steady.xml (Jabber re-REGISTER, Bearer token of $token_len octets from a CSV made beforehand, Cisco multipart body), \`-t t1 -r $RATE -rp 1000 -m $COUNT -l 2000\`."
    echo "- **regstorm**: \`regstorm load --profile sipp-match.toml --transport tcp\` (profile below): devices = $USERS, connections = 1, open loop rate = $RATE, challenge_first = false (every REGISTER carries its token, as SIPp's), token_ttl_s = 86400 (each device mints its token once, at start; that CPU is counted), body = \"cisco\"."
    echo
    echo "CPU: the generator process's whole life (all threads, start-up and exit included): utime+stime from wait4() rusage (µs; the kernel's sum_exec_runtime, i.e. schedstat's figure, summed over every thread including those that have exited) and, as a cross-check, utime+stime from /proc/PID/stat read from the zombie before reaping (10 ms ticks). Divided by the REGISTERs answered: SIPp's SuccessfulCall(C), the sum of regstorm's summary.json responses. 'self-reported' is summary.json load.cpu_s (the engine's executor threads only)."
    echo
    echo "CPUs: $pinning. Why: SIPp is one thread; the engine starts one executor per CPU it is allowed and, given both CPUs of this machine, would put an executor on the registrar's CPU and open one connection per executor (2, not 1). Pinned, each generator is one thread on a core of its own and the registrar keeps the other: the same conditions for both."
    echo
    echo "| generator | answered (all rounds) | failed | CPU µs/REGISTER, median (rusage) | (stat) | per round (rusage) | self-reported µs/REGISTER | mint CPU s | bytes/REGISTER at the registrar | TCP connections per run |"
    echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    awk -F'\t' '
    function median(list,   v, n, i, j, x) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    NR > 1 { g = $2; ok[g] += $3; bad[g] += $4; u[g] = u[g] " " $9; t[g] = t[g] " " $10
        if ($11 != "-") { s[g] = s[g] " " ($3 ? $11 * 1e6 / $3 : 0); m[g] = m[g] " " $12 }
        b[g] = b[g] " " $14; c[g] = c[g] " " $15 }
    END {
        split("sipp regstorm", gens, " ")
        for (i = 1; i <= 2; i++) { g = gens[i]
            mu[g] = median(u[g]); rounds = u[g]; sub(/^ /, "", rounds); gsub(/ /, ", ", rounds)
            conns = c[g]; sub(/^ /, "", conns); gsub(/ /, ", ", conns)
            printf "| %s | %d | %d | %.2f | %.2f | %s | %s | %s | %d | %s |\n", g, ok[g], bad[g], mu[g], median(t[g]), rounds,
                (g in s) ? sprintf("%.2f", median(s[g])) : "-", (g in m) ? sprintf("%.3f", median(m[g])) : "-", median(b[g]), conns
        }
        r = mu["regstorm"] > 0 ? mu["sipp"] / mu["regstorm"] : 0
        printf "\n**SIPp / regstorm load = %.2fx** (medians, rusage); goal >= 2: %s\n", r, (r >= 2 ? "met" : "NOT met")
    }' "$raw"
    echo
    echo "Profile (sipp-match.toml):"
    echo
    echo '```toml'
    cat "$profile"
    echo '```'
    echo
    echo '```'
    # shellcheck source=lib/provenance.sh
    source scripts/lib/provenance.sh
    echo '```'
    echo
    echo "Raw numbers (every run, with how busy the machine was before it): raw.tsv; SIPp's screens and statistics: sipp-<round>.out, sipp-<round>-stat.csv; the engine's results: load-<round>-summary.json, load-<round>-summary.md."
} >"$OUT/summary.md"
echo
sed -n '/^| generator/,/^\*\*SIPp/p' "$OUT/summary.md"
echo "== written: $OUT/summary.md"
