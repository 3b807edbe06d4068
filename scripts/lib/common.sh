# Sourced by the scripts: helpers they share. The caller defines `fail MESSAGE` (one line,
# exit 1) and, for wait_quiet, QUIET_PCT and QUIET_WAIT.

# need_pkg COMMAND PACKAGE: installs the Debian package with apt-get when the command is missing.
need_pkg() {
    command -v "$1" >/dev/null && return
    echo "== installing $2 (apt-get)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >/dev/null 2>&1; then
        fail "$1 missing and apt-get install $2 failed"
    fi
}

# free_port [tcp|udp]: a free loopback port of that kind (tcp by default).
free_port() {
    python3 -c 'import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "${1:-tcp}"
}

# wait_healthy ADMIN_PORT: waits up to 5 s for a started `regstorm serve` to answer /healthz.
wait_healthy() {
    for _ in $(seq 50); do
        curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0
        sleep 0.1
    done
}

# stat_col FILE NAME: the last row's value of column NAME of a SIPp statistics CSV.
stat_col() {
    awk -F';' -v col="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == col) c = i; next}
        {v = $c} END {print v + 0}' "$1"
}

# Percent of all CPUs busy over one second (/proc/stat).
busy_pct() {
    local a b c d e f g h t0 i0 t1 i1
    read -r _ a b c d e f g h _ </proc/stat; t0=$((a + b + c + d + e + f + g + h)); i0=$((d + e))
    sleep 1
    read -r _ a b c d e f g h _ </proc/stat; t1=$((a + b + c + d + e + f + g + h)); i1=$((d + e))
    echo $((100 * ((t1 - t0) - (i1 - i0)) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}

# Waits (bounded by QUIET_WAIT s) for the machine to be under QUIET_PCT % busy; prints the last
# busy percentage seen.
wait_quiet() {
    local waited=0 b
    b=$(busy_pct)
    while [ "$b" -gt "$QUIET_PCT" ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
        b=$(busy_pct); waited=$((waited + 1))
    done
    echo "$b"
}

# build_release NAME [CARGO ARGS...]: cargo build --release --bin regstorm (plus the arguments,
# e.g. --example floor), its log in $TMPDIR/NAME-build.log; fails with the first error line.
build_release() {
    local log=${TMPDIR:-/tmp}/$1-build.log
    shift
    echo "== build: cargo build --release --bin regstorm $*"
    cargo build --release --bin regstorm "$@" >"$log" 2>&1 ||
        fail "cargo build --release failed: $(grep -m1 '^error' "$log")"
}

# stop_pid PID [TENTHS]: SIGTERM, up to TENTHS tenths of a second (50) to exit, then SIGKILL;
# reaped when it is our child. Nothing when PID is empty or gone.
stop_pid() {
    local pid=$1 tries=${2:-50}
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    while [ "$tries" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; tries=$((tries - 1)); done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
