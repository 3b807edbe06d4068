//! The results of a run (CONTRACT "Results"): `summary.json`, `latency.hlog` (HdrHistogram
//! interval log, one interval per second), `summary.md` and the table printed at the end. No
//! clock or I/O decisions here beyond writing the files it is given a folder for.

use super::engine::{LinkLoss, Stats};
use super::profile::Profile;
pub use super::summary::{
    Latency, LoadFigures, Machine, RegistrarFigures, Summary, TimelineRow, TokenCache,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The engine fell behind its own schedule by more than this: it, not the registrar, was the
/// bottleneck.
pub const ENGINE_LAG_MS: u64 = 100;

/// The phases of a run, as ranges of whole seconds of the timeline.
fn phases(
    p: &Profile,
    all_registered_s: Option<f64>,
    seconds: usize,
) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let split = if p.ramp_s > 0 {
        p.ramp_s as usize
    } else {
        all_registered_s.map_or(seconds, |t| (t.ceil() as usize).max(1))
    };
    let split = split.min(seconds);
    let first = if p.ramp_s > 0 { "ramp" } else { "storm" };
    vec![(first, 0..split), ("steady", split..seconds)]
}

/// What held a phase back. The registrar, when more than 1 % of what was offered failed
/// (transport failures, timeouts) or was shed (503): the engine's lag cannot cause those, and
/// an engine verdict must not hide them. Else the engine, when it fell behind its own schedule
/// by more than [`ENGINE_LAG_MS`] in any second of the phase. Else the registrar again for any
/// failure, 503 or more than 1 % left unanswered; else nothing.
fn verdict(rows: &[TimelineRow]) -> &'static str {
    if rows.is_empty() {
        return "none";
    }
    let lag = rows.iter().map(|r| r.lag_ms).max().unwrap_or(0);
    let offered: u64 = rows.iter().map(|r| r.offered).sum();
    let completed: u64 = rows.iter().map(|r| r.completed).sum();
    let failed: u64 = rows.iter().map(|r| r.failures + r.status_503).sum();
    if failed > offered / 100 && failed > 0 {
        "registrar"
    } else if lag > ENGINE_LAG_MS {
        "load engine"
    } else if failed > 0 || completed + completed / 100 < offered {
        "registrar"
    } else {
        "none"
    }
}

/// RFC 3339 (UTC, seconds) from seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let rem = secs % 86_400;
    let (y, m, d) = crate::sip::civil_from_days((secs / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The results folder name: `<profile>-<YYYYMMDDTHHMMSSZ>`.
pub fn folder_name(profile: &str, started_s: u64) -> String {
    let t: String = rfc3339(started_s)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{profile}-{t}")
}

impl Summary {
    /// Builds the summary of a run that started at `started_s` and lasted `wall_s`.
    pub fn new(
        p: &Profile,
        stats: &Stats,
        started_s: u64,
        wall_s: f64,
        load: LoadFigures,
        machine: Machine,
    ) -> Summary {
        let offered: u64 = stats.timeline.iter().map(|t| t.offered).sum();
        let completed: u64 = stats.responses.values().sum();
        let h = &stats.latency;
        let q = |x: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(x)
            }
        };
        let registered = stats.registered_by_second();
        let timeline: Vec<TimelineRow> = stats
            .timeline
            .iter()
            .enumerate()
            .map(|(t, s)| TimelineRow {
                t: t as u64,
                offered: s.offered,
                completed: s.completed,
                p99_us: if s.latency.is_empty() {
                    0
                } else {
                    s.latency.value_at_quantile(0.99)
                },
                status_503: s.rejected,
                retries: s.retries,
                failures: s.failures,
                registered: registered[t],
                lag_ms: s.lag_ms,
            })
            .collect();
        let all_registered_s = stats.all_registered_at_us().map(|us| us as f64 / 1e6);
        let mut by_phase = BTreeMap::new();
        for (name, range) in phases(p, all_registered_s, timeline.len()) {
            by_phase.insert(name.to_string(), verdict(&timeline[range]).to_string());
        }
        // The contract's single verdict is the steady phase's; a run that never got past its
        // ramp or storm is judged whole.
        let steady = phases(p, all_registered_s, timeline.len())[1].1.clone();
        let bottleneck = if steady.is_empty() {
            verdict(&timeline)
        } else {
            verdict(&timeline[steady])
        };
        Summary {
            schema: 1,
            profile: p.name.clone(),
            started: rfc3339(started_s),
            duration_s: wall_s,
            machine,
            offered_per_s: offered as f64 / wall_s.max(1e-9),
            completed_per_s: completed as f64 / wall_s.max(1e-9),
            responses: stats
                .responses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors: stats.errors,
            timeouts: stats.timeouts,
            latency_us: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: h.max(),
            },
            tls_handshakes: stats.tls_handshakes,
            token_cache: None,
            registrar: None,
            load,
            bottleneck: bottleneck.to_string(),
            bottleneck_by_phase: by_phase,
            target: String::new(),
            late_sends: stats.late_sends,
            missed_sends: stats.missed_turns,
            time_to_all_registered_s: all_registered_s,
            connections_lost: LinkLoss::ALL
                .iter()
                .map(|l| (l.as_str().to_string(), stats.connections_lost[*l as usize]))
                .collect(),
            timeline,
        }
    }

    /// The table printed at the end and kept in summary.md.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "| {:<22} | {:>16} |", "profile", self.profile);
        let _ = writeln!(t, "|{:-<24}|{:->18}|", "", "");
        let row = |t: &mut String, k: &str, v: String| {
            let _ = writeln!(t, "| {k:<22} | {v:>16} |");
        };
        row(&mut t, "duration", format!("{:.1} s", self.duration_s));
        row(&mut t, "offered", format!("{:.0} /s", self.offered_per_s));
        row(
            &mut t,
            "completed",
            format!("{:.0} /s", self.completed_per_s),
        );
        // Answers first; the registrar shedding load (503) apart from them and from transport
        // failures, which are no answer at all.
        for (code, n) in self.responses.iter().filter(|(c, _)| *c != "503") {
            row(&mut t, &format!("responses {code}"), n.to_string());
        }
        let shed = self.responses.get("503").copied().unwrap_or(0);
        row(&mut t, "rejected (503)", shed.to_string());
        row(&mut t, "transport failures", self.errors.to_string());
        row(&mut t, "timeouts", self.timeouts.to_string());
        let lost: u64 = self.connections_lost.values().sum();
        row(&mut t, "connections lost", lost.to_string());
        for (cause, n) in self.connections_lost.iter().filter(|(_, n)| **n > 0) {
            row(&mut t, &format!("  {cause}"), n.to_string());
        }
        if self.late_sends + self.missed_sends > 0 {
            row(&mut t, "late sends", self.late_sends.to_string());
            row(&mut t, "missed sends", self.missed_sends.to_string());
        }
        row(
            &mut t,
            "all registered at",
            self.time_to_all_registered_s
                .map_or_else(|| "never".to_string(), |s| format!("{s:.1} s")),
        );
        let l = &self.latency_us;
        for (k, v) in [
            ("latency p50", l.p50),
            ("latency p90", l.p90),
            ("latency p99", l.p99),
            ("latency p99.9", l.p999),
            ("latency max", l.max),
        ] {
            row(&mut t, k, format!("{:.3} ms", v as f64 / 1000.0));
        }
        row(&mut t, "TLS handshakes", self.tls_handshakes.to_string());
        if let Some(c) = &self.token_cache {
            row(&mut t, "token cache hits", c.hits.to_string());
            row(&mut t, "token cache misses", c.misses.to_string());
        }
        if let Some(r) = &self.registrar {
            row(&mut t, "registrar bindings", r.bindings.to_string());
            row(
                &mut t,
                "registrar RSS",
                format!("{:.1} MiB", r.rss_bytes as f64 / 1048576.0),
            );
            row(&mut t, "registrar CPU", format!("{:.2} s", r.cpu_s));
        }
        row(&mut t, "load CPU", format!("{:.2} s", self.load.cpu_s));
        row(
            &mut t,
            "load CPU / REGISTER",
            format!("{:.1} µs", self.load.cpu_us_per_register),
        );
        row(
            &mut t,
            "load RSS (peak)",
            format!("{:.1} MiB", self.load.rss_max_bytes as f64 / 1048576.0),
        );
        row(
            &mut t,
            "token minting CPU",
            format!("{:.3} s", self.load.mint_cpu_s),
        );
        row(
            &mut t,
            "tokens before run",
            format!(
                "{} in {:.1} s",
                self.load.tokens_before_run, self.load.tokens_before_run_wall_s
            ),
        );
        row(
            &mut t,
            "tokens in send path",
            self.load.inline_mints.to_string(),
        );
        row(
            &mut t,
            "engine lag max",
            format!("{} ms", self.load.lag_ms_max),
        );
        row(&mut t, "bottleneck", self.bottleneck.clone());
        for (phase, v) in &self.bottleneck_by_phase {
            row(&mut t, &format!("  {phase}"), v.clone());
        }
        t
    }

    /// Writes summary.json, summary.md and latency.hlog into `dir` (created).
    pub fn write(
        &self,
        dir: &Path,
        stats: &Stats,
        command: &str,
        started_s: u64,
    ) -> Result<Vec<PathBuf>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut files = Vec::new();
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let path = dir.join("summary.json");
        std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
        let md = format!(
            "# regstorm {}: {}\n\nCommand: `{command}`\n\nStarted {}; machine: {} cores, {}, \
             kernel {}, {}, commit {}.\n\n{}\nLatency counts from each REGISTER's intended send \
             time (coordinated omission corrected); a 407 is a completed transaction.\n",
            env!("CARGO_PKG_VERSION"),
            self.profile,
            self.started,
            self.machine.cores,
            self.machine.cpu,
            self.machine.kernel,
            self.machine.rustc,
            self.machine.commit,
            self.table()
        );
        let path = dir.join("summary.md");
        std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
        let path = dir.join("latency.hlog");
        write_hlog(&path, stats, started_s).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
        super::plots::write(dir, self, stats)
            .map_err(|e| format!("{}: plots: {e}", dir.display()))?;
        files.push(dir.join("throughput.svg"));
        files.push(dir.join("latency.svg"));
        files.push(dir.join("registered.svg"));
        Ok(files)
    }
}

/// One interval per second of the run, in the HdrHistogram interval log format (V2, deflated).
fn write_hlog(path: &Path, stats: &Stats, started_s: u64) -> Result<(), String> {
    use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
    use hdrhistogram::serialization::V2DeflateSerializer;
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .with_start_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(started_s))
            .begin_log_with(&mut out, &mut serializer)
            .map_err(|e| e.to_string())?;
        for (t, s) in stats.timeline.iter().enumerate() {
            log.write_histogram(
                &s.latency,
                std::time::Duration::from_secs(t as u64),
                std::time::Duration::from_secs(1),
                None,
            )
            .map_err(|e| format!("{e:?}"))?;
        }
    }
    std::fs::write(path, out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod phase_tests {
    use super::*;
    use crate::load::engine::Second;

    fn run(ramp_s: u64, lag_ms: &[u64], failures: &[u64]) -> Summary {
        let mut p = Profile::find("ci").unwrap();
        p.ramp_s = ramp_s;
        let mut stats = Stats::default();
        for (i, (&lag, &failed)) in lag_ms.iter().zip(failures).enumerate() {
            let mut s = Second::new();
            s.offered = 100;
            s.completed = 100;
            s.lag_ms = lag;
            s.failures = failed;
            s.registered_delta = if i == 0 { 10 } else { 0 };
            stats.timeline.push(s);
        }
        stats.devices = 10;
        stats.all_registered = vec![(1_500_000, u64::MAX)];
        let load = LoadFigures {
            lag_ms_max: lag_ms.iter().copied().max().unwrap_or(0),
            ..LoadFigures::default()
        };
        let machine = Machine {
            cores: 1,
            cpu: String::new(),
            kernel: String::new(),
            rustc: String::new(),
            commit: String::new(),
        };
        Summary::new(&p, &stats, 0, lag_ms.len() as f64, load, machine)
    }

    #[test]
    fn the_bottleneck_is_judged_per_phase() {
        // The engine lagged during the ramp only: the run's verdict (the steady phase's) is
        // not "load engine".
        let s = run(2, &[300, 250, 3, 4, 2, 3], &[0; 6]);
        assert_eq!(s.bottleneck_by_phase["ramp"], "load engine");
        assert_eq!(s.bottleneck_by_phase["steady"], "none");
        assert_eq!(s.bottleneck, "none");
        // Lag in the steady phase is the run's verdict.
        let s = run(2, &[3, 3, 3, 400, 2, 3], &[0; 6]);
        assert_eq!(s.bottleneck_by_phase["ramp"], "none");
        assert_eq!(s.bottleneck, "load engine");
        // Failures after the ramp: the registrar.
        let s = run(2, &[3; 6], &[0, 0, 0, 0, 5, 0]);
        assert_eq!(s.bottleneck, "registrar");
        // The registrar failing more than 1 % is not hidden by the engine lagging as well.
        let s = run(2, &[3, 3, 3, 400, 2, 3], &[0, 0, 0, 30, 0, 0]);
        assert_eq!(s.bottleneck, "registrar");
        let s = run(2, &[3, 3, 3, 400, 2, 3], &[0, 0, 0, 1, 0, 0]);
        assert_eq!(s.bottleneck, "load engine");
        // No ramp: the storm lasts until every device held a binding (1.5 s: seconds 0 and 1).
        let s = run(0, &[500, 200, 3, 3], &[0; 4]);
        assert_eq!(s.bottleneck_by_phase.get("ramp"), None);
        assert_eq!(s.bottleneck_by_phase["storm"], "load engine");
        assert_eq!(s.bottleneck_by_phase["steady"], "none");
        assert_eq!(s.time_to_all_registered_s, Some(1.5));
        assert_eq!(s.timeline[3].registered, 10);
        let json = serde_json::to_value(&s).unwrap();
        for key in [
            "late_sends",
            "missed_sends",
            "connections_lost",
            "bottleneck_by_phase",
        ] {
            assert!(!json[key].is_null(), "{key}");
        }
        assert_eq!(json["connections_lost"]["peer_closed"], 0);
        assert!(s.table().contains("rejected (503)"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_times() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1795778903), "2026-11-27T11:28:23Z");
        assert_eq!(super::folder_name("ci", 0), "ci-19700101T000000Z");
    }
}
