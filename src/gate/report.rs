//! The decision written out: the table for the terminal, a Markdown report fit for a
//! pull-request comment, and JUnit XML (one test case per figure) for CI systems that show
//! test results. Pure: strings in, a string out.

use super::decide::{Decision, Row, Verdict};
use super::figure::Run;
use std::fmt::Write as _;

/// Where the compared runs came from, for the reports' headers.
#[derive(Clone, Debug)]
pub struct Provenance<'a> {
    pub baseline: &'a [Run],
    pub current: &'a [Run],
    /// The thresholds file.
    pub thresholds: &'a str,
}

fn value(r: &Row, v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| r.figure.show(v))
}

fn change(r: &Row) -> String {
    r.change.map_or_else(|| "-".to_string(), |c| c.show())
}

fn commits(runs: &[Run]) -> String {
    let mut c: Vec<&str> = runs.iter().map(|r| r.commit.as_str()).collect();
    c.dedup();
    c.join(", ")
}

fn mode(d: &Decision) -> String {
    if !d.has_baseline {
        "no baseline: absolute limits only".to_string()
    } else if d.paired {
        format!(
            "{} paired rounds: median of per-round ratios, bootstrap interval in brackets",
            d.rounds
        )
    } else {
        "one run each".to_string()
    }
}

/// The terminal table, then one line per regressed figure (`regressed: NAME: why`) and the
/// outcome.
pub fn text(d: &Decision, p: &Provenance<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "gate: {} ({}; thresholds {})",
        mode(d),
        if d.has_baseline {
            format!(
                "baseline {}, current {}",
                commits(p.baseline),
                commits(p.current)
            )
        } else {
            format!("current {}", commits(p.current))
        },
        p.thresholds
    );
    let rows: Vec<[String; 5]> = d
        .rows
        .iter()
        .map(|r| {
            [
                r.figure.name().to_string(),
                value(r, r.baseline),
                value(r, r.current),
                change(r),
                r.verdict.to_string(),
            ]
        })
        .collect();
    let head = ["figure", "baseline", "current", "change", "verdict"];
    let mut w = head.map(str::len);
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |t: &mut String, c: [&str; 5]| {
        let _ = writeln!(
            t,
            "| {:<w0$} | {:>w1$} | {:>w2$} | {:>w3$} | {:<w4$} |",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        );
    };
    line(&mut t, head);
    let _ = writeln!(
        t,
        "|{}|{}|{}|{}|{}|",
        "-".repeat(w[0] + 2),
        "-".repeat(w[1] + 2),
        "-".repeat(w[2] + 2),
        "-".repeat(w[3] + 2),
        "-".repeat(w[4] + 2)
    );
    for row in &rows {
        line(&mut t, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    for r in d.regressed() {
        let _ = writeln!(t, "regressed: {}: {}", r.figure, r.reason);
    }
    for r in d.rows.iter().filter(|r| r.verdict == Verdict::Improved) {
        let _ = writeln!(t, "improved: {}: {}", r.figure, r.reason);
    }
    let _ = writeln!(
        t,
        "{}",
        if d.holds() {
            "gate: holds".to_string()
        } else {
            format!("gate: REGRESSION ({} figures)", d.regressed().count())
        }
    );
    t
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// A Markdown report for a pull-request comment.
pub fn markdown(d: &Decision, p: &Provenance<'_>) -> String {
    let mut t = String::new();
    let n = d.regressed().count();
    let _ = writeln!(
        t,
        "### regstorm gate: {}",
        if n == 0 {
            "holds".to_string()
        } else {
            format!("regression in {n} figure{}", if n == 1 { "" } else { "s" })
        }
    );
    let _ = writeln!(t);
    let profile = p.current.first().map_or("unknown", |r| r.profile.as_str());
    let _ = writeln!(
        t,
        "Profile `{profile}`; {}; thresholds `{}`.",
        mode(d),
        p.thresholds
    );
    if d.has_baseline {
        let _ = writeln!(
            t,
            "Baseline commit {}, current commit {}.",
            commits(p.baseline),
            commits(p.current)
        );
    } else {
        let _ = writeln!(t, "Current commit {}.", commits(p.current));
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "| figure | baseline | current | change | verdict |");
    let _ = writeln!(t, "|---|---:|---:|---:|---|");
    for r in &d.rows {
        let verdict = match r.verdict {
            Verdict::Regressed => format!("**regressed**: {}", r.reason),
            Verdict::Improved => format!("improved: {}", r.reason),
            v => v.to_string(),
        };
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} | {} |",
            r.figure,
            value(r, r.baseline),
            value(r, r.current),
            md_cell(&change(r)),
            md_cell(&verdict)
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "<details><summary>What the figures mean</summary>");
    let _ = writeln!(t);
    for r in &d.rows {
        let _ = writeln!(t, "- `{}`: {}", r.figure, r.figure.meaning());
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "</details>");
    t
}

/// Text escaped for XML character data and attribute values.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one `<testsuite>` named after the profile, one `<testcase>` per figure
/// (`<failure>` when regressed, `<skipped>` when not gated or unknown).
pub fn junit(d: &Decision, p: &Provenance<'_>) -> String {
    let profile = p.current.first().map_or("unknown", |r| r.profile.as_str());
    let failures = d.regressed().count();
    let skipped = d
        .rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::NotGated | Verdict::Unknown))
        .count();
    let mut t = String::new();
    let _ = writeln!(t, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        t,
        r#"<testsuites name="regstorm gate" tests="{}" failures="{failures}" errors="0" skipped="{skipped}">"#,
        d.rows.len()
    );
    let _ = writeln!(
        t,
        r#"  <testsuite name="regstorm gate {}" tests="{}" failures="{failures}" errors="0" skipped="{skipped}">"#,
        xml(profile),
        d.rows.len()
    );
    let _ = writeln!(t, "    <properties>");
    for (name, v) in [
        ("mode", mode(d)),
        ("thresholds", p.thresholds.to_string()),
        ("baseline_commit", commits(p.baseline)),
        ("current_commit", commits(p.current)),
    ] {
        let _ = writeln!(t, r#"      <property name="{name}" value="{}"/>"#, xml(&v));
    }
    let _ = writeln!(t, "    </properties>");
    for r in &d.rows {
        let _ = write!(
            t,
            r#"    <testcase classname="regstorm.gate.{}" name="{}""#,
            xml(profile),
            r.figure
        );
        let detail = format!(
            "baseline {}, current {}, change {}",
            value(r, r.baseline),
            value(r, r.current),
            change(r)
        );
        match r.verdict {
            Verdict::Regressed => {
                let _ = writeln!(t, ">");
                let _ = writeln!(
                    t,
                    r#"      <failure message="{}" type="regression">{}</failure>"#,
                    xml(&format!("{}: {}", r.figure, r.reason)),
                    xml(&detail)
                );
                let _ = writeln!(t, "    </testcase>");
            }
            Verdict::NotGated | Verdict::Unknown => {
                let _ = writeln!(t, ">");
                let _ = writeln!(t, r#"      <skipped message="{}"/>"#, xml(&r.reason));
                let _ = writeln!(t, "    </testcase>");
            }
            Verdict::Holds | Verdict::Improved => {
                let _ = writeln!(t, ">");
                let _ = writeln!(t, "      <system-out>{}</system-out>", xml(&detail));
                let _ = writeln!(t, "    </testcase>");
            }
        }
    }
    let _ = writeln!(t, "  </testsuite>");
    let _ = writeln!(t, "</testsuites>");
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::figure::Figure;
    use crate::gate::thresholds::Thresholds;

    #[test]
    fn xml_escapes_what_markup_would_take() {
        assert_eq!(
            xml(r#"a<b & "c" 'd'>"#),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(xml("bell\u{7}"), "bell?");
    }

    #[test]
    fn the_text_names_each_regressed_figure() {
        let a = Run::with_values(
            "a",
            &[(Figure::CompletedPerS, 1000.0), (Figure::Errors, 0.0)],
        );
        let b = Run::with_values(
            "b",
            &[(Figure::CompletedPerS, 800.0), (Figure::Errors, 2.0)],
        );
        let t = Thresholds::shipped();
        let d =
            crate::gate::decide(std::slice::from_ref(&a), std::slice::from_ref(&b), &t).unwrap();
        let p = Provenance {
            baseline: &[a],
            current: &[b],
            thresholds: &t.file,
        };
        let out = text(&d, &p);
        assert!(
            out.contains("regressed: completed_per_s: dropped 20.0 % (limit 5 %)\n"),
            "{out}"
        );
        assert!(
            out.contains("regressed: errors: 2 above the limit 0\n"),
            "{out}"
        );
        assert!(out.ends_with("gate: REGRESSION (2 figures)\n"), "{out}");
        let md = markdown(&d, &p);
        assert!(
            md.starts_with("### regstorm gate: regression in 2 figures\n"),
            "{md}"
        );
        let x = junit(&d, &p);
        assert!(x.contains(r#"failures="2""#), "{x}");
    }
}
