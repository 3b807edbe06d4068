//! `regstorm bench --profile ci` end to end: the registrar and the load engine in one process
//! over loopback TLS, the results folder checked against what the profile implies.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_regstorm")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("regstorm-bench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn bench_ci_profile_end_to_end() {
    let out = out_dir("ci");
    let run = Command::new(bin())
        .args(["bench", "--profile", "ci", "--log-level", "warn", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert!(stdout.contains("| responses 200"), "{stdout}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let dir = &dirs[0];
    assert!(dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("ci-"));
    for f in [
        "summary.json",
        "summary.md",
        "latency.hlog",
        "throughput.svg",
        "latency.svg",
    ] {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len > 0, "{f} is empty");
    }
    let svg = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("p99"),
        "latency.svg"
    );
    let hlog = std::fs::read_to_string(dir.join("latency.hlog")).unwrap();
    assert!(hlog.contains("#[StartTime:"), "an interval log header");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["schema"], 1);
    assert_eq!(s["profile"], "ci");
    let devices = 200u64;
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    // Every device: its first REGISTER challenged once, then 200s every second (6 s, 1 s ramp).
    assert_eq!(n(&s["responses"]["407"]), devices, "{}", s["responses"]);
    let ok = n(&s["responses"]["200"]);
    assert!(ok >= devices * 4 && ok <= devices * 7, "{ok} 200s");
    assert_eq!(n(&s["errors"]), 0);
    assert_eq!(n(&s["timeouts"]), 0);
    assert_eq!(n(&s["tls_handshakes"]), 20);
    // 4-second tokens renewed at 3 s: the first token and one or two renewals per device, each
    // a cache miss at the registrar; every other REGISTER with a token is a hit.
    let misses = n(&s["token_cache"]["misses"]);
    assert!(
        misses >= 2 * devices && misses <= 3 * devices,
        "{misses} misses"
    );
    assert_eq!(n(&s["token_cache"]["hits"]) + misses, ok);
    assert_eq!(n(&s["registrar"]["bindings"]), devices);
    let lat = &s["latency_us"];
    assert!(n(&lat["p50"]) <= n(&lat["p99"]) && n(&lat["p99"]) <= n(&lat["max"]));
    let timeline = s["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 6);
    let completed: u64 = timeline.iter().map(|r| n(&r["completed"])).sum();
    assert_eq!(completed, ok + devices);
    for key in [
        "machine",
        "load",
        "bottleneck",
        "offered_per_s",
        "completed_per_s",
        "started",
    ] {
        assert!(!s[key].is_null(), "{key} missing");
    }
    // The added surfaces (schema 1, fields only added).
    assert_eq!(s["schema"], 1);
    assert!(stdout.contains("| rejected (503)"), "{stdout}");
    // Every device held a binding within the 1 s ramp and some milliseconds.
    let all = s["time_to_all_registered_s"].as_f64().unwrap();
    assert!((0.9..2.0).contains(&all), "{all}");
    let lost = s["connections_lost"].as_object().unwrap();
    for cause in ["peer_closed", "reset", "tls", "connect_failed", "timeout"] {
        assert_eq!(lost[cause], 0, "{cause}");
    }
    assert_eq!(n(&s["late_sends"]), 0);
    assert_eq!(n(&s["missed_sends"]), 0);
    let phases = s["bottleneck_by_phase"].as_object().unwrap();
    assert!(phases.contains_key("ramp") && phases.contains_key("steady"));
    assert_eq!(s["bottleneck"], phases["steady"]);
    // Tokens: one per device signed before the run, none in the send path.
    let load = &s["load"];
    assert_eq!(n(&load["tokens_before_run"]), devices);
    assert_eq!(n(&load["inline_mints"]), 0);
    assert!(load["cpu_us_per_register"].as_f64().unwrap() > 0.0);
    assert!(
        load["mint_cpu_s"].as_f64().unwrap() >= load["tokens_before_run_cpu_s"].as_f64().unwrap()
    );
    for row in timeline {
        for key in ["status_503", "retries", "failures", "registered", "lag_ms"] {
            assert!(row[key].is_u64(), "timeline {key}: {row}");
        }
    }
    assert_eq!(n(&timeline.last().unwrap()["registered"]), devices);
    assert!(timeline.iter().all(|r| n(&r["failures"]) == 0));
    let svg = std::fs::read_to_string(dir.join("registered.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("binding"));
    let svg = std::fs::read_to_string(dir.join("throughput.svg")).unwrap();
    assert!(svg.contains("503") && svg.contains("ci -&gt; 127.0.0.1:"));
    // Axis labels in engineering notation: "400", never "400.0".
    let labels: Vec<&str> = svg
        .split("</text>")
        .filter_map(|t| t.rsplit('>').next())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    assert!(labels.contains(&"0"), "{labels:?}");
    assert!(!labels.iter().any(|l| l.ends_with(".0")), "{labels:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_profile_values_exit_2_naming_the_flag_or_key() {
    let run = Command::new(bin())
        .args(["bench", "--profile", "ci", "--devices", "0"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8(run.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--devices"), "{err}");
    let run = Command::new(bin())
        .args(["bench", "--profile", "no-such-profile"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8(run.stderr).unwrap();
    assert!(
        err.contains("no-such-profile") && err.contains("quick"),
        "{err}"
    );
}
