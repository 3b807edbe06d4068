#!/usr/bin/env bash
# Binding-table shard design, measured with examples/shard_choice.rs: (a) lock-striped shards
# shared by all cores against (b) one shard per core with forwarding over glommio's channel mesh
# (`b`: a message per operation, `b-batch`: a message per scheduler round), on 2 executors, plus
# (a) on 1 executor as the uncontended baseline and the three designs with every connection on
# core 0 (MRA: many devices behind few connections). Each configuration runs ROUNDS times, the
# configurations interleaved (and in reverse order on even rounds) so that the machine's drift
# hits all of them alike; writes results/shards-<date>/summary.md with the provenance, the
# medians, every raw output, and what they mean.
#
#   scripts/bench-shards.sh
#   ROUNDS=3 OPS=2000000 POOL=1000000 CONNS=64 scripts/bench-shards.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
OPS=${OPS:-2000000}
POOL=${POOL:-1000000}
CONNS=${CONNS:-64}
# Each run stops itself at LIMIT seconds; `timeout` is the backstop.
LIMIT=${LIMIT:-25}

out=results/shards-$(date -u +%Y%m%d)
mkdir -p "$out"
summary=$out/summary.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=lib/provenance.sh
source scripts/lib/provenance.sh >"$tmp/provenance"
cat "$tmp/provenance"

echo
echo "== cargo build --release --example shard_choice"
cargo build --release --example shard_choice
bin=target/release/examples/shard_choice

# label|arguments
configs=(
    "a, 2 cores|--design a --executors 2"
    "b, 2 cores|--design b --executors 2"
    "b-batch, 2 cores|--design b-batch --executors 2"
    "a, 1 core (baseline)|--design a --executors 1"
    "a, conns on core 0 only|--design a --executors 2 --active 1"
    "b, conns on core 0 only|--design b --executors 2 --active 1"
    "b-batch, conns on core 0 only|--design b-batch --executors 2 --active 1"
)
common="--ops $OPS --pool $POOL --conns $CONNS --limit-s $LIMIT"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

: >"$tmp/results"
: >"$tmp/raw"
for round in $(seq 1 "$ROUNDS"); do
    order=("${configs[@]}")
    if [ $((round % 2)) -eq 0 ]; then
        order=()
        for ((i = ${#configs[@]} - 1; i >= 0; i--)); do order+=("${configs[i]}"); done
    fi
    for c in "${order[@]}"; do
        label=${c%%|*}
        args=${c#*|}
        echo
        echo "== round $round: $label: $bin $args $common"
        # shellcheck disable=SC2086
        output=$(timeout 60 "$bin" $args $common)
        echo "$output"
        {
            echo "\$ $bin $args $common    # round $round, load $(cut -d' ' -f1 /proc/loadavg)"
            echo "$output"
            echo
        } >>"$tmp/raw"
        echo "$label|$(echo "$output" | tail -n1)" >>"$tmp/results"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
NPROC=$(nproc)
KERNEL=$(uname -r)
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
export NPROC KERNEL CPU_MODEL

python3 - "$tmp" "$summary" "$ROUNDS" "$common" "$load_before" "$load_after" <<'PY'
import os, statistics, sys

tmp, summary, rounds, common, load_before, load_after = sys.argv[1:7]
labels, runs = [], {}
for line in open(f"{tmp}/results"):
    label, kv = line.rstrip("\n").split("|", 1)
    fields = dict(f.split("=", 1) for f in kv.split())
    if label not in runs:
        labels.append(label)
        runs[label] = []
    runs[label].append(fields)

def med(label, key):
    return statistics.median(float(r[key]) for r in runs[label])

cols = [("ops/s", "ops_per_s", "{:,.0f}"), ("wall s", "wall_s", "{:.3f}"),
        ("CPU ns/op", "cpu_ns_per_op", "{:.0f}"), ("CPU ns/op min-max", None, None), ("user ns/op", "user_ns_per_op", "{:.0f}"),
        ("sys ns/op", "sys_ns_per_op", "{:.0f}"), ("forwarded", "forwarded", "{:.3f}"),
        ("vol. switches", "switches", "{:.0f}")]
table = ["| configuration | " + " | ".join(c[0] for c in cols) + " |",
         "|---|" + "---|" * len(cols)]
for label in labels:
    cells = []
    for _, k, fmt in cols:
        if k is None:
            v = [float(r["cpu_ns_per_op"]) for r in runs[label]]
            cells.append(f"{min(v):.0f}-{max(v):.0f}")
        else:
            cells.append(fmt.format(med(label, k)))
    table.append(f"| {label} | " + " | ".join(cells) + " |")
cut = any(r.get("cut") == "1" for rs in runs.values() for r in rs)
same = {r["inserted"] for l in labels if "core 0" not in l and "1 core" not in l for r in runs[l]}

A, B, BB, A1 = "a, 2 cores", "b, 2 cores", "b-batch, 2 cores", "a, 1 core (baseline)"
SA, SB, SBB = "a, conns on core 0 only", "b, conns on core 0 only", "b-batch, conns on core 0 only"
cpu = {l: med(l, "cpu_ns_per_op") for l in labels}
ops = {l: med(l, "ops_per_s") for l in labels}
fwd = med(B, "forwarded")
per_fwd_b = (cpu[B] - cpu[A]) / fwd
per_fwd_bb = (cpu[BB] - cpu[A]) / fwd
best_b = min(cpu[B], cpu[BB])

def spread(label):
    v = [float(r["cpu_ns_per_op"]) for r in runs[label]]
    return f"{min(v):.0f}-{max(v):.0f}"

text = []
if abs(cpu[A] / cpu[A1] - 1) < 0.05:
    sharing = "within this machine's noise: nothing measurable"
else:
    sharing = "cache lines of the stripes and entries moving between the cores"
text.append(
    f"CPU per REGISTER is the figure of merit (the registrar is sized by it; wall time on this "
    f"shared 2-CPU machine mostly measures the neighbours). On 2 cores, the lock-striped table "
    f"(a) costs **{cpu[A]:.0f} ns of CPU per operation**, {100 * (cpu[A] / cpu[A1] - 1):+.0f} % "
    f"against the uncontended 1-core run ({cpu[A1]:.0f} ns): that is the whole price of sharing "
    f"({sharing}; the locks almost never make a thread sleep, {med(A, 'switches'):.0f} voluntary "
    f"switches in {med(A, 'ops'):,.0f} operations). Shared-nothing (b) forwards {100 * fwd:.0f} % of the "
    f"operations and costs **{cpu[B]:.0f} ns** with a message per operation and "
    f"**{cpu[BB]:.0f} ns** batched ({per_fwd_b:+.0f} / {per_fwd_bb:+.0f} ns per forwarded "
    f"operation against locking a stripe). Batched (b) spends less user time than (a) "
    f"({med(BB, 'user_ns_per_op'):.0f} against {med(A, 'user_ns_per_op'):.0f} ns/op: no lock, "
    f"each shard's lines stay on one core) and gives it back in system time "
    f"({med(BB, 'sys_ns_per_op'):.0f} against {med(A, 'sys_ns_per_op'):.0f} ns/op): while its "
    f"connections wait for answers an executor runs out of tasks and goes through glommio's "
    f"park/wake path (io_uring_enter, membarrier, eventfd writes to the peer). Throughput "
    f"{ops[A]:,.0f} ops/s for (a) against {ops[B]:,.0f} (b) and {ops[BB]:,.0f} (b-batch).")
text.append(
    f"When every connection lands on one core (MRA: Expressway-C multiplexes many devices over "
    f"about 100 connections, which SO_REUSEPORT may put on few cores), (b) does not spread the "
    f"load usefully: the table work it moves to the idle core is a small part of a REGISTER "
    f"(TLS, parse, token check and answer stay on the connection's core), and the owner core, "
    f"having nothing else to do, parks and is woken over and over "
    f"({med(SB, 'sys_ns_per_op'):.0f} / {med(SBB, 'sys_ns_per_op'):.0f} ns/op of system "
    f"time): **{cpu[SB]:.0f} / {cpu[SBB]:.0f} ns of CPU per operation** for b / b-batch "
    f"against **{cpu[SA]:.0f} ns** for (a), at {ops[SB]:,.0f} / {ops[SBB]:,.0f} against "
    f"{ops[SA]:,.0f} ops/s.")
best_skew = min(cpu[SB], cpu[SBB])
if cpu[A] <= best_b * 1.10 and cpu[SA] < best_skew:
    if cpu[A] < best_b * 0.95:
        how = (f"it is the cheapest on a balanced load ({cpu[A]:.0f} against {best_b:.0f} ns for "
               f"the better (b))")
    else:
        how = (f"on a balanced load with both cores saturated it is within "
               f"{100 * abs(cpu[A] / cpu[BB] - 1):.0f} % of batched (b) ({cpu[A]:.0f} against "
               f"{cpu[BB]:.0f} ns; run-to-run spreads {spread(A)} and {spread(BB)} ns on this "
               f"machine) and well below (b) without batching ({cpu[B]:.0f} ns)")
    text.append(
        f"**The registrar should use (a), the lock-striped table** (`Arc<[Mutex<Shard>; 64]>`, "
        f"stripes cache-line aligned). CPU: {how}; and (b) only gets there when every forwarded "
        f"message finds its owner busy. With the connections on one core, and in the real "
        f"registrar, where a core spends most of a REGISTER on TLS, parsing, the token check and "
        f"I/O waits so that an owner is often parked, a forward pays a wake-up: {best_skew:.0f} "
        f"ns per operation for the better (b) against {cpu[SA]:.0f} ns for (a), "
        f"{100 * (best_skew / cpu[SA] - 1):.0f} % more, where (a) costs the same whichever core "
        f"a connection landed on. (a) also keeps the other users of the table simple: the admin "
        f"`/bindings/{{aor}}` lookup and the unregister-on-close of a connection's AORs lock the "
        f"stripes they need from whatever core they run on, where (b) needs a request/answer "
        f"round trip to each owner (a closing MRA connection holds AORs of every core) and an "
        f"async admin path. With 64 stripes and a lock held for one lookup and a 100-byte copy, "
        f"the locks stay uncontended at a few cores; revisit on many more cores only if a "
        f"profile shows the stripes' cache-line traffic dominating.")
else:
    text.append(
        f"**This run does not favour (a)**: (b) measured {best_b:.0f} ns against {cpu[A]:.0f} ns "
        f"on a balanced load and {best_skew:.0f} against {cpu[SA]:.0f} ns with the connections "
        f"on one core. Before choosing (b), weigh that the admin `/bindings` lookups and "
        f"unregister-on-close would need round trips to the owning cores, and rerun on a quieter "
        f"machine: on this shared one the neighbours move these figures by 10 % or more.")
if cut:
    text.append("Some runs hit the time limit (`cut=1`): their operation counts are lower.")
if len(same) != 1:
    text.append(f"Warning: the 2-core runs ended with different distinct-AOR counts: {sorted(same)}.")

prov = open(f"{tmp}/provenance").read().rstrip()
raw = open(f"{tmp}/raw").read().rstrip()
date = summary.split("shards-")[1][:8]
with open(summary, "w") as f:
    f.write(f"""# Binding-table shard design: lock-striped vs shard per core ({date[:4]}-{date[4:6]}-{date[6:]})

Command: `scripts/bench-shards.sh` (ROUNDS={rounds}; each run is
`target/release/examples/shard_choice --design a|b|b-batch --executors N [--active 1] {common}`,
the configurations interleaved, reversed on even rounds). Load average {load_before} before,
{load_after} after (the machine is shared: other builds and benchmarks ran alongside).

Load: 2 glommio executors pinned to CPUs 0 and 1 (`io_memory` 512 KiB, ring depth 256, as
src/rt), 64 connection tasks each, operations back to back: next AOR `sip:1xxxxxx@10.10.10.1`
uniform over {int(common.split("--pool ")[1].split()[0]):,}, look up, compare a u32 CSeq, insert or update a
100-byte value, yield. (a) `Arc<[Mutex<Shard>; 64]>`, stripe = hash(AOR) % 64; (b) one
shard per executor, owner = hash(AOR) % 2, the operation sent over `channel_mesh` and its
outcome sent back (b-batch: the forwarded operations of one scheduler round in one message per
peer). CPU = utime + stime of the process from /proc/self/stat (10 ms ticks) between the start
and end barriers, divided by the operations. Medians of {rounds} runs.

```
{prov}
```

| | |
|---|---|
| nproc | {os.environ["NPROC"]} |
| kernel (uname -r) | {os.environ["KERNEL"]} |
| CPU | {os.environ["CPU_MODEL"]} |

## Medians

{chr(10).join(table)}

## What this means

{chr(10).join(t + chr(10) for t in text).rstrip()}

## Raw outputs

```
{raw}
```
""")
print(f"wrote {summary}")
PY
echo
sed -n '/^## Medians/,/^## Raw outputs/p' "$summary"
