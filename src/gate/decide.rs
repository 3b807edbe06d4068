//! The decision: per figure, the baseline against the current run(s) under the thresholds.
//! Pure functions of numbers; no files, no clock, no randomness beyond a seeded stream.
//!
//! - One run on each side: the change is `current / baseline`, a regression when it is worse
//!   than `max_worse_pct` allows.
//! - Paired rounds (round i of the baseline and round i of the current run measured side by
//!   side, as `scripts/ab.sh` does): the ratio of each round, their median, and a percentile
//!   bootstrap interval of that median at `paired.confidence`. A regression only when the
//!   whole interval lies beyond the threshold, so noise between rounds cannot fail a change
//!   that did nothing; an absolute time is never compared with a stored one.
//! - No baseline: only the absolute limits (`max`, `min`) are checked.

use super::figure::{Better, Figure, Run};
use super::thresholds::{Paired, Thresholds};
use std::fmt;

/// What the gate says of one figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within every limit set for it.
    Holds,
    /// Beyond a limit: the gate fails.
    Regressed,
    /// Better than the baseline by more than `max_worse_pct` (the baseline should follow).
    Improved,
    /// No limit set: shown only.
    NotGated,
    /// A side does not have this figure (e.g. registrar CPU of a `load` run).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::NotGated => "not gated",
            Verdict::Unknown => "n/a",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The change of a figure: current over baseline (the median of per-round ratios when paired,
/// with its bootstrap interval).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub ratio: f64,
    pub interval: Option<(f64, f64)>,
}

impl Change {
    /// `+12.3 %`, `-4.0 % [-9.1, +1.2]`, `new` (from zero), `gone` (to zero).
    pub fn show(&self) -> String {
        let pct = |r: f64| {
            if r.is_infinite() {
                "new".to_string()
            } else {
                format!("{:+.1} %", (r - 1.0) * 100.0)
            }
        };
        match self.interval {
            None => pct(self.ratio),
            Some((lo, hi)) => {
                let bound = |r: f64| {
                    if r.is_infinite() {
                        "inf".to_string()
                    } else {
                        format!("{:+.1}", (r - 1.0) * 100.0)
                    }
                };
                format!("{} [{}, {}]", pct(self.ratio), bound(lo), bound(hi))
            }
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub figure: Figure,
    /// The baseline's value (the median of its rounds), when there is a baseline with it.
    pub baseline: Option<f64>,
    /// The current value (the median of its rounds).
    pub current: Option<f64>,
    pub change: Option<Change>,
    pub verdict: Verdict,
    /// Why: the limit and what crossed it, or what is missing.
    pub reason: String,
}

/// The gate's decision over every figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub rows: Vec<Row>,
    /// Runs per side (1 unless paired).
    pub rounds: usize,
    pub paired: bool,
    pub has_baseline: bool,
}

impl Decision {
    pub fn regressed(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Regressed)
    }

    pub fn holds(&self) -> bool {
        self.regressed().next().is_none()
    }
}

/// Runs that cannot be compared as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The decision for `baseline` against `current` (one run each, or as many rounds each, paired
/// in order; `baseline` may be empty: absolute limits only).
pub fn decide(baseline: &[Run], current: &[Run], t: &Thresholds) -> Result<Decision, Mismatch> {
    if current.is_empty() {
        return Err(Mismatch("no current run".into()));
    }
    if !baseline.is_empty() && baseline.len() != current.len() {
        return Err(Mismatch(format!(
            "{} baseline runs and {} current runs: paired rounds need as many of each",
            baseline.len(),
            current.len()
        )));
    }
    let paired = current.len() > 1 && !baseline.is_empty();
    let rows = Figure::ALL
        .into_iter()
        .map(|f| judge(f, baseline, current, t))
        .collect();
    Ok(Decision {
        rows,
        rounds: current.len(),
        paired,
        has_baseline: !baseline.is_empty(),
    })
}

/// Every run's value of `f`, or `None` when one lacks it.
fn values(runs: &[Run], f: Figure) -> Option<Vec<f64>> {
    runs.iter().map(|r| r.get(f)).collect()
}

fn judge(f: Figure, baseline: &[Run], current: &[Run], t: &Thresholds) -> Row {
    let limit = t.limit(f);
    let mut row = Row {
        figure: f,
        baseline: None,
        current: None,
        change: None,
        verdict: Verdict::NotGated,
        reason: String::new(),
    };
    let Some(cur) = values(current, f) else {
        row.verdict = Verdict::Unknown;
        row.reason = "not in the current run".into();
        return row;
    };
    row.current = Some(median(&cur));
    let base = if baseline.is_empty() {
        None
    } else {
        match values(baseline, f) {
            Some(b) => Some(b),
            None => {
                row.verdict = Verdict::Unknown;
                row.reason = "not in the baseline".into();
                None
            }
        }
    };
    row.baseline = base.as_deref().map(median);

    let mut failures = Vec::new();
    // Absolute limits hold for every current round: the worst one is checked.
    let highest = cur.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lowest = cur.iter().copied().fold(f64::INFINITY, f64::min);
    if let Some(max) = limit.max {
        if highest > max {
            failures.push(format!(
                "{} above the limit {}",
                f.show(highest),
                f.show(max)
            ));
        }
    }
    if let Some(min) = limit.min {
        if lowest < min {
            failures.push(format!(
                "{} below the limit {}",
                f.show(lowest),
                f.show(min)
            ));
        }
    }
    let mut improved = false;
    if let Some(b) = &base {
        let ratios: Vec<f64> = b.iter().zip(&cur).map(|(&b, &c)| ratio(b, c)).collect();
        let change = if ratios.len() > 1 {
            Change {
                ratio: median(&ratios),
                interval: Some(bootstrap_interval(&ratios, &t.paired)),
            }
        } else {
            Change {
                ratio: ratios[0],
                interval: None,
            }
        };
        row.change = Some(change);
        if let Some(pct) = limit.max_worse_pct {
            // The ratio bounds beyond which the change is worse (or better) than allowed.
            let (worse, better) = match f.better() {
                Better::Lower => (1.0 + pct / 100.0, 1.0 - pct / 100.0),
                Better::Higher => (1.0 - pct / 100.0, 1.0 + pct / 100.0),
            };
            // Single runs: the ratio itself. Paired: the interval bound nearest to "no change"
            // must be beyond the threshold, i.e. the whole interval.
            let (lo, hi) = change.interval.unwrap_or((change.ratio, change.ratio));
            let beyond_worse = match f.better() {
                Better::Lower => lo > worse,
                Better::Higher => hi < worse,
            };
            let beyond_better = match f.better() {
                Better::Lower => hi < better,
                Better::Higher => lo > better,
            };
            let word = match f.better() {
                Better::Lower => "rose",
                Better::Higher => "dropped",
            };
            if beyond_worse {
                let by = if change.ratio.is_infinite() && cur.iter().any(|c| c.is_infinite()) {
                    "to never".to_string()
                } else if change.ratio.is_infinite() {
                    "from 0".to_string()
                } else {
                    format!("{:.1} %", (change.ratio - 1.0).abs() * 100.0)
                };
                let whole = if change.interval.is_some() {
                    ", the whole interval beyond it"
                } else {
                    ""
                };
                failures.push(format!("{word} {by} (limit {pct} %{whole})"));
            } else if beyond_better {
                improved = true;
            }
        }
    }
    let gated = limit.max.is_some()
        || limit.min.is_some()
        || (limit.max_worse_pct.is_some() && base.is_some());
    if !failures.is_empty() {
        row.verdict = Verdict::Regressed;
        row.reason = failures.join("; ");
    } else if improved {
        row.verdict = Verdict::Improved;
        row.reason = format!(
            "better than the baseline by more than {} %",
            limit.max_worse_pct.unwrap_or(0.0)
        );
    } else if gated {
        row.verdict = Verdict::Holds;
        row.reason.clear();
    } else if row.verdict != Verdict::Unknown {
        // (Unknown keeps its reason: the baseline lacks the figure.)
        row.verdict = Verdict::NotGated;
        row.reason = if limit.max_worse_pct.is_some() {
            "relative limit only, and no baseline".into()
        } else {
            "no limit in the thresholds".into()
        };
    }
    row
}

/// `current / baseline`, with the edges a count or a time can reach: 0 to 0 is no change,
/// 0 to anything is infinitely more, "never" to "never" is no change, "never" to a time is
/// infinitely better.
pub fn ratio(baseline: f64, current: f64) -> f64 {
    match (baseline, current) {
        (b, c) if b == c => 1.0,
        (0.0, _) => f64::INFINITY,
        (b, c) if b.is_infinite() && c.is_finite() => 0.0,
        (b, c) => c / b,
    }
}

/// The median (mean of the middle two for an even count). `values` must not be empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    // Equal middle values are taken as they are: two infinities stay infinite.
    if n % 2 == 1 || v[n / 2 - 1] == v[n / 2] {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Percentile bootstrap interval of the median of `ratios`: `paired.resamples` resamples
/// with replacement drawn from a splitmix64 stream seeded with `paired.seed`, so the same
/// ratios always give the same interval.
pub fn bootstrap_interval(ratios: &[f64], paired: &Paired) -> (f64, f64) {
    let n = ratios.len();
    let mut state = paired.seed;
    let mut sample = vec![0.0; n];
    let mut medians: Vec<f64> = (0..paired.resamples)
        .map(|_| {
            for s in sample.iter_mut() {
                // Multiply-shift: an unbiased enough index for n far below 2^32.
                let r = crate::mix::next(&mut state) >> 32;
                *s = ratios[((r * n as u64) >> 32) as usize];
            }
            median(&sample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - paired.confidence) / 2.0;
    let at = |q: f64| {
        let i = (q * (medians.len() - 1) as f64).round() as usize;
        medians[i.min(medians.len() - 1)]
    };
    (at(tail), at(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::thresholds::Limit;

    fn run(values: &[(Figure, f64)]) -> Run {
        Run::with_values("r", values)
    }

    /// A limit of `pct` % worse than the baseline.
    fn worse_pct(pct: f64) -> Limit {
        Limit {
            max_worse_pct: Some(pct),
            ..Limit::default()
        }
    }

    fn limits() -> Thresholds {
        Thresholds::with_limits(&[
            (Figure::CompletedPerS, worse_pct(5.0)),
            (Figure::LatencyP99Us, worse_pct(20.0)),
            (
                Figure::Errors,
                Limit {
                    max: Some(0.0),
                    ..Limit::default()
                },
            ),
        ])
    }

    fn row(d: &Decision, f: Figure) -> &Row {
        d.rows.iter().find(|r| r.figure == f).unwrap()
    }

    #[test]
    fn an_unchanged_pair_holds() {
        let a = run(&[
            (Figure::CompletedPerS, 1000.0),
            (Figure::LatencyP99Us, 800.0),
            (Figure::Errors, 0.0),
        ]);
        let d = decide(
            std::slice::from_ref(&a),
            std::slice::from_ref(&a),
            &limits(),
        )
        .unwrap();
        assert!(d.holds());
        assert_eq!(row(&d, Figure::CompletedPerS).verdict, Verdict::Holds);
        assert_eq!(row(&d, Figure::Errors).verdict, Verdict::Holds);
        assert_eq!(row(&d, Figure::LatencyP50Us).verdict, Verdict::Unknown);
        assert!(!d.paired);
    }

    #[test]
    fn a_drop_beyond_the_limit_regresses_and_within_it_holds() {
        let a = run(&[(Figure::CompletedPerS, 1000.0), (Figure::Errors, 0.0)]);
        let b = run(&[(Figure::CompletedPerS, 800.0), (Figure::Errors, 0.0)]);
        let d = decide(std::slice::from_ref(&a), &[b], &limits()).unwrap();
        let r = row(&d, Figure::CompletedPerS);
        assert_eq!(r.verdict, Verdict::Regressed);
        assert_eq!(r.reason, "dropped 20.0 % (limit 5 %)");
        assert_eq!(r.change.unwrap().show(), "-20.0 %");
        let c = run(&[(Figure::CompletedPerS, 960.0), (Figure::Errors, 0.0)]);
        assert!(decide(&[a], &[c], &limits()).unwrap().holds());
    }

    #[test]
    fn any_error_fails_the_absolute_limit_even_without_a_baseline() {
        let b = run(&[(Figure::CompletedPerS, 1000.0), (Figure::Errors, 3.0)]);
        let d = decide(&[], &[b], &limits()).unwrap();
        let r = row(&d, Figure::Errors);
        assert_eq!(r.verdict, Verdict::Regressed);
        assert_eq!(r.reason, "3 above the limit 0");
        // Relative limits need a baseline: shown, not gated.
        assert_eq!(row(&d, Figure::CompletedPerS).verdict, Verdict::NotGated);
        assert_eq!(d.regressed().count(), 1);
    }

    #[test]
    fn latency_rising_beyond_the_limit_regresses_and_falling_improves() {
        let a = run(&[(Figure::LatencyP99Us, 1000.0)]);
        let up = run(&[(Figure::LatencyP99Us, 1300.0)]);
        let down = run(&[(Figure::LatencyP99Us, 700.0)]);
        let d = decide(std::slice::from_ref(&a), &[up], &limits()).unwrap();
        assert_eq!(
            row(&d, Figure::LatencyP99Us).reason,
            "rose 30.0 % (limit 20 %)"
        );
        let d = decide(&[a], &[down], &limits()).unwrap();
        assert_eq!(row(&d, Figure::LatencyP99Us).verdict, Verdict::Improved);
        assert!(d.holds());
    }

    #[test]
    fn zero_and_never_have_defined_ratios() {
        assert_eq!(ratio(0.0, 0.0), 1.0);
        assert_eq!(ratio(0.0, 4.0), f64::INFINITY);
        assert_eq!(ratio(f64::INFINITY, f64::INFINITY), 1.0);
        assert_eq!(ratio(f64::INFINITY, 3.0), 0.0);
        assert_eq!(ratio(3.0, f64::INFINITY), f64::INFINITY);
        let t = Thresholds::with_limits(&[(Figure::Status503, worse_pct(10.0))]);
        let a = run(&[(Figure::Status503, 0.0)]);
        let b = run(&[(Figure::Status503, 5.0)]);
        let d = decide(&[a], &[b], &t).unwrap();
        let r = row(&d, Figure::Status503);
        assert_eq!(r.verdict, Verdict::Regressed);
        assert_eq!(r.reason, "rose from 0 (limit 10 %)");
        assert_eq!(r.change.unwrap().show(), "new");
        // A storm that registered everyone once, and never now.
        let t = Thresholds::with_limits(&[(Figure::TimeToAllRegisteredS, worse_pct(20.0))]);
        let a = run(&[(Figure::TimeToAllRegisteredS, 3.2)]);
        let b = run(&[(Figure::TimeToAllRegisteredS, f64::INFINITY)]);
        let d = decide(&[a], &[b], &t).unwrap();
        let r = row(&d, Figure::TimeToAllRegisteredS);
        assert_eq!(r.reason, "rose to never (limit 20 %)");
        assert_eq!(
            r.current.map(|v| Figure::TimeToAllRegisteredS.show(v)),
            Some("never".into())
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::INFINITY, f64::INFINITY]), f64::INFINITY);
    }

    #[test]
    fn the_bootstrap_is_deterministic_and_brackets_the_median() {
        let r = [0.98, 1.01, 1.03, 0.99, 1.00];
        let p = Paired::default();
        let (lo, hi) = bootstrap_interval(&r, &p);
        assert_eq!((lo, hi), bootstrap_interval(&r, &p));
        assert!(lo <= median(&r) && median(&r) <= hi, "{lo} {hi}");
        assert!(lo >= 0.98 && hi <= 1.03);
        let other = Paired { seed: 2, ..p };
        // Another seed may move the bounds a little, never outside the ratios.
        let (lo2, hi2) = bootstrap_interval(&r, &other);
        assert!(lo2 >= 0.98 && hi2 <= 1.03);
    }

    fn rounds(values: &[f64]) -> Vec<Run> {
        values
            .iter()
            .map(|&v| run(&[(Figure::CompletedPerS, v)]))
            .collect()
    }

    #[test]
    fn paired_rounds_regress_only_when_the_whole_interval_is_beyond_the_limit() {
        let base = rounds(&[1000.0, 1010.0, 990.0, 1005.0, 995.0]);
        // Every round 20 % lower: the interval is far beyond 5 %.
        let slow = rounds(&[800.0, 808.0, 792.0, 804.0, 796.0]);
        let d = decide(&base, &slow, &limits()).unwrap();
        assert!(d.paired);
        let r = row(&d, Figure::CompletedPerS);
        assert_eq!(r.verdict, Verdict::Regressed, "{r:?}");
        assert!(
            r.reason.contains("the whole interval beyond it"),
            "{}",
            r.reason
        );
        // The median ratio is 8 % down, but one round is up: the interval crosses the limit.
        let noisy = rounds(&[920.0, 1030.0, 910.0, 925.0, 905.0]);
        let d = decide(&base, &noisy, &limits()).unwrap();
        let r = row(&d, Figure::CompletedPerS);
        let c = r.change.unwrap();
        let (lo, hi) = c.interval.unwrap();
        assert!(c.ratio < 0.95 && hi > 0.95, "{c:?}");
        assert!(lo < hi);
        assert_eq!(r.verdict, Verdict::Holds, "{r:?}");
    }

    #[test]
    fn paired_absolute_limits_hold_for_every_round() {
        let base: Vec<Run> = (0..3).map(|_| run(&[(Figure::Errors, 0.0)])).collect();
        let mut cur = base.clone();
        cur[1].set(Figure::Errors, Some(2.0));
        let d = decide(&base, &cur, &limits()).unwrap();
        assert_eq!(row(&d, Figure::Errors).verdict, Verdict::Regressed);
        assert_eq!(row(&d, Figure::Errors).reason, "2 above the limit 0");
    }

    #[test]
    fn unequal_rounds_are_refused() {
        let e = decide(&rounds(&[1.0, 2.0]), &rounds(&[1.0]), &limits()).unwrap_err();
        assert_eq!(
            e.0,
            "2 baseline runs and 1 current runs: paired rounds need as many of each"
        );
    }
}
