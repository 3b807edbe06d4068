//! `summary.json`'s schema (CONTRACT "Results"): the figures of a run as plain data, which
//! [`super::results`] builds and writes and [`super::plots`] draws. Kept apart from both so the
//! plots read the figures without importing the code that writes them.

use serde::Serialize;
use std::collections::BTreeMap;

/// Where and on what the run happened.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub rustc: String,
    pub commit: String,
}

impl Machine {
    /// Reads the machine's description (what is unknown says so).
    pub fn here() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let run = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel: run("uname", &["-r"]),
            rustc: run("rustc", &["-V"]),
            commit: run("git", &["rev-parse", "--short", "HEAD"]),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenCache {
    pub hits: u64,
    pub misses: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RegistrarFigures {
    pub rss_bytes: u64,
    pub bindings: u64,
    pub bytes_per_binding: f64,
    pub cpu_s: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadFigures {
    /// CPU seconds of the engine's threads (building devices, the run, the drain).
    pub cpu_s: f64,
    /// CPU seconds spent signing tokens: before the run and during it.
    pub mint_cpu_s: f64,
    pub lag_ms_max: u64,
    /// CPU seconds of the engine from the schedule's start to its end, signing included.
    pub run_cpu_s: f64,
    /// `run_cpu_s` per REGISTER sent (µs): what the engine spends to offer one.
    pub cpu_us_per_register: f64,
    /// First tokens signed before the schedule started (one per device), the CPU and wall
    /// time they took (the threads that signed them), and the bytes they are held in.
    pub tokens_before_run: u64,
    pub tokens_before_run_cpu_s: f64,
    pub tokens_before_run_wall_s: f64,
    pub tokens_before_run_bytes: u64,
    /// Tokens signed during the run (renewals ahead of need, and fallbacks).
    pub tokens_in_run: u64,
    /// Of those, signed in the send path because none was ready.
    pub inline_mints: u64,
    /// Peak resident memory of the process that ran the engine (`VmHWM`): the engine's own
    /// with `regstorm load`, the engine's and the registrar's with `regstorm bench`.
    pub rss_max_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimelineRow {
    pub t: u64,
    pub offered: u64,
    pub completed: u64,
    pub p99_us: u64,
    /// 503 answers (also in `completed`).
    pub status_503: u64,
    /// Of `offered`, REGISTERs sent again after a failed attempt (a 503, a timeout, a lost
    /// connection); `offered - retries` is the profile's own schedule.
    pub retries: u64,
    /// Transport failures (REGISTERs lost with their connection, failed connects) and
    /// timeouts.
    pub failures: u64,
    /// Devices holding a binding at the end of the second.
    pub registered: u64,
    /// The engine's largest schedule lag in the second (ms).
    pub lag_ms: u64,
}

/// `summary.json`, schema 1.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub schema: u32,
    pub profile: String,
    pub started: String,
    pub duration_s: f64,
    pub machine: Machine,
    pub offered_per_s: f64,
    pub completed_per_s: f64,
    pub responses: BTreeMap<String, u64>,
    pub errors: u64,
    pub timeouts: u64,
    pub latency_us: Latency,
    pub tls_handshakes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_cache: Option<TokenCache>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrar: Option<RegistrarFigures>,
    pub load: LoadFigures,
    /// The verdict for the steady phase (after the ramp, or after the storm).
    pub bottleneck: String,
    /// The verdict per phase: `ramp` and `steady`, or `storm` and `steady` without a ramp
    /// (the storm lasting until every device held a binding).
    pub bottleneck_by_phase: BTreeMap<String, String>,
    /// Where the REGISTERs went (`bench`: the in-process registrar's address).
    pub target: String,
    /// Open loop: turns that waited for a free device and went late (timed from their
    /// intended time), and turns never sent.
    pub late_sends: u64,
    pub missed_sends: u64,
    /// Seconds from the run's start to the first instant every device held a binding;
    /// null if that never happened.
    pub time_to_all_registered_s: Option<f64>,
    /// Connections lost or never made, by cause.
    pub connections_lost: BTreeMap<String, u64>,
    pub timeline: Vec<TimelineRow>,
}
