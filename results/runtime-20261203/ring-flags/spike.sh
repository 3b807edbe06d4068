#!/bin/bash
# A/B/C of glommio ring setup flags on the registrar, in one run: for each round, each variant:
# regstorm serve (all cores, unpinned) with GLOMMIO_RING_FLAGS=<variant>, then
#  (1) onprem: 9,000 TLS devices re-registering as soon as answered, 20 s tokens, 20 s (unpinned)
#  (2) steady: 1 TCP connection, open loop 2,000/s for 20 s, 1,000 devices (server CPU per REGISTER)
set -u
# Recorded with BIN set to a build of bcd45b4 with spike-patch.diff applied to glommio 0.9.0
# (flags chosen by GLOMMIO_RING_FLAGS: none, "coop", "coop,single"). With vendor/glommio as
# committed, "none" turns the flags off and any other value leaves them on, so
#   VARIANTS="none coop" results/runtime-20261203/ring-flags/spike.sh
# repeats the comparison with the release build of the tree.
BIN=${BIN:-$(cd "$(dirname "$0")/../../.." && pwd)/target/release/regstorm}
OUT=${OUT:-/tmp/spike}
ROUNDS=${ROUNDS:-3}
VARIANTS=${VARIANTS:-"none coop coop,single"}
mkdir -p $OUT
ulimit -n 20000
lab=$OUT/lab; rm -rf $lab; "$BIN" keys --out $lab >/dev/null
cat > $lab/s.toml <<TOML
[auth]
jwks = "jwks.json"
[[listener]]
kind = "oauth"
addr = "127.0.0.1:26090"
cert = "server.pem"
key = "server.key"
[[listener]]
kind = "tcp"
addr = "127.0.0.1:26060"
[limits]
max_connections = 18000
[admin]
addr = "127.0.0.1:26099"
TOML
cat > $lab/onprem.toml <<'TOML'
name = "onprem9000"
devices = 9000
connections = 9000
mode = "oauth"
duration_s = 20
ramp_s = 5
rate = 0
reregister_s = 0
token_ttl_s = 20
challenge_first = true
body = "cisco"
TOML
cat > $lab/steady.toml <<'TOML'
name = "tcp2000"
devices = 1000
connections = 1
mode = "oauth"
duration_s = 20
ramp_s = 1
rate = 2000
token_ttl_s = 600
challenge_first = true
body = "cisco"
TOML
ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
echo "round variant run completed_per_s serve_cpu_s serve_us_per_register errors p99_ms" > $OUT/spike.txt
for r in $(seq 1 $ROUNDS); do
 for v in $VARIANTS; do
  for run in onprem steady; do
   GLOMMIO_RING_FLAGS=$v "$BIN" serve --config $lab/s.toml --log-level warn > $OUT/serve-$v-$r-$run.log 2>&1 &
   sp=$!
   for i in $(seq 50); do curl -sf http://127.0.0.1:26099/healthz >/dev/null && break; sleep 0.1; done
   c0=$(ticks $sp)
   if [ $run = onprem ]; then tgt=127.0.0.1:26090; prof=$lab/onprem.toml; tr=tls; else tgt=127.0.0.1:26060; prof=$lab/steady.toml; tr=tcp; fi
   "$BIN" load --profile $prof --target $tgt --ca $lab/ca.pem --signing-key $lab/signing.key --server-name localhost --transport $tr \
      --out $OUT/res-$v-$r-$run --log-level warn > $OUT/load-$v-$r-$run.out 2>&1
   c1=$(ticks $sp)
   kill $sp; wait $sp 2>/dev/null
   python3 - "$OUT/res-$v-$r-$run" $r $v $run $c0 $c1 >> $OUT/spike.txt <<'PY'
import glob, json, sys
d, r, v, run, c0, c1 = sys.argv[1:7]
s = json.load(open(glob.glob(d + "/*/summary.json")[0]))
n = sum(s["responses"].values())
cpu = (int(c1) - int(c0)) / 100
print(r, v, run, round(s["completed_per_s"]), cpu, round(cpu * 1e6 / max(n, 1), 1), s["errors"] + s["timeouts"], s["latency_us"]["p99"] / 1000)
PY
   tail -1 $OUT/spike.txt
  done
 done
done
