#!/usr/bin/env bash
# Interop with clients nobody here wrote (issue 4, "Prove it"), run by .ci/run:
#   - SIPp (Debian package sip-tester; no TLS in Debian's build) over TCP and over UDP:
#     scripts/sipp/jabber_register.xml, the seed's REGISTER without credentials -> 407, then with
#     Proxy-Authorization: Bearer token="..." (a token per user from `regstorm token`) -> 200;
#   - scripts/interop_tls.py, Python's ssl module (OpenSSL): the same 407 -> 200 over TLS to the
#     oauth port (TLS 1.3 and 1.2) and over mutual TLS to the mra port with the Expressway-C
#     certificate, and the mra port refusing a client without a certificate.
# Lab material goes to a temporary directory; `regstorm serve` listens on free loopback ports and
# is stopped at the end. Any failure exits 1 with a one-line reason.
#
#   scripts/interop.sh            # USERS=50 by default
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

USERS=${USERS:-50}
DOMAIN=10.10.10.1

fail() { echo "interop: $*" >&2; exit 1; }
# shellcheck source=lib/common.sh
source scripts/lib/common.sh

if ! command -v sipp >/dev/null; then
    echo "== installing sip-tester (SIPp) with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester; } >/dev/null 2>&1 ||
        fail "sipp missing and apt-get install sip-tester failed"
fi
command -v python3 >/dev/null || fail "python3 missing (needed for scripts/interop_tls.py)"

build_release interop
bin=$root/target/release/regstorm

work=$(mktemp -d /tmp/interop.XXXXXX)
server_pid=
cleanup() {
    stop_pid "$server_pid"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT


# The server's last warnings or errors, to append to a failure line.
server_log() {
    local w
    w=$(grep -v ' INFO ' "$work/serve.log" 2>/dev/null | tail -n 3 | tr '\n' ' ')
    [ -z "$w" ] || echo "[serve: $w]"
}

"$bin" keys --out "$work/lab" >"$work/keys.log" 2>&1 || fail "regstorm keys: $(tail -n 1 "$work/keys.log")"
oauth=$(free_port tcp); mra=$(free_port tcp); tcp=$(free_port tcp); udp=$(free_port udp)
admin=$(free_port tcp)
cat >"$work/lab/interop.toml" <<EOF
[registrar]
realm = "ccmsipline"
max_expires = 120
cores = 0

[auth]
jwks = "jwks.json"

[[listener]]
kind = "oauth"
addr = "127.0.0.1:$oauth"
cert = "server.pem"
key = "server.key"

[[listener]]
kind = "mra"
addr = "127.0.0.1:$mra"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
expressway_names = ["expc1.example.com"]

[[listener]]
kind = "tcp"
addr = "127.0.0.1:$tcp"

[[listener]]
kind = "udp"
addr = "127.0.0.1:$udp"

[admin]
addr = "127.0.0.1:$admin"
EOF

# One token per user (sub = user, dev = the Contact's device name); SIPp injection file:
# field0 user, field1 token, field2 contact UUID (also the +sip.instance).
make_users() { # first count file
    {
        echo SEQUENTIAL
        local i u t
        for i in $(seq 0 $(($2 - 1))); do
            u=$(($1 + i))
            t=$("$bin" token --key "$work/lab/signing.key" --sub "$u" --dev "CSF$u" 2>/dev/null) ||
                fail "regstorm token --sub $u failed"
            printf '%s;%s;a8ae9f92-4b07-a0d7-d701-%012d\n' "$u" "$t" "$u"
        done
    } >"$3"
}
make_users 1000000 "$USERS" "$work/tcp.csv"
make_users 2000000 "$USERS" "$work/udp.csv"
make_users 3000000 3 "$work/tls.csv"

echo "== regstorm serve: oauth $oauth, mra $mra, tcp $tcp, udp $udp, admin $admin"
"$bin" serve --config "$work/lab/interop.toml" >"$work/serve.log" 2>&1 &
server_pid=$!
for port in "$oauth" "$mra" "$tcp"; do
    for i in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || fail "regstorm serve exited during start-up: $(server_log)"
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then break; fi
        [ "$i" = 100 ] && fail "regstorm serve is not listening on 127.0.0.1:$port after 10 s: $(server_log)"
        sleep 0.1
    done
done

# count_col file column: the value of a column in the last row of SIPp's -trace_counts CSV.
count_col() {
    awk -F';' -v col="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == col) c = i; next}
        {v = $c} END {print (c ? v + 0 : -1)}' "$1"
}

sipp_check() { # label transport csv port [sipp options]
    local label=$1 transport=$2 csv=$3 port=$4 dir=$work/sipp-$1 rc=0 counts c want
    shift 4
    mkdir -p "$dir"
    (cd "$dir" && timeout 60 sipp "127.0.0.1:$port" -sf "$root/scripts/sipp/jabber_register.xml" \
        -inf "$csv" -key domain "$DOMAIN" -t "$transport" "$@" \
        -r 100 -m "$USERS" -l 50 -timeout 30s -timeout_error -nostdin \
        -trace_counts -trace_err -error_file errors.log >sipp.out 2>&1) || rc=$?
    counts=$(find "$dir" -name '*_counts.csv' | head -n 1)
    if [ "$rc" != 0 ] || [ -z "$counts" ]; then
        fail "SIPp over $label: exit $rc ($(grep -m1 -i 'error\|unexpected\|fail' "$dir/sipp.out" "$dir/errors.log" 2>/dev/null | cut -c1-160 || true)) $(server_log)"
    fi
    for c in 0_REGISTER_Sent 1_407_Recv 2_REGISTER_Sent 3_200_Recv 1_407_Unexp 3_200_Unexp 3_200_Timeout; do
        case $c in *Unexp | *Timeout) want=0 ;; *) want=$USERS ;; esac
        [ "$(count_col "$counts" "$c")" = "$want" ] ||
            fail "SIPp over $label: $c = $(count_col "$counts" "$c"), want $want"
    done
    echo "ok   SIPp over $label: $USERS users, $USERS x 407 then $USERS x 200, exit 0"
}

echo "== SIPp $(sipp -v 2>&1 | sed -n 's/.*SIPp \(v[0-9.]*[0-9]\).*/\1/p' | head -n 1)"
# TCP: a connection per device, as on-premises Jabber has. UDP: one socket on a free port.
sipp_check tcp tn "$work/tcp.csv" "$tcp" -max_socket 200
sipp_check udp u1 "$work/udp.csv" "$udp" -p "$(free_port udp)"

devices=()
while IFS=';' read -r u t _; do devices+=(--device "$u=$t"); done < <(tail -n +2 "$work/tls.csv")
python3 "$root/scripts/interop_tls.py" --host 127.0.0.1 --domain "$DOMAIN" \
    --oauth-port "$oauth" --mra-port "$mra" --ca "$work/lab/ca.pem" \
    --client-cert "$work/lab/expressway.pem" --client-key "$work/lab/expressway.key" \
    "${devices[@]}" || fail "TLS interop failed (above) $(server_log)"

# The registrar's own count through its admin address (Python, which is here already): every
# 200 the clients saw, SIPp's over TCP and UDP and the TLS client's, must be in the metrics.
expected=$((2 * USERS + 2 + $(tail -n +2 "$work/tls.csv" | wc -l)))
counted=$(python3 -c 'import sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
print(next((l.split()[-1] for l in text.splitlines() if l.startswith("regstorm_registers_total{status=\"200\"}")), "missing"))' "$admin") ||
    fail "admin /metrics did not answer $(server_log)"
[ "$counted" = "$expected" ] || fail "regstorm_registers_total{status=\"200\"} is $counted, the clients saw $expected"
echo "ok   admin /metrics: regstorm_registers_total{status=\"200\"} $counted, as the clients counted"

kill "$server_pid"
for i in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$server_pid" 2>/dev/null && fail "regstorm serve did not stop within 5 s of SIGTERM"
rc=0; wait "$server_pid" || rc=$?
server_pid=
[ "$rc" = 0 ] || fail "regstorm serve exited $rc after SIGTERM: $(server_log)"
echo "== interop: all passed"
