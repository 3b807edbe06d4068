//! Load profiles: every shipped profile loads and is what it says; bad keys and values are
//! refused naming the file and key (or the flag that set them).

use regstorm::load::profile::{Body, Mode, Overrides, Profile, EMBEDDED};

#[test]
fn every_shipped_profile_loads_and_matches_its_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        // gate.toml holds the thresholds of `regstorm gate`, not a load profile.
        .filter(|name| name != "gate")
        .collect();
    names.sort();
    let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(names, embedded, "profiles/ and the embedded list agree");
    for name in &names {
        let by_name = Profile::find(name).unwrap();
        assert_eq!(&by_name.name, name);
        let file = dir.join(format!("{name}.toml"));
        let by_file = Profile::find(file.to_str().unwrap()).unwrap();
        assert_eq!(by_name, by_file);
    }
}

#[test]
fn shipped_profiles_model_what_the_issue_asks() {
    let quick = Profile::find("quick").unwrap();
    assert!(quick.duration_s < 60, "quick runs in under a minute");
    assert!(
        quick.token_ttl_s * 3 / 4 < quick.duration_s,
        "quick swaps tokens mid-run"
    );
    let storm = Profile::find("storm").unwrap();
    assert_eq!(
        (storm.devices, storm.connections, storm.ramp_s),
        (9000, 9000, 0)
    );
    let mra = Profile::find("mra").unwrap();
    assert_eq!(mra.mode, Mode::Mra);
    assert!(mra.devices_per_connection() >= 100);
    let million = Profile::find("million").unwrap();
    assert_eq!((million.devices, million.connections), (1_000_000, 100));
    assert_eq!(million.mode, Mode::Mra);
    let churn = Profile::find("churn").unwrap();
    assert!(churn.token_ttl_s < churn.duration_s / 2);
    let ci = Profile::find("ci").unwrap();
    assert!(ci.duration_s <= 10 && ci.devices <= 1000);
    let storm = Profile::find("mra-storm").unwrap();
    assert_eq!((storm.devices, storm.connections), (1_000_000, 100));
    assert_eq!(storm.mode, Mode::Mra);
    assert!(!storm.challenge_first, "fresh tokens in the first REGISTER");
    assert_eq!((storm.ramp_s, storm.duration_s), (30, 60));
    assert_eq!((storm.reregister_s, storm.token_ttl_s), (120, 3600));
    assert_eq!(storm.body, Body::Cisco);
    let stall = Profile::find("stall").unwrap();
    assert_eq!(
        (stall.rate, stall.duration_s, stall.devices),
        (2000.0, 20, 1000)
    );
    assert_eq!(stall.mode, Mode::Oauth);
    let steady = Profile::find("steady").unwrap();
    assert_eq!((steady.reregister_s, steady.token_ttl_s), (120, 3600));
    assert_eq!(steady.body, Body::Cisco);
}

fn err(text: &str) -> String {
    Profile::parse(text, "p.toml").unwrap_err().to_string()
}

#[test]
fn bad_keys_and_values_name_the_file_and_key() {
    assert!(
        err("devices = 10\nbogus = 1\n").starts_with("p.toml:2: bogus: unknown field `bogus`"),
        "{}",
        err("devices = 10\nbogus = 1\n")
    );
    assert!(
        err("bogus = 1\n").contains("bogus"),
        "{}",
        err("bogus = 1\n")
    );
    assert_eq!(
        err("devices = 0\n"),
        "p.toml: devices: 0 is not in 1..=10000000"
    );
    assert_eq!(
        err("devices = 10\nconnections = 11\n"),
        "p.toml: connections: 11 is not in 1..=devices (10): devices share connections"
    );
    assert!(
        err("mode = \"sctp\"\n").contains("mode"),
        "{}",
        err("mode = \"sctp\"\n")
    );
    assert_eq!(
        err("duration_s = 10\nramp_s = 10\n"),
        "p.toml: ramp_s: 10 leaves no time after the ramp (duration_s is 10)"
    );
    assert_eq!(
        err("rate = -1.0\n"),
        "p.toml: rate: -1 is not in 0..=10000000 REGISTER/s"
    );
    assert_eq!(
        err("token_ttl_s = 2\n"),
        "p.toml: token_ttl_s: 2 s is too short: a token is renewed at 75 % of it"
    );
    assert!(err("domain = \"a b\"\n").starts_with("p.toml: domain: "));
    assert!(err("name = \"../x\"\n").starts_with("p.toml: name: "));
    assert!(
        err("devices = \"many\"\n").contains("devices"),
        "{}",
        err("devices = \"many\"\n")
    );
    let missing = Profile::find("/nonexistent/x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("/nonexistent/x.toml") && missing.contains("quick"),
        "{missing}"
    );
}

#[test]
fn flags_override_keys_and_errors_name_the_flag() {
    let mut p = Profile::find("ci").unwrap();
    p.apply(
        &Overrides {
            devices: Some(50),
            connections: Some(5),
            rate: Some(100.0),
            ..Overrides::default()
        },
        "profiles/ci.toml",
    )
    .unwrap();
    assert_eq!((p.devices, p.connections, p.rate), (50, 5, 100.0));
    assert_eq!(p.devices_per_connection(), 10);
    let e = p
        .apply(
            &Overrides {
                connections: Some(500),
                ..Overrides::default()
            },
            "profiles/ci.toml",
        )
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("(flags): --connections: 500"), "{e}");
    let mut p = Profile::find("ci").unwrap();
    let e = p
        .apply(
            &Overrides {
                duration_s: Some(0),
                ..Overrides::default()
            },
            "profiles/ci.toml",
        )
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("(flags): --duration: 0"), "{e}");
}

#[test]
fn the_profile_sets_the_device_schedule() {
    let p = Profile::find("churn").unwrap();
    let t = p.timing();
    assert_eq!(t.reregister_ms, 5_000);
    assert_eq!(t.token_ttl_s, 20);
    assert_eq!(t.timeout_ms, 32_000);
    assert!(t.challenge_first);
}

/// A value of the wrong type: one line naming the file, the line and the key, in words rather
/// than serde's `invalid type: string "many", expected u64`.
#[test]
fn a_value_of_the_wrong_type_names_the_file_line_and_key() {
    assert_eq!(
        err("name = \"x\"\ndevices = \"many\"\n"),
        "p.toml:2: devices: expected an integer, found a string"
    );
    assert_eq!(
        err("# capacity\n\nrate = \"fast\"\n"),
        "p.toml:3: rate: expected a number, found a string"
    );
    assert_eq!(
        err("devices = 10\nchallenge_first = \"yes\"\n"),
        "p.toml:2: challenge_first: expected a boolean, found a string"
    );
    assert_eq!(
        err("devices = 10\nduration_s = -5\n"),
        "p.toml:2: duration_s: expected an integer from 0 to 18446744073709551615, found -5"
    );
    assert!(err("mode = \"sip\"\n").starts_with("p.toml:1: mode: unknown variant `sip`"));
}
