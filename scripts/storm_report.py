#!/usr/bin/env python3
"""One run's lines for results/storm-*/summary.md (scripts/storm.sh): the figures each storm
goal names, from the run's summary.json, the registrar's /metrics at the end of the run and its
process figures.

  storm_report.py RUN FOLDER [EXTRA_JSON]
"""
import datetime
import json
import os
import re
import sys

run, folder = sys.argv[1], sys.argv[2]
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
s = json.load(open(os.path.join(folder, "summary.json")))
proc = json.load(open(os.path.join(folder, "registrar-process.json")))
metrics = open(os.path.join(folder, "registrar-metrics.txt")).read()
tl = s["timeline"]
ramp = extra.get("ramp_s", 0)


def metric(name, **labels):
    total = 0
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def arrival_cores(run_folder, summary, ramp):
    """Mean cores used by the registrar and by the rest of the machine over seconds 1 to ramp-1
    of a run, from the cpu.txt storm.sh's sampler wrote (epoch s, registrar ticks, machine busy
    ticks, once a second); None without one."""
    path = os.path.join(run_folder, "cpu.txt")
    if not os.path.exists(path):
        return None
    rows = [tuple(float(v) for v in line.split()) for line in open(path) if len(line.split()) == 3]
    t0 = datetime.datetime.strptime(summary["started"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    reg = rest = span = 0.0
    for (ta, ra, ba), (tb, rb, bb) in zip(rows, rows[1:]):
        if 1 <= (ta + tb) / 2 - t0 < ramp - 1 and rb >= ra:
            reg += (rb - ra) / 100
            rest += (bb - ba - (rb - ra)) / 100
            span += tb - ta
    return (reg / span, rest / span) if span else None


closed = {}
for line in metrics.splitlines():
    m = re.match(r'regstorm_connections_closed_total\{listener="(\w+)",reason="(\w+)"\} (\d+)', line)
    if m and int(m.group(3)) and m.group(2) not in ("peer_closed", "stopping"):
        closed[f"{m.group(1)}/{m.group(2)}"] = int(m.group(3))
r = s["responses"]
lost = {k: v for k, v in s.get("connections_lost", {}).items() if v}
lat = s["latency_us"]
print(f"- REGISTERs answered: 200 x {r.get('200', 0)}, 407 x {r.get('407', 0)}, 503 x {r.get('503', 0)}; "
      f"transport failures (errors) {s['errors']}, timeouts {s['timeouts']}; connections lost by the engine {lost or 0}")
print(f"- connections closed by the registrar (not by the peer): {closed or 0}")
print(f"- time_to_all_registered_s: {s.get('time_to_all_registered_s')}")
print(f"- latency from the intended send time: p50 {lat['p50']/1000:.1f} ms, p90 {lat['p90']/1000:.1f} ms, "
      f"p99 {lat['p99']/1000:.1f} ms, max {lat['max']/1000:.1f} ms")
after = [row.get("lag_ms", 0) for row in tl if row["t"] >= ramp]
during = [row["offered"] for row in tl if row["t"] < ramp]
load = s["load"]
print(f"- engine: schedule lag max {load['lag_ms_max']} ms over the run, {max(after) if after else 0} ms after the ramp; "
      f"CPU {load.get('run_cpu_s', load['cpu_s']):.1f} s in the run ({load.get('cpu_us_per_register', 0):.1f} us per REGISTER), "
      f"tokens signed before the run {load.get('tokens_before_run', 0)} ({load.get('tokens_before_run_cpu_s', 0):.1f} CPU s), "
      f"in the send path {load.get('inline_mints', 0)}")
if during:
    srt = sorted(during)
    print(f"- offered per second during the ramp: min {srt[0]}, median {srt[len(srt)//2]}, max {srt[-1]}")
    # The profile's own schedule is offered minus retries (503s, timeouts, lost connections);
    # whole ramp seconds only (the last may be cut short by the ramp's end).
    sched = sorted(row["offered"] - row.get("retries", 0) for row in tl if row["t"] < int(ramp))
    if sched and "devices" in extra:
        want = extra["devices"] / ramp
        print(f"- the profile's schedule during the ramp (offered less retries): min {sched[0]}, "
              f"median {sched[len(sched)//2]}, max {sched[-1]} per second, against {want:.0f} "
              f"the profile asks for (worst second {max(abs(x - want) for x in sched) / want * 100:.1f} % off); "
              f"retries {sum(row.get('retries', 0) for row in tl)} in the run")
print(f"- registrar: CPU {proc['cpu_s']} s, RSS {proc['rss_kb_before']} kB before, {proc['rss_kb_after']} kB after; "
      f"admission: verify admitted {metric('regstorm_admission_total', outcome='admitted', **{'class': 'verify'})}, "
      f"shed {metric('regstorm_admission_total', outcome='shed', **{'class': 'verify'})} (devices back at their "
      f"place: verified {metric('regstorm_admission_returns_total', outcome='verified')}, "
      f"shed again {metric('regstorm_admission_returns_total', outcome='shed')}); "
      f"connections deferred {metric('regstorm_admission_total', outcome='deferred')}; "
      f"standing-queue intervals {metric('regstorm_admission_standing_queues_total')}")
print(f"- bottleneck by phase: {s.get('bottleneck_by_phase')}")

if "cpu_limit_s" in extra:
    t = s.get("time_to_all_registered_s")
    lim = extra["cpu_limit_s"]
    verdict = "no device left unregistered" if t is not None else "NOT every device registered"
    if t is not None:
        verdict = f"{t / lim:.2f}x the CPU limit (goal <= 1.5x: {'met' if t <= 1.5 * lim else 'NOT met'})"
    print(f"- CPU limit devices x (verify + mint) / cores = {lim} s; all registered at {t} s: {verdict}")
    at60 = max([x.get("registered", 0) for x in tl if x["t"] < 60], default=0)
    print(f"- registered by 60 s (the profile's duration): {at60}")

if "quiet" in extra:
    q = json.load(open(os.path.join(extra["quiet"], "summary.json")))
    rate = s["completed_per_s"] / max(q["completed_per_s"], 1e-9)
    p99 = s["latency_us"]["p99"] / max(q["latency_us"]["p99"], 1)
    print(f"- beside the flood: completed {s['completed_per_s']:.0f}/s vs {q['completed_per_s']:.0f}/s quiet "
          f"({rate * 100:.1f} %, goal >= 90 %: {'met' if rate >= 0.9 else 'NOT met'}); p99 {s['latency_us']['p99']/1000:.1f} ms "
          f"vs {q['latency_us']['p99']/1000:.1f} ms ({p99:.2f}x, goal <= 2x: {'met' if p99 <= 2 else 'NOT met'})")
    f = os.path.join(folder, "flood.json")
    if os.path.exists(f):
        print(f"- the bad connections (scripts/flood.py): {open(f).read().strip()}")

if run == "stall":
    print(f"- late_sends {s.get('late_sends')}, missed_sends {s.get('missed_sends')}; offered {sum(x['offered'] for x in tl)}, "
          f"completed {sum(x['completed'] for x in tl)}")
    print("- per second (t, offered, completed, p99 ms): " + ", ".join(
        f"({x['t']}, {x['offered']}, {x['completed']}, {x['p99_us']/1000:.0f})" for x in tl))

if "peak" in extra:
    ramp_rows = [x for x in tl if 1 <= x["t"] < ramp]
    good = sum(x["completed"] - x.get("status_503", 0) for x in ramp_rows) / max(len(ramp_rows), 1)
    print(f"- goodput (answers other than 503 a second, seconds 1 to {ramp - 1} of the arrivals): {good:.0f}/s")
    last503 = max([x["t"] for x in tl if x.get("status_503", 0) > 0], default=None)
    print(f"- last second with a 503: {last503} (arrivals end at {ramp} s)")
    after = [x for x in tl if ramp <= x["t"] < ramp + 10]
    print("- after the arrivals end (t, answered 200, 503, p99 ms): " + ", ".join(
        f"({x['t']}, {x['completed'] - x.get('status_503', 0)}, {x.get('status_503', 0)}, {x['p99_us'] / 1000:.0f})"
        for x in after))
    cores = arrival_cores(folder, s, ramp)
    if cores:
        print(f"- CPU during the arrivals (seconds 1 to {ramp - 1}): registrar {cores[0]:.2f} cores, the rest of the "
              f"machine (the load engine) {cores[1]:.2f} cores; goodput per registrar core {good / max(cores[0], 1e-9):.0f}/s")
    if extra["peak"] and extra["peak"] != folder:
        p = json.load(open(os.path.join(extra["peak"], "summary.json")))
        prow = [x for x in p["timeline"] if 1 <= x["t"] < ramp]
        pgood = sum(x["completed"] - x.get("status_503", 0) for x in prow) / max(len(prow), 1)
        print(f"- goodput at 3x / at 1x: {good:.0f} / {pgood:.0f} = {good / max(pgood, 1e-9) * 100:.1f} % (goal >= 90 %: "
              f"{'met' if good >= 0.9 * pgood else 'NOT met'})")
        pcores = arrival_cores(extra["peak"], p, ramp)
        if cores and pcores:
            mine, theirs = good / max(cores[0], 1e-9), pgood / max(pcores[0], 1e-9)
            print(f"- per core the registrar had: {mine:.0f} / {theirs:.0f} a second = {mine / max(theirs, 1e-9) * 100:.1f} % "
                  f"(the load engine took {cores[1]:.2f} cores at 3x against {pcores[1]:.2f} at 1x)")
if "reloads" in extra:
    print(f"- SIGHUP reloads logged by the registrar: {extra['reloads']}")
