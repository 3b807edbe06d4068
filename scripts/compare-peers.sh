#!/usr/bin/env bash
# The same SIPp load against three SIP servers, one after another, and the CPU each spends per
# REGISTER (issue 4, "Prove it"):
#   regstorm  `regstorm serve` with one plaintext tcp listener, verifying every token
#   kamailio  Kamailio from Debian (scripts/kamailio/kamailio.cfg: in-memory usrloc, no auth)
#   floor     examples/floor.rs: frames each REGISTER and echoes its transaction headers
# Load: scripts/sipp/jabber_steady.xml (the Jabber re-REGISTER with a Bearer token and the Cisco
# multipart body) at RATE/s for DURATION s over one TCP connection (-t t1), bounded with -m and
# -timeout. Before it, one unmeasured pass registers every user once (tokens verified and cached,
# bindings created), so the measured run is the steady state of re-registration.
# CPU: utime+stime of every thread of the server (/proc/PID/stat; for Kamailio every process of
# it) before and after the measured run, and the same from /proc/PID/task/*/schedstat (ns,
# finer than the 10 ms ticks of stat). Writes OUT/summary.md and raw numbers.
#
#   scripts/compare-peers.sh
#   RATE=2000 DURATION=20 USERS=1000 PEERS="kamailio floor" OUT=/tmp/peers scripts/compare-peers.sh
#
# Environment: RATE (2000), DURATION (20), USERS (1000), PEERS ("regstorm kamailio floor"),
# ROUNDS (3: each server measured this many times, interleaved; medians reported),
# QUIET_PCT and QUIET_WAIT (20, 120: before each measured run, wait up to QUIET_WAIT s for the
# machine to be under QUIET_PCT % busy, as other jobs share it; what was found is recorded),
# REGSTORM_CORES (1: the one connection is served by one executor, as in the floor),
# OUT (results/peers-YYYYMMDD).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

RATE=${RATE:-2000}
DURATION=${DURATION:-20}
USERS=${USERS:-1000}
PEERS=${PEERS:-regstorm kamailio floor}
REGSTORM_CORES=${REGSTORM_CORES:-1}
ROUNDS=${ROUNDS:-3}
QUIET_PCT=${QUIET_PCT:-20}
QUIET_WAIT=${QUIET_WAIT:-120}
OUT=${OUT:-results/peers-$(date -u +%Y%m%d)}
COUNT=$((RATE * DURATION))
DOMAIN=10.10.10.1
ISS=https://cucm-pub.example.com:8443/ssosp/oauth
AUD=ccmsipline

fail() { echo "compare-peers: $*" >&2; exit 1; }
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

need_pkg sipp sip-tester
case " $PEERS " in *" kamailio "*) need_pkg kamailio kamailio ;; esac

build_release compare-peers --example floor
bin=$root/target/release/regstorm
floor=$root/target/release/examples/floor
case " $PEERS " in *" regstorm "*)
    "$bin" serve --help >/dev/null 2>&1 || fail "this regstorm has no 'serve' command yet (PEERS=\"kamailio floor\" to compare the others)" ;;
esac

work=$(mktemp -d /tmp/compare-peers.XXXXXX)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT


wait_listening() { # port pid name
    local i
    for i in $(seq 1 200); do
        kill -0 "$2" 2>/dev/null || fail "$3 exited during start-up (log: $work/$3.log): $(tail -n 3 "$work/$3.log" | tr '\n' ' ')"
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then return; fi
        sleep 0.1
    done
    fail "$3 is not listening on 127.0.0.1:$1 after 20 s"
}

# The server's processes: the PID and, for Kamailio, every descendant (its workers are forks),
# found through the parent PID field of /proc/*/stat.
tree() {
    awk -v root="$1" '{
        line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
        parent[$1] = f[2]; pids[++n] = $1
    } END {
        want[root] = 1; print root
        do { added = 0
            for (i = 1; i <= n; i++) if (!(pids[i] in want) && (parent[pids[i]] in want)) {
                want[pids[i]] = 1; print pids[i]; added = 1 }
        } while (added)
    }' /proc/[0-9]*/stat 2>/dev/null
}

# Clock ticks (utime + stime, every thread, as /proc/PID/stat sums them) of the processes.
cpu_ticks() {
    local p t=0 f
    for p in "$@"; do
        # Fields after "pid (comm) ": state is 1, utime 12, stime 13.
        f=$(sed 's/^.*) //' /proc/"$p"/stat)
        t=$((t + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$t"
}

# Nanoseconds on CPU of every live thread of the processes (/proc/PID/task/TID/schedstat).
cpu_ns() {
    local p
    for p in "$@"; do cat /proc/"$p"/task/*/schedstat; done | awk '{s += $1} END {printf "%d\n", s}'
}



echo "== lab material and $USERS tokens"
"$bin" keys --out "$work/lab" >"$work/keys.log" 2>&1 || fail "regstorm keys failed: $(tail -n 1 "$work/keys.log")"
csv=$work/users.csv
{
    echo SEQUENTIAL
    for i in $(seq 0 $((USERS - 1))); do
        u=$((1000000 + i))
        t=$("$bin" token --key "$work/lab/signing.key" --sub "$u" --dev "CSF$u" --iss "$ISS" --aud "$AUD" --ttl 86400 2>/dev/null)
        printf '%s;%s;a8ae9f92-4b07-a0d7-d701-%012d\n' "$u" "$t" "$u"
    done
} >"$csv"
token_len=$(sed -n 2p "$csv" | cut -d';' -f2 | tr -d '\n' | wc -c)

start_server() { # peer port -> sets server_pid
    local peer=$1 port=$2
    case $peer in
    regstorm)
        cat >"$work/lab/compare.toml" <<EOF
[registrar]
realm = "ccmsipline"
cores = $REGSTORM_CORES

[auth]
jwks = "jwks.json"
issuer = "$ISS"
audience = "$AUD"

[[listener]]
kind = "tcp"
addr = "127.0.0.1:$port"
EOF
        "$bin" serve --config "$work/lab/compare.toml" --log-level warn >"$work/regstorm.log" 2>&1 &
        ;;
    kamailio)
        mkdir -p "$work/kamailio-run"
        kamailio -f "$root/scripts/kamailio/kamailio.cfg" -l "tcp:127.0.0.1:$port" -DD -E \
            -m 64 -M 8 -Y "$work/kamailio-run" -P "$work/kamailio-run/kamailio.pid" \
            >"$work/kamailio.log" 2>&1 &
        ;;
    floor)
        "$floor" "127.0.0.1:$port" >"$work/floor.log" 2>&1 &
        ;;
    esac
    server_pid=$!
    wait_listening "$port" "$server_pid" "$peer"
}

stop_server() {
    stop_pid "$server_pid"
    server_pid=
}

# sipp_run dir port rate count timeout_s -> exit code; stats in dir/stat.csv
sipp_run() {
    local dir=$1 port=$2 rate=$3 count=$4 limit=$5 rc=0
    mkdir -p "$dir"
    (cd "$dir" && timeout $((limit + 10)) sipp "127.0.0.1:$port" -sf "$root/scripts/sipp/jabber_steady.xml" \
        -inf "$csv" -key domain "$DOMAIN" -t t1 -r "$rate" -rp 1000 -m "$count" -l 2000 \
        -timeout "${limit}s" -timeout_error -nostdin -trace_stat -stf stat.csv -fd 60 \
        -trace_err -error_file errors.log >sipp.out 2>&1) || rc=$?
    echo "$rc"
}


mkdir -p "$OUT"
raw=$OUT/raw.tsv
printf 'round\tpeer\tregisters_ok\tregisters_failed\tsipp_rc\twall_s\tcpu_ticks\tcpu_ns\tus_per_register_stat\tus_per_register_schedstat\tidle_us_per_s\tprocesses\tloadavg_before\tbusy_pct_before\tus_per_register_net_of_idle\n' >"$raw"
hz=$(getconf CLK_TCK)

# Rounds interleave the servers, so a disturbance on this shared machine (other jobs) spreads
# over all of them rather than falling on one; the summary takes each server's median.
for round in $(seq 1 "$ROUNDS"); do
for peer in $PEERS; do
    port=$(free_port tcp)
    echo "== round $round: $peer on 127.0.0.1:$port"
    start_server "$peer" "$port"
    # Unmeasured pass: every user registers once (tokens verified and cached, bindings made).
    rc=$(sipp_run "$work/$peer-$round-warmup" "$port" 1000 "$USERS" 60)
    [ "$rc" = 0 ] || fail "$peer: warm-up SIPp exit $rc ($(tail -n 2 "$work/$peer-$round-warmup/sipp.out" | tr '\n' ' '))"
    sleep 1
    mapfile -t pids < <(tree "$server_pid")
    # Idle cost over 2 s (timers, housekeeping), reported apart.
    i0=$(cpu_ns "${pids[@]}"); sleep 2; i1=$(cpu_ns "${pids[@]}")
    idle=$(( (i1 - i0) / 2000 ))
    busy=$(wait_quiet)
    load=$(cut -d' ' -f1 /proc/loadavg)
    dir=$work/$peer-$round
    t0=$(cpu_ticks "${pids[@]}"); n0=$(cpu_ns "${pids[@]}"); w0=$(date +%s.%N)
    rc=$(sipp_run "$dir" "$port" "$RATE" "$COUNT" $((DURATION * 3)))
    t1=$(cpu_ticks "${pids[@]}"); n1=$(cpu_ns "${pids[@]}"); w1=$(date +%s.%N)
    ok=$(stat_col "$dir/stat.csv" 'SuccessfulCall(C)')
    failed=$(stat_col "$dir/stat.csv" 'FailedCall(C)')
    stop_server
    cp "$dir/sipp.out" "$OUT/sipp-$peer-$round.out"
    cp "$dir/stat.csv" "$OUT/sipp-$peer-$round-stat.csv"
    if [ -s "$dir/errors.log" ]; then head -c 20000 "$dir/errors.log" >"$OUT/sipp-$peer-$round-errors.log"; fi
    awk -v r="$round" -v p="$peer" -v ok="$ok" -v f="$failed" -v rc="$rc" -v w0="$w0" -v w1="$w1" \
        -v t="$((t1 - t0))" -v n="$((n1 - n0))" -v hz="$hz" -v idle="$idle" -v np="${#pids[@]}" \
        -v load="$load" -v busy="$busy" 'BEGIN {
        printf "%d\t%s\t%d\t%d\t%d\t%.2f\t%d\t%d\t%.2f\t%.2f\t%d\t%d\t%s\t%d\t%.2f\n", r, p, ok, f, rc,
            w1 - w0, t, n, ok ? t * 1e6 / hz / ok : 0, ok ? n / 1e3 / ok : 0, idle, np, load, busy,
            ok ? (n / 1e3 - idle * (w1 - w0)) / ok : 0 }' >>"$raw"
    tail -n 1 "$raw" | awk -F'\t' '{printf "   %s REGISTER 200 (failed %s, sipp exit %s) in %s s: %s us/REGISTER (schedstat), %s (stat), %s net of idle (%s us/s), %s processes, machine %s %% busy before\n", $3, $4, $5, $6, $10, $9, $15, $11, $12, $14}'
    [ "$rc" = 0 ] || echo "   !! $peer: SIPp exit $rc, see $OUT/sipp-$peer-$round.out"
done
done

# Summary with ratios (schedstat figures: ns resolution; stat figures alongside).
{
    echo "# compare-peers: CPU per REGISTER, same SIPp load"
    echo
    echo "Command: \`RATE=$RATE DURATION=$DURATION USERS=$USERS ROUNDS=$ROUNDS PEERS=\"$PEERS\" REGSTORM_CORES=$REGSTORM_CORES scripts/compare-peers.sh\`"
    echo
    echo "Load: SIPp $(sipp -v 2>&1 | sed -n 's/.*SIPp \(v[0-9.]*[0-9]\).*/\1/p' | head -1), scripts/sipp/jabber_steady.xml (Jabber re-REGISTER, Bearer token of $token_len octets, Cisco multipart body), $RATE/s for $DURATION s = $COUNT REGISTERs over one TCP connection (\`-t t1 -r $RATE -m $COUNT\`), $USERS users, after one unmeasured pass registering every user once. Loopback, server and SIPp on the same $(nproc) CPUs. $ROUNDS rounds, the servers interleaved, each restarted and warmed up per round; medians below."
    echo "Servers: regstorm serve (cores = $REGSTORM_CORES, one tcp listener, tokens verified: issuer and audience checked, verified-token cache); $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //; s/ *$//') with scripts/kamailio/kamailio.cfg (usrloc db_mode 0, no auth, tcp_children 2); examples/floor.rs (glommio, frames and echoes only)."
    echo "CPU: server threads (all Kamailio processes), before/after the measured run; \`stat\` = utime+stime from /proc/PID/stat (10 ms ticks), \`schedstat\` = /proc/PID/task/*/schedstat (ns). Idle = the server's CPU over 2 s with no load (timers, housekeeping): included in the per-REGISTER figures and the ratios; \`net of idle\` subtracts it over the run's wall time."
    echo
    echo "| server | REGISTER 200 (all rounds) | failed | CPU µs/REGISTER, median (schedstat) | (stat) | per round (schedstat) | idle µs/s | net of idle |"
    echo "|---|---:|---:|---:|---:|---|---:|---:|"
    # Medians per server, then the ratios of the medians.
    awk -F'\t' -v peers="$PEERS" '
    function median(list,   v, n, i, j, x) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function ratio(a, b) { return b > 0 ? a / b : 0 }
    NR > 1 { ok[$2] += $3; bad[$2] += $4; s[$2] = s[$2] " " $10; t[$2] = t[$2] " " $9; idle[$2] = idle[$2] " " $11; net[$2] = net[$2] " " $15 }
    END {
        n = split(peers, p, " ")
        for (i = 1; i <= n; i++) {
            ms[p[i]] = median(s[p[i]]); mt[p[i]] = median(t[p[i]])
            rounds = s[p[i]]; sub(/^ /, "", rounds); gsub(/ /, ", ", rounds)
            printf "| %s | %d | %d | %.2f | %.2f | %s | %d | %.2f |\n", p[i], ok[p[i]], bad[p[i]], ms[p[i]], mt[p[i]], rounds,
                median(idle[p[i]]), median(net[p[i]])
        }
        print ""
        if (("regstorm" in ms) && ("kamailio" in ms)) {
            r = ratio(ms["kamailio"], ms["regstorm"])
            printf "- kamailio / regstorm = %.2fx (stat: %.2fx); goal >= 3: %s\n", r,
                ratio(mt["kamailio"], mt["regstorm"]), (r >= 3 ? "met" : "NOT met")
        }
        if (("regstorm" in ms) && ("floor" in ms)) {
            r = ratio(ms["regstorm"], ms["floor"])
            printf "- regstorm / floor = %.2fx (stat: %.2fx); goal <= 1.3: %s\n", r,
                ratio(mt["regstorm"], mt["floor"]), (r <= 1.3 ? "met" : "NOT met")
        }
        if (("kamailio" in ms) && ("floor" in ms))
            printf "- kamailio / floor = %.2fx\n", ratio(ms["kamailio"], ms["floor"])
    }' "$raw"
    echo
    echo '```'
    # shellcheck source=lib/provenance.sh
    source scripts/lib/provenance.sh
    echo '```'
    echo
    echo "Raw numbers (every round, with the load average before it): raw.tsv; SIPp's screens and statistics: sipp-<server>-<round>.out, sipp-<server>-<round>-stat.csv."
} >"$OUT/summary.md"
echo
sed -n '/^| server/,/^```$/p' "$OUT/summary.md" | sed '$d'
echo "== written: $OUT/summary.md"
