//! Load profiles (CONTRACT "Load profiles"): TOML read once, every key checked, unknown keys
//! refused, defaults filled in; the profiles in `profiles/` are embedded in the binary and
//! found by name. Flags of `load` and `bench` override keys; an error names the file and key,
//! or the flag when the bad value came from one.

use super::device::Timing;
use crate::config::ConfigError;
use serde::Deserialize;
use std::path::Path;

/// The profiles shipped in `profiles/`, embedded: (name, text).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("quick", include_str!("../../profiles/quick.toml")),
    ("ci", include_str!("../../profiles/ci.toml")),
    ("steady", include_str!("../../profiles/steady.toml")),
    ("storm", include_str!("../../profiles/storm.toml")),
    ("churn", include_str!("../../profiles/churn.toml")),
    ("mra", include_str!("../../profiles/mra.toml")),
    ("million", include_str!("../../profiles/million.toml")),
    ("mra-storm", include_str!("../../profiles/mra-storm.toml")),
    ("stall", include_str!("../../profiles/stall.toml")),
    ("flood", include_str!("../../profiles/flood.toml")),
];

/// How devices reach the registrar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// TLS to the on-premises port, one connection per device or as `connections` says.
    Oauth,
    /// Mutual TLS with a client certificate, many devices per connection (Expressway-C).
    Mra,
}

/// The REGISTER body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// The ~1.3 KB multipart body Jabber sends.
    Cisco,
    None,
}

/// A checked profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    pub devices: u64,
    pub connections: u64,
    pub mode: Mode,
    pub duration_s: u64,
    pub ramp_s: u64,
    /// REGISTER/s offered (open loop); 0: closed loop per device.
    pub rate: f64,
    pub reregister_s: u64,
    pub token_ttl_s: u64,
    pub challenge_first: bool,
    pub body: Body,
    pub timeout_s: u64,
    pub domain: String,
    pub user_start: u64,
    pub seed: u64,
    pub unregister_at_end: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    devices: Option<u64>,
    connections: Option<u64>,
    mode: Option<Mode>,
    duration_s: Option<u64>,
    ramp_s: Option<u64>,
    rate: Option<f64>,
    reregister_s: Option<u64>,
    token_ttl_s: Option<u64>,
    challenge_first: Option<bool>,
    body: Option<Body>,
    timeout_s: Option<u64>,
    domain: Option<String>,
    user_start: Option<u64>,
    seed: Option<u64>,
    unregister_at_end: Option<bool>,
}

/// Flag values that override profile keys (`--devices`, `--duration`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub devices: Option<u64>,
    pub connections: Option<u64>,
    pub duration_s: Option<u64>,
    pub ramp_s: Option<u64>,
    pub rate: Option<f64>,
    pub reregister_s: Option<u64>,
    pub token_ttl_s: Option<u64>,
    pub timeout_s: Option<u64>,
    pub seed: Option<u64>,
}

/// The largest device count a profile may ask for.
pub const MAX_DEVICES: u64 = 10_000_000;
/// The longest run.
pub const MAX_DURATION_S: u64 = 24 * 3600;

impl Profile {
    /// Finds a profile: an embedded name (`quick`, `ci`, ...) or a file.
    pub fn find(name_or_file: &str) -> Result<Profile, ConfigError> {
        if let Some((_, text)) = EMBEDDED.iter().find(|(n, _)| *n == name_or_file) {
            return Profile::parse(text, &format!("profiles/{name_or_file}.toml"));
        }
        let path = Path::new(name_or_file);
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: None,
            file: name_or_file.to_string(),
            key: String::new(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                let names: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
                format!(
                    "no such file, and not a profile name ({})",
                    names.join(", ")
                )
            } else {
                e.to_string()
            },
        })?;
        Profile::parse(&text, name_or_file)
    }

    /// Parses and checks a profile's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Profile, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        let devices = raw.devices.unwrap_or(1000);
        let p = Profile {
            name: raw.name.unwrap_or_else(|| {
                Path::new(file)
                    .file_stem()
                    .map_or("profile".into(), |s| s.to_string_lossy().into_owned())
            }),
            devices,
            connections: raw.connections.unwrap_or(devices),
            mode: raw.mode.unwrap_or(Mode::Oauth),
            duration_s: raw.duration_s.unwrap_or(60),
            ramp_s: raw.ramp_s.unwrap_or(10),
            rate: raw.rate.unwrap_or(0.0),
            reregister_s: raw.reregister_s.unwrap_or(120),
            token_ttl_s: raw.token_ttl_s.unwrap_or(3600),
            challenge_first: raw.challenge_first.unwrap_or(true),
            body: raw.body.unwrap_or(Body::Cisco),
            timeout_s: raw.timeout_s.unwrap_or(32),
            domain: raw.domain.unwrap_or_else(|| "10.10.10.1".to_string()),
            user_start: raw.user_start.unwrap_or(1_000_000),
            seed: raw.seed.unwrap_or(1),
            unregister_at_end: raw.unregister_at_end.unwrap_or(false),
        };
        p.check(file, &Overrides::default())?;
        Ok(p)
    }

    /// Applies flag overrides and checks the result; an error names the flag it came from.
    pub fn apply(&mut self, o: &Overrides, file: &str) -> Result<(), ConfigError> {
        let set = |v: Option<u64>, slot: &mut u64| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(o.devices, &mut self.devices);
        set(o.connections, &mut self.connections);
        set(o.duration_s, &mut self.duration_s);
        set(o.ramp_s, &mut self.ramp_s);
        set(o.reregister_s, &mut self.reregister_s);
        set(o.token_ttl_s, &mut self.token_ttl_s);
        set(o.timeout_s, &mut self.timeout_s);
        set(o.seed, &mut self.seed);
        if let Some(r) = o.rate {
            self.rate = r;
        }
        self.check(file, o)
    }

    fn check(&self, file: &str, o: &Overrides) -> Result<(), ConfigError> {
        // The flag that set a key, when one did: errors name what the user typed.
        let name = |key: &str, from_flag: bool, flag: &str| {
            if from_flag {
                (String::from("(flags)"), format!("--{flag}"))
            } else {
                (file.to_string(), key.to_string())
            }
        };
        let fail = |(file, key): (String, String), reason: String| ConfigError {
            file,
            line: None,
            key,
            reason,
        };
        let devices = name("devices", o.devices.is_some(), "devices");
        if self.devices == 0 || self.devices > MAX_DEVICES {
            return Err(fail(
                devices,
                format!("{} is not in 1..={MAX_DEVICES}", self.devices),
            ));
        }
        let conns = name("connections", o.connections.is_some(), "connections");
        if self.connections == 0 || self.connections > self.devices {
            return Err(fail(
                conns,
                format!(
                    "{} is not in 1..=devices ({}): devices share connections",
                    self.connections, self.devices
                ),
            ));
        }
        let duration = name("duration_s", o.duration_s.is_some(), "duration");
        if self.duration_s == 0 || self.duration_s > MAX_DURATION_S {
            return Err(fail(
                duration,
                format!("{} is not in 1..={MAX_DURATION_S}", self.duration_s),
            ));
        }
        let ramp = name("ramp_s", o.ramp_s.is_some(), "ramp");
        if self.ramp_s >= self.duration_s && self.ramp_s > 0 {
            return Err(fail(
                ramp,
                format!(
                    "{} leaves no time after the ramp (duration_s is {})",
                    self.ramp_s, self.duration_s
                ),
            ));
        }
        let rate = name("rate", o.rate.is_some(), "rate");
        if !(self.rate.is_finite() && (0.0..=10_000_000.0).contains(&self.rate)) {
            return Err(fail(
                rate,
                format!("{} is not in 0..=10000000 REGISTER/s", self.rate),
            ));
        }
        let ttl = name("token_ttl_s", o.token_ttl_s.is_some(), "token-ttl");
        if self.token_ttl_s < 4 {
            return Err(fail(
                ttl,
                format!(
                    "{} s is too short: a token is renewed at 75 % of it",
                    self.token_ttl_s
                ),
            ));
        }
        let timeout = name("timeout_s", o.timeout_s.is_some(), "timeout");
        if self.timeout_s == 0 || self.timeout_s > 3600 {
            return Err(fail(
                timeout,
                format!("{} is not in 1..=3600", self.timeout_s),
            ));
        }
        let rereg = name("reregister_s", o.reregister_s.is_some(), "reregister");
        if self.reregister_s > 86_400 {
            return Err(fail(rereg, format!("{} is above a day", self.reregister_s)));
        }
        let ok_host = !self.domain.is_empty()
            && self
                .domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !ok_host {
            return Err(fail(
                (file.to_string(), "domain".into()),
                format!("{:?} is not a host name or address", self.domain),
            ));
        }
        if self.user_start.checked_add(self.devices).is_none() {
            return Err(fail(
                (file.to_string(), "user_start".into()),
                "user numbers would overflow".into(),
            ));
        }
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(fail(
                (file.to_string(), "name".into()),
                format!(
                    "{:?}: letters, digits, '-', '_' and '.' only (it names the results folder)",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The schedule each device follows.
    pub fn timing(&self) -> Timing {
        Timing {
            reregister_ms: self.reregister_s * 1000,
            token_ttl_s: self.token_ttl_s,
            challenge_first: self.challenge_first,
            timeout_ms: self.timeout_s * 1000,
            // A fleet's devices come back after a 503 spread over 20 % of Retry-After.
            retry_jitter_pct: 20,
            ..Timing::default()
        }
    }

    /// Devices per connection, rounded up (the last connections may carry one fewer).
    pub fn devices_per_connection(&self) -> u64 {
        self.devices.div_ceil(self.connections)
    }
}
