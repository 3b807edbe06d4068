//! The figures `regstorm gate` compares, read off a `summary.json` (schema 1, CONTRACT
//! "Results"). Pure: the caller reads the file, this turns its text into numbers.

use std::fmt;

/// Which way a figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One figure of a run. The names are the keys of gate.toml and the rows of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Figure {
    CompletedPerS,
    LatencyP50Us,
    LatencyP90Us,
    LatencyP99Us,
    LatencyP999Us,
    LatencyMaxUs,
    Errors,
    Timeouts,
    Status503,
    RegistrarCpuUsPerRegister,
    EngineCpuUsPerRegister,
    TimeToAllRegisteredS,
}

impl Figure {
    /// Every figure, in report order.
    pub const ALL: [Figure; 12] = [
        Figure::CompletedPerS,
        Figure::LatencyP50Us,
        Figure::LatencyP90Us,
        Figure::LatencyP99Us,
        Figure::LatencyP999Us,
        Figure::LatencyMaxUs,
        Figure::Errors,
        Figure::Timeouts,
        Figure::Status503,
        Figure::RegistrarCpuUsPerRegister,
        Figure::EngineCpuUsPerRegister,
        Figure::TimeToAllRegisteredS,
    ];

    /// The key in gate.toml, the JUnit test case name, the name on a regression line.
    pub fn name(self) -> &'static str {
        match self {
            Figure::CompletedPerS => "completed_per_s",
            Figure::LatencyP50Us => "latency_p50_us",
            Figure::LatencyP90Us => "latency_p90_us",
            Figure::LatencyP99Us => "latency_p99_us",
            Figure::LatencyP999Us => "latency_p999_us",
            Figure::LatencyMaxUs => "latency_max_us",
            Figure::Errors => "errors",
            Figure::Timeouts => "timeouts",
            Figure::Status503 => "status_503",
            Figure::RegistrarCpuUsPerRegister => "registrar_cpu_us_per_register",
            Figure::EngineCpuUsPerRegister => "engine_cpu_us_per_register",
            Figure::TimeToAllRegisteredS => "time_to_all_registered_s",
        }
    }

    /// What it means, for the report's readers.
    pub fn meaning(self) -> &'static str {
        match self {
            Figure::CompletedPerS => "REGISTER transactions answered per second",
            Figure::LatencyP50Us => "median latency from the intended send time (µs)",
            Figure::LatencyP90Us => "90th percentile latency (µs)",
            Figure::LatencyP99Us => "99th percentile latency (µs)",
            Figure::LatencyP999Us => "99.9th percentile latency (µs)",
            Figure::LatencyMaxUs => "largest latency (µs)",
            Figure::Errors => "transport failures (connect, TLS, reset)",
            Figure::Timeouts => "REGISTERs without a final answer by timeout_s",
            Figure::Status503 => "503 answers (the registrar shedding load)",
            Figure::RegistrarCpuUsPerRegister => {
                "registrar CPU per answered REGISTER (µs; bench only)"
            }
            Figure::EngineCpuUsPerRegister => "load engine CPU per REGISTER sent (µs)",
            Figure::TimeToAllRegisteredS => "seconds until every device held a binding",
        }
    }

    pub fn better(self) -> Better {
        match self {
            Figure::CompletedPerS => Better::Higher,
            _ => Better::Lower,
        }
    }

    /// Counts are shown without decimals.
    fn is_count(self) -> bool {
        matches!(
            self,
            Figure::Errors
                | Figure::Timeouts
                | Figure::Status503
                | Figure::LatencyP50Us
                | Figure::LatencyP90Us
                | Figure::LatencyP99Us
                | Figure::LatencyP999Us
                | Figure::LatencyMaxUs
        )
    }

    /// A value of this figure as the report shows it (`never` for a time that never came).
    pub fn show(self, v: f64) -> String {
        if v.is_infinite() {
            "never".to_string()
        } else if self.is_count() {
            format!("{v:.0}")
        } else if v.abs() >= 100.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.3}")
        }
    }

    pub fn from_name(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The figures of one run, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The file it was read from, for messages.
    pub source: String,
    pub profile: String,
    /// `machine.commit` of the run.
    pub commit: String,
    /// Per [`Figure::ALL`] index: `None` when the summary does not have it (a `load` run has
    /// no registrar CPU; older summaries lack the later fields). A time that never came is
    /// `f64::INFINITY`, worse than any.
    values: [Option<f64>; Figure::ALL.len()],
}

/// Why a file is not a run `gate` can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotASummary {
    pub source: String,
    pub reason: String,
}

impl fmt::Display for NotASummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: not a regstorm summary.json: {}",
            self.source, self.reason
        )
    }
}

impl std::error::Error for NotASummary {}

impl Run {
    /// Reads a `summary.json` text; `source` names it in errors.
    pub fn from_summary_json(source: &str, text: &str) -> Result<Run, NotASummary> {
        let bad = |reason: String| NotASummary {
            source: source.to_string(),
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
        if !v.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        match v.get("schema").and_then(serde_json::Value::as_u64) {
            Some(1) => {}
            Some(n) => return Err(bad(format!("schema {n}, this gate reads schema 1"))),
            None => return Err(bad("no `schema` field".into())),
        }
        let num = |path: &[&str]| -> Option<f64> {
            let mut at = &v;
            for p in path {
                at = at.get(p)?;
            }
            at.as_f64()
        };
        let need = |path: &[&str]| -> Result<f64, NotASummary> {
            num(path).ok_or_else(|| bad(format!("no number at `{}`", path.join("."))))
        };
        let responses = v
            .get("responses")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| bad("no `responses` object".into()))?;
        let answered: f64 = responses.values().filter_map(|n| n.as_f64()).sum();
        let status_503 = responses.get("503").and_then(|n| n.as_f64()).unwrap_or(0.0);

        let mut values = [None; Figure::ALL.len()];
        for (i, f) in Figure::ALL.into_iter().enumerate() {
            values[i] = match f {
                Figure::CompletedPerS => Some(need(&["completed_per_s"])?),
                Figure::LatencyP50Us => Some(need(&["latency_us", "p50"])?),
                Figure::LatencyP90Us => Some(need(&["latency_us", "p90"])?),
                Figure::LatencyP99Us => Some(need(&["latency_us", "p99"])?),
                Figure::LatencyP999Us => Some(need(&["latency_us", "p999"])?),
                Figure::LatencyMaxUs => Some(need(&["latency_us", "max"])?),
                Figure::Errors => Some(need(&["errors"])?),
                Figure::Timeouts => Some(need(&["timeouts"])?),
                Figure::Status503 => Some(status_503),
                // Known only when the registrar ran in the same process (`bench`).
                Figure::RegistrarCpuUsPerRegister => num(&["registrar", "cpu_s"])
                    .filter(|_| answered > 0.0)
                    .map(|s| s * 1e6 / answered),
                Figure::EngineCpuUsPerRegister => num(&["load", "cpu_us_per_register"]),
                Figure::TimeToAllRegisteredS => match v.get("time_to_all_registered_s") {
                    Some(serde_json::Value::Null) => Some(f64::INFINITY),
                    Some(t) => Some(t.as_f64().ok_or_else(|| {
                        bad("`time_to_all_registered_s` is neither a number nor null".into())
                    })?),
                    None => None,
                },
            };
        }
        let text_at = |a: &str, b: Option<&str>| {
            let mut at = v.get(a);
            if let Some(b) = b {
                at = at.and_then(|x| x.get(b));
            }
            at.and_then(serde_json::Value::as_str)
                .unwrap_or("unknown")
                .to_string()
        };
        Ok(Run {
            source: source.to_string(),
            profile: text_at("profile", None),
            commit: text_at("machine", Some("commit")),
            values,
        })
    }

    /// A run with the given values (tests, and callers that have their figures elsewhere).
    pub fn with_values(source: &str, values: &[(Figure, f64)]) -> Run {
        let mut run = Run {
            source: source.to_string(),
            profile: "unknown".into(),
            commit: "unknown".into(),
            values: [None; Figure::ALL.len()],
        };
        for &(f, v) in values {
            run.set(f, Some(v));
        }
        run
    }

    pub fn get(&self, f: Figure) -> Option<f64> {
        self.values[Self::index(f)]
    }

    pub fn set(&mut self, f: Figure, v: Option<f64>) {
        self.values[Self::index(f)] = v;
    }

    fn index(f: Figure) -> usize {
        Figure::ALL.iter().position(|&x| x == f).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"schema": 1, "profile": "ci", "machine": {"commit": "abc1234"},
        "completed_per_s": 200.5, "responses": {"200": 1000, "407": 200, "503": 4},
        "errors": 0, "timeouts": 1,
        "latency_us": {"p50": 900, "p90": 1500, "p99": 4000, "p999": 9000, "max": 12000},
        "registrar": {"cpu_s": 0.06}, "load": {"cpu_us_per_register": 40.0},
        "time_to_all_registered_s": null}"#;

    #[test]
    fn figures_are_read_off_a_summary() {
        let r = Run::from_summary_json("a.json", MINIMAL).unwrap();
        assert_eq!(r.profile, "ci");
        assert_eq!(r.commit, "abc1234");
        assert_eq!(r.get(Figure::CompletedPerS), Some(200.5));
        assert_eq!(r.get(Figure::LatencyP99Us), Some(4000.0));
        assert_eq!(r.get(Figure::Status503), Some(4.0));
        assert_eq!(r.get(Figure::Timeouts), Some(1.0));
        // 0.06 s over 1,204 answers.
        let cpu = r.get(Figure::RegistrarCpuUsPerRegister).unwrap();
        assert!((cpu - 60_000.0 / 1204.0).abs() < 1e-9, "{cpu}");
        assert_eq!(r.get(Figure::EngineCpuUsPerRegister), Some(40.0));
        assert_eq!(r.get(Figure::TimeToAllRegisteredS), Some(f64::INFINITY));
    }

    #[test]
    fn what_a_load_run_does_not_know_is_absent() {
        let text = MINIMAL.replace(r#""registrar": {"cpu_s": 0.06}, "#, "");
        let text = text.replace("time_to_all_registered_s", "something_else");
        let r = Run::from_summary_json("a.json", &text).unwrap();
        assert_eq!(r.get(Figure::RegistrarCpuUsPerRegister), None);
        assert_eq!(r.get(Figure::TimeToAllRegisteredS), None);
    }

    #[test]
    fn other_files_are_refused_naming_what_is_missing() {
        let e = |t: &str| Run::from_summary_json("x.json", t).unwrap_err().to_string();
        assert_eq!(
            e("[1, 2]"),
            "x.json: not a regstorm summary.json: not a JSON object"
        );
        assert!(e("name = 'ci'").contains("not JSON"));
        assert!(e(r#"{"profile": "ci"}"#).ends_with("no `schema` field"));
        assert!(e(r#"{"schema": 2}"#).ends_with("schema 2, this gate reads schema 1"));
        assert!(e(&MINIMAL.replace("\"completed_per_s\": 200.5,", ""))
            .ends_with("no number at `completed_per_s`"));
    }

    #[test]
    fn names_round_trip() {
        for f in Figure::ALL {
            assert_eq!(Figure::from_name(f.name()), Some(f));
        }
    }
}
