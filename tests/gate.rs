//! `regstorm gate` on real summaries (tests/data/gate: a `bench --profile ci` run): an unchanged
//! pair holds, 20 % less throughput or any error fails naming the figure, a file that is not a
//! summary or an unknown threshold key is bad input, and the JUnit XML is read by an XML parser.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/gate/ci-20261203T115619Z"
);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_regstorm")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("regstorm-gate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURE).join("summary.json")).unwrap())
        .unwrap()
}

/// Writes `summary` as DIR/NAME/summary.json (a results folder); returns the folder.
fn write_run(dir: &Path, name: &str, summary: &serde_json::Value) -> PathBuf {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("summary.json"), summary.to_string()).unwrap();
    run
}

fn gate(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin()).arg("gate").args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn an_unchanged_pair_holds() {
    let f = Path::new(FIXTURE);
    let out = gate(&[
        "--baseline".as_ref(),
        f.as_os_str(),
        "--current".as_ref(),
        f.join("summary.json").as_os_str(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.ends_with("gate: holds\n"), "{stdout}");
    assert!(!stdout.contains("regressed"), "{stdout}");
    // Every figure of the contract has its row.
    for name in [
        "completed_per_s",
        "latency_p50_us",
        "latency_p99_us",
        "errors",
        "timeouts",
        "status_503",
        "registrar_cpu_us_per_register",
        "time_to_all_registered_s",
    ] {
        assert!(stdout.contains(&format!("| {name} ")), "{name}: {stdout}");
    }
}

#[test]
fn twenty_percent_less_throughput_fails_naming_the_figure() {
    let dir = scratch("slower");
    let mut s = fixture();
    let rate = s["completed_per_s"].as_f64().unwrap();
    s["completed_per_s"] = (rate * 0.8).into();
    let slower = write_run(&dir, "slower", &s);
    let out = gate(&[
        "--baseline".as_ref(),
        FIXTURE.as_ref(),
        "--current".as_ref(),
        slower.as_os_str(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("regressed: completed_per_s: dropped 20.0 % (limit 5 %)"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("regressed:").count(), 1, "{stdout}");
    assert_eq!(text(&out.stderr), "regstorm: regression: completed_per_s\n");
}

#[test]
fn any_error_fails_naming_the_figure_with_or_without_a_baseline() {
    let dir = scratch("errors");
    let mut s = fixture();
    s["errors"] = 1.into();
    let failed = write_run(&dir, "failed", &s);
    for with_baseline in [true, false] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--current".as_ref(), failed.as_os_str()];
        if with_baseline {
            args.extend::<[&std::ffi::OsStr; 2]>(["--baseline".as_ref(), FIXTURE.as_ref()]);
        }
        let out = gate(&args);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("regressed: errors: 1 above the limit 0"),
            "{stdout}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_summary_is_bad_input() {
    let toml = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/ci.toml");
    let out = gate(&[
        "--baseline".as_ref(),
        FIXTURE.as_ref(),
        "--current".as_ref(),
        toml.as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "regstorm: {toml}: not a regstorm summary.json: not JSON"
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());

    // JSON, but not a summary.
    let dir = scratch("notsummary");
    let other = dir.join("package.json");
    std::fs::write(&other, r#"{"name": "x", "version": "1.0.0"}"#).unwrap();
    let out = gate(&["--current".as_ref(), other.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "regstorm: {}: not a regstorm summary.json: no `schema` field\n",
            other.display()
        )
    );
    // Missing, and a folder with nothing in it.
    let out = gate(&["--current".as_ref(), dir.join("nope.json").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope.json: cannot read: "));
    let empty = scratch("empty");
    let out = gate(&["--current".as_ref(), empty.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).ends_with(": no summary.json in it nor in the folders in it\n"));
}

#[test]
fn an_unknown_key_in_the_thresholds_is_bad_input_naming_file_line_and_key() {
    let dir = scratch("config");
    let cfg = dir.join("gate.toml");
    std::fs::write(
        &cfg,
        "[completed_per_s]\nmax_worse_pct = 5\n\n[errors]\nmaximum = 0\n",
    )
    .unwrap();
    let out = gate(&[
        "--current".as_ref(),
        FIXTURE.as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "regstorm: {}:5: errors.maximum: unknown field `maximum`",
            cfg.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn junit_xml_is_read_by_an_xml_parser_one_test_case_per_figure() {
    let dir = scratch("junit");
    let mut s = fixture();
    let rate = s["completed_per_s"].as_f64().unwrap();
    s["completed_per_s"] = (rate * 0.8).into();
    s["timeouts"] = 2.into();
    let slower = write_run(&dir, "slower", &s);
    let xml = dir.join("gate.xml");
    let md = dir.join("gate.md");
    let out = gate(&[
        "--baseline".as_ref(),
        FIXTURE.as_ref(),
        "--current".as_ref(),
        slower.as_os_str(),
        "--junit".as_ref(),
        xml.as_os_str(),
        "--markdown".as_ref(),
        md.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));

    let text = std::fs::read_to_string(&xml).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 12, "one test case per figure");
    assert_eq!(suite.attribute("tests"), Some("12"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, ["completed_per_s", "timeouts"]);
    let failure = cases[0]
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        failure.attribute("message"),
        Some("completed_per_s: dropped 20.0 % (limit 5 %)")
    );
    // Not gated figures are skipped, not passed.
    let skipped = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("skipped")))
        .count();
    assert_eq!(
        suite.attribute("skipped"),
        Some(skipped.to_string().as_str())
    );
    assert!(skipped >= 2, "p99.9 and max are shown, not gated");

    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.starts_with("### regstorm gate: regression in 2 figures\n"),
        "{md}"
    );
    assert!(md.contains("| `completed_per_s` |"), "{md}");
}

/// Rounds as scripts/ab.sh leaves them: a folder of results folders per side.
fn rounds(dir: &Path, side: &str, factors: &[f64]) -> PathBuf {
    let base = fixture();
    let side_dir = dir.join(side);
    for (i, k) in factors.iter().enumerate() {
        let mut s = base.clone();
        s["completed_per_s"] = (s["completed_per_s"].as_f64().unwrap() * k).into();
        write_run(&side_dir, &format!("round-{i}"), &s);
    }
    side_dir
}

#[test]
fn paired_rounds_use_the_interval_of_the_median_ratio() {
    let dir = scratch("paired");
    let a = rounds(&dir, "a", &[1.0, 1.01, 0.99, 1.0, 1.02]);
    let same = rounds(&dir, "same", &[1.01, 0.99, 1.0, 1.02, 0.98]);
    let slow = rounds(&dir, "slow", &[0.8, 0.81, 0.79, 0.8, 0.82]);
    let out = gate(&[
        "--baseline".as_ref(),
        a.as_os_str(),
        "--current".as_ref(),
        same.as_os_str(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("gate: 5 paired rounds"), "{stdout}");
    let out = gate(&[
        "--baseline".as_ref(),
        a.as_os_str(),
        "--current".as_ref(),
        slow.as_os_str(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "regressed: completed_per_s: dropped 20.0 % (limit 5 %, the whole interval beyond it)"
        ),
        "{stdout}"
    );
    // Rounds must pair up.
    let out = gate(&[
        "--baseline".as_ref(),
        a.as_os_str(),
        "--current".as_ref(),
        FIXTURE.as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "regstorm: --baseline, --current: 5 baseline runs and 1 current runs: paired rounds need as many of each\n"
    );
}
