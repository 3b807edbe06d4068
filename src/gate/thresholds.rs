//! gate.toml: what each figure may do before `regstorm gate` calls it a regression. Read like
//! the registrar configuration and the load profiles: every key checked, unknown keys refused,
//! errors as `file:line: key: reason` ([`ConfigError`]). The defaults are `profiles/gate.toml`,
//! embedded in the binary.

use super::figure::Figure;
use crate::config::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The shipped thresholds (`profiles/gate.toml`), used when no `--config` is given.
pub const DEFAULT: &str = include_str!("../../profiles/gate.toml");
/// The name the shipped thresholds go by in messages.
pub const DEFAULT_FILE: &str = "profiles/gate.toml";

/// The limits on one figure. Any combination; none means the figure is shown, not gated.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limit {
    /// Relative: the current run may be worse than the baseline by at most this many percent
    /// of the baseline (worse: lower for REGISTER/s, higher for everything else).
    pub max_worse_pct: Option<f64>,
    /// Absolute: the current run's value must be at most this (every round, when paired).
    pub max: Option<f64>,
    /// Absolute: the current run's value must be at least this.
    pub min: Option<f64>,
}

impl Limit {
    pub fn is_empty(&self) -> bool {
        self.max_worse_pct.is_none() && self.max.is_none() && self.min.is_none()
    }
}

/// How paired rounds are judged: the bootstrap behind the interval of the median ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Bootstrap resamples of the per-round ratios.
    pub resamples: u32,
    /// Seed of the resampling, so the same rounds always give the same interval.
    pub seed: u64,
    /// Confidence of the interval (0.95: the 2.5th to the 97.5th percentile).
    pub confidence: f64,
}

impl Default for Paired {
    fn default() -> Self {
        Paired {
            resamples: 10_000,
            seed: 1,
            confidence: 0.95,
        }
    }
}

/// Checked thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Where they came from, for the report.
    pub file: String,
    limits: BTreeMap<Figure, Limit>,
    pub paired: Paired,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    max_worse_pct: Option<f64>,
    max: Option<f64>,
    min: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaired {
    resamples: Option<u32>,
    seed: Option<u64>,
    confidence: Option<f64>,
}

/// One table per figure (the names of [`Figure::name`]) and `[paired]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    completed_per_s: Option<RawLimit>,
    latency_p50_us: Option<RawLimit>,
    latency_p90_us: Option<RawLimit>,
    latency_p99_us: Option<RawLimit>,
    latency_p999_us: Option<RawLimit>,
    latency_max_us: Option<RawLimit>,
    errors: Option<RawLimit>,
    timeouts: Option<RawLimit>,
    status_503: Option<RawLimit>,
    registrar_cpu_us_per_register: Option<RawLimit>,
    engine_cpu_us_per_register: Option<RawLimit>,
    time_to_all_registered_s: Option<RawLimit>,
    paired: Option<RawPaired>,
}

impl Raw {
    fn take(&mut self, f: Figure) -> Option<RawLimit> {
        match f {
            Figure::CompletedPerS => self.completed_per_s.take(),
            Figure::LatencyP50Us => self.latency_p50_us.take(),
            Figure::LatencyP90Us => self.latency_p90_us.take(),
            Figure::LatencyP99Us => self.latency_p99_us.take(),
            Figure::LatencyP999Us => self.latency_p999_us.take(),
            Figure::LatencyMaxUs => self.latency_max_us.take(),
            Figure::Errors => self.errors.take(),
            Figure::Timeouts => self.timeouts.take(),
            Figure::Status503 => self.status_503.take(),
            Figure::RegistrarCpuUsPerRegister => self.registrar_cpu_us_per_register.take(),
            Figure::EngineCpuUsPerRegister => self.engine_cpu_us_per_register.take(),
            Figure::TimeToAllRegisteredS => self.time_to_all_registered_s.take(),
        }
    }
}

impl Thresholds {
    /// The shipped defaults.
    pub fn shipped() -> Thresholds {
        // A test keeps the shipped file valid; a broken one is a build defect, not user input.
        Thresholds::parse(DEFAULT, DEFAULT_FILE).expect("profiles/gate.toml is valid")
    }

    /// Checks `text`, read from `file`.
    pub fn parse(text: &str, file: &str) -> Result<Thresholds, ConfigError> {
        let err = |key: String, reason: &str| ConfigError {
            file: file.to_string(),
            line: None,
            key,
            reason: reason.to_string(),
        };
        let mut raw: Raw =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        let mut limits = BTreeMap::new();
        for f in Figure::ALL {
            let Some(r) = raw.take(f) else { continue };
            for (key, v) in [
                ("max_worse_pct", r.max_worse_pct),
                ("max", r.max),
                ("min", r.min),
            ] {
                if v.is_some_and(|v| !v.is_finite()) {
                    return Err(err(format!("{f}.{key}"), "must be a finite number"));
                }
            }
            if r.max_worse_pct.is_some_and(|p| p < 0.0) {
                return Err(err(
                    format!("{f}.max_worse_pct"),
                    "must be 0 or more (percent of the baseline)",
                ));
            }
            if let (Some(lo), Some(hi)) = (r.min, r.max) {
                if lo > hi {
                    return Err(err(format!("{f}.min"), "is above max"));
                }
            }
            limits.insert(
                f,
                Limit {
                    max_worse_pct: r.max_worse_pct,
                    max: r.max,
                    min: r.min,
                },
            );
        }
        let d = Paired::default();
        let paired = match raw.paired {
            None => d,
            Some(p) => {
                let paired = Paired {
                    resamples: p.resamples.unwrap_or(d.resamples),
                    seed: p.seed.unwrap_or(d.seed),
                    confidence: p.confidence.unwrap_or(d.confidence),
                };
                if !(100..=1_000_000).contains(&paired.resamples) {
                    return Err(err("paired.resamples".into(), "must be 100 to 1000000"));
                }
                if !(paired.confidence > 0.5 && paired.confidence < 1.0) {
                    return Err(err(
                        "paired.confidence".into(),
                        "must be between 0.5 and 1 (0.95: a 95 % interval)",
                    ));
                }
                paired
            }
        };
        Ok(Thresholds {
            file: file.to_string(),
            limits,
            paired,
        })
    }

    /// The limits on `f` (empty when gate.toml names none).
    pub fn limit(&self, f: Figure) -> Limit {
        self.limits.get(&f).copied().unwrap_or_default()
    }

    /// Thresholds with these limits (tests, and programs that build their own).
    pub fn with_limits(limits: &[(Figure, Limit)]) -> Thresholds {
        Thresholds {
            file: "(built in)".into(),
            limits: limits.iter().copied().collect(),
            paired: Paired::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(text: &str) -> String {
        Thresholds::parse(text, "gate.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_shipped_file_is_valid_and_gates_the_contract_figures() {
        let t = Thresholds::shipped();
        assert_eq!(t.limit(Figure::CompletedPerS).max_worse_pct, Some(5.0));
        assert_eq!(t.limit(Figure::Errors).max, Some(0.0));
        assert_eq!(t.limit(Figure::Timeouts).max, Some(0.0));
        assert_eq!(t.paired, Paired::default());
    }

    #[test]
    fn unknown_keys_name_the_file_line_and_key() {
        assert!(e("[completed_per_s]\nmax_drop = 5\n")
            .starts_with("gate.toml:2: completed_per_s.max_drop: unknown field `max_drop`"));
        assert!(e("\n[latency_p42_us]\nmax = 1\n")
            .starts_with("gate.toml:2: latency_p42_us: unknown field `latency_p42_us`"));
        assert!(e("[paired]\nsamples = 3\n")
            .starts_with("gate.toml:2: paired.samples: unknown field `samples`"));
    }

    #[test]
    fn bad_values_name_the_key() {
        assert_eq!(
            e("[errors]\nmax = \"none\"\n"),
            "gate.toml:2: errors.max: expected a number, found a string"
        );
        assert_eq!(
            e("[completed_per_s]\nmax_worse_pct = -5\n"),
            "gate.toml: completed_per_s.max_worse_pct: must be 0 or more (percent of the baseline)"
        );
        assert_eq!(
            e("[errors]\nmin = 3\nmax = 1\n"),
            "gate.toml: errors.min: is above max"
        );
        assert_eq!(
            e("[paired]\nconfidence = 95\n"),
            "gate.toml: paired.confidence: must be between 0.5 and 1 (0.95: a 95 % interval)"
        );
    }

    #[test]
    fn figures_left_out_are_not_gated() {
        let t = Thresholds::parse("[errors]\nmax = 0\n", "g.toml").unwrap();
        assert!(t.limit(Figure::CompletedPerS).is_empty());
        assert_eq!(t.limit(Figure::Errors).max, Some(0.0));
    }
}
