//! `regstorm gate`: compares runs and decides whether a change regressed (issue 13). Sans-IO:
//! [`Run::from_summary_json`] reads a summary's text, [`Thresholds::parse`] a gate.toml's,
//! [`decide`] compares numbers, and [`report`] writes the table, Markdown and JUnit XML as
//! strings. Reading files, writing them and the exit status belong to `cli.rs`.

mod decide;
mod figure;
pub mod report;
mod thresholds;

pub use self::decide::{
    bootstrap_interval, decide, median, ratio, Change, Decision, Mismatch, Row, Verdict,
};
pub use self::figure::{Better, Figure, NotASummary, Run};
pub use self::thresholds::{Limit, Paired, Thresholds, DEFAULT, DEFAULT_FILE};
