#!/usr/bin/env bash
# Registrar memory per idle TLS connection (issue 14 item 3), measured from outside: `regstorm
# serve` with one TLS listener, then 9,000 and 18,000 TLS 1.3 connections (scripts/idle_conns.py,
# Python ssl, a process of its own) that complete their handshake and then say nothing. The
# registrar's RSS (VmRSS) is read before the first connection, after a warm-up of 200 (so
# allocator arenas and the executors' first pages are not charged to the connections), and at
# each stage, two seconds after its last handshake; bytes per connection is the growth over
# the warm-up divided by the connections added. Kernel socket buffers are not in RSS.
#
#   scripts/idle-memory.sh                        # OUT=results/runtime-<date>/idle-memory
#   STAGES=9000,18000 OUT=/tmp/x scripts/idle-memory.sh
#   BIN=/tmp/regstorm.other scripts/idle-memory.sh   # another build, without building
#
# This machine allows 20,000 open files per process, so 18,000 is the most one registrar (and
# one client process) holds here.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "idle-memory: $*" >&2; exit 1; }
# shellcheck source=lib/common.sh
source scripts/lib/common.sh
need_pkg python3 python3
need_pkg curl curl
STAGES=${STAGES:-9000,18000}
OUT=${OUT:-results/runtime-$(date -u +%Y%m%d)/idle-memory}
WARM=200
last=${STAGES##*,}
[ "$last" -le 18000 ] || fail "STAGES: at most 18,000 connections (20,000 open files per process here)"
[ "$(ulimit -Hn)" -ge $((last + 1000)) ] || fail "open files: hard limit $(ulimit -Hn), $last connections need $((last + 1000))"
ulimit -n $((last + 1000))
if [ -z "${BIN:-}" ]; then
    build_release idle-memory
    BIN=$PWD/target/release/regstorm
fi
mkdir -p "$OUT"
lab=$(mktemp -d /tmp/idle-lab.XXXXXX)
spid= cpid=
trap 'stop_pid "$cpid"; stop_pid "$spid"; rm -rf "$lab"' EXIT
"$BIN" keys --out "$lab" >/dev/null 2>&1 || fail "regstorm keys --out $lab failed"
port=$(free_port) admin=$(free_port)
cat >"$lab/idle.toml" <<TOML
[auth]
jwks = "jwks.json"
[[listener]]
kind = "oauth"
addr = "127.0.0.1:$port"
cert = "server.pem"
key = "server.key"
[limits]
max_connections = $((last + 100))
[admin]
addr = "127.0.0.1:$admin"
TOML
"$BIN" serve --config "$lab/idle.toml" --log-level warn >"$OUT/serve.log" 2>&1 &
spid=$!
wait_healthy "$admin"
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$spid/status"; }
rss0=$(rss_kb)
python3 scripts/idle_conns.py 127.0.0.1 "$port" "$lab/ca.pem" "$lab" "$WARM,$STAGES" >"$OUT/client.log" 2>&1 &
cpid=$!
{
    echo "# Registrar RSS per idle TLS connection ($(date -u +%Y-%m-%d))"
    echo
    echo "Command: \`STAGES=$STAGES scripts/idle-memory.sh\` (binary: $BIN)"
    echo
    echo '```'
    # shellcheck source=lib/provenance.sh
    source scripts/lib/provenance.sh
    echo '```'
    echo
    echo "| connections | registrar RSS (kB) | bytes per connection over the warm-up of $WARM |"
    echo "|---:|---:|---:|"
    echo "| 0 | $rss0 | |"
} >"$OUT/summary.md"
base=
for n in $WARM ${STAGES//,/ }; do
    for _ in $(seq 600); do
        [ -e "$lab/at-$n" ] && break
        kill -0 "$cpid" 2>/dev/null || fail "client ended early: $(tail -1 "$OUT/client.log")"
        sleep 0.5
    done
    [ -e "$lab/at-$n" ] || fail "$n connections not up within 300 s"
    rss=$(rss_kb)
    if [ -z "$base" ]; then
        base=$rss
        echo "| $n (warm-up) | $rss | |" >>"$OUT/summary.md"
    else
        per=$(((rss - base) * 1024 / (n - WARM)))
        echo "| $n | $rss | $per |" >>"$OUT/summary.md"
    fi
    touch "$lab/go-$n"
done
wait "$cpid" || fail "client failed: $(tail -1 "$OUT/client.log")"
cpid=
curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^regstorm_(connections|tls_handshakes)' >"$OUT/metrics.txt" || true
cat "$OUT/summary.md"
