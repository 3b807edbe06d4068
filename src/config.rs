//! The registrar configuration (CONTRACT "Registrar configuration"): TOML read once, every key
//! checked, unknown keys refused, defaults filled in, paths resolved against the file's folder.
//! Errors name the file and the key (`registrar.toml: listener[1].cert: ...`).

use crate::auth::{realm_is_valid, KeySet, Policy};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration problem, naming the file, the line when it is known, and the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// The line the TOML reader pointed at (1-based), for errors found while reading the file.
    pub line: Option<usize>,
    /// Dotted key (`registrar.min_expires`, `listener[0].cert`), empty for the whole file.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `file:line:` as compilers write it, so editors and terminals jump to the line.
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The error of a TOML reader (`toml::from_str`) on `text`, read from `file`: the line the
    /// error's span starts on, the dotted key written there (tables and arrays of tables
    /// counted, as `listener[1].addr`), and serde's wording made plain (`expected an integer,
    /// found a string` rather than `invalid type: string "sixty", expected u32`).
    pub fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
        // toml's message spans lines (with a source excerpt); its first line is the reason.
        let first = e.message().lines().next().unwrap_or("invalid TOML");
        let (line, key) = match e.span() {
            Some(span) => {
                let at = span.start.min(text.len());
                let line = text[..at].matches('\n').count() + 1;
                (Some(line), key_at(text, line))
            }
            None => (None, String::new()),
        };
        ConfigError {
            file: file.to_string(),
            line,
            key,
            reason: plain_serde_message(first),
        }
    }
}

/// The dotted key of the TOML line `line` (1-based): the key before `=` on it (or on the
/// nearest line above that has one, for a value that spans lines), under the table or array
/// element opened last. A table header line names the table itself.
fn key_at(text: &str, line: usize) -> String {
    let mut table = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    let mut key = String::new();
    for l in text.lines().take(line) {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    arrays.push((name.clone(), 0));
                    0
                }
            };
            table = format!("{name}[{n}]");
            key.clear();
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
            key.clear();
        } else if let Some((k, _)) = t.split_once('=').filter(|_| !t.starts_with('#')) {
            key = k.trim().trim_matches(['"', '\'']).to_string();
        }
    }
    match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}

/// serde's `invalid type: string "sixty", expected u32` as `expected an integer, found a
/// string`; `invalid value: integer `-1`, expected u32` as `expected an integer from 0 to
/// 4294967295, found -1`. Other messages (unknown field, unknown variant, TOML syntax) are
/// already plain and pass unchanged.
fn plain_serde_message(msg: &str) -> String {
    fn expected(e: &str) -> &str {
        match e {
            "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
                "an integer"
            }
            "f32" | "f64" => "a number",
            "a boolean" | "bool" => "a boolean",
            "a string" | "a borrowed string" | "path string" | "string" => "a string",
            "a sequence" => "an array",
            e if e.starts_with("struct ") || e.starts_with("a map") => "a table",
            // A unit enum is written as one of its names.
            e if e.starts_with("enum ") => "a string",
            e => e,
        }
    }
    fn found(u: &str) -> &str {
        match u.split_once(' ').map_or(u, |(kind, _)| kind) {
            "string" => "a string",
            "integer" => "an integer",
            "floating" => "a float",
            "boolean" => "a boolean",
            "sequence" => "an array",
            "map" => "a table",
            _ => u,
        }
    }
    fn range(e: &str) -> Option<(i128, i128)> {
        Some(match e {
            "u8" => (0, u8::MAX.into()),
            "u16" => (0, u16::MAX.into()),
            "u32" => (0, u32::MAX.into()),
            "u64" | "usize" => (0, u64::MAX.into()),
            _ => return None,
        })
    }
    if let Some((u, e)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|r| r.rsplit_once(", expected "))
    {
        return format!("expected {}, found {}", expected(e), found(u));
    }
    if let Some((u, e)) = msg
        .strip_prefix("invalid value: integer `")
        .and_then(|r| r.rsplit_once("`, expected "))
    {
        if let Some((lo, hi)) = range(e) {
            return format!("expected an integer from {lo} to {hi}, found {u}");
        }
    }
    msg.to_string()
}

/// Which challenge a registrar sends when credentials are missing or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    /// 407 with Proxy-Authenticate, as Unified CM does.
    Proxy,
    /// 401 with WWW-Authenticate (RFC 8898).
    Www,
}

/// The kinds of listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// TLS from on-premises Jabber (default port 5090).
    Oauth,
    /// Mutual TLS from Expressway-C (default port 5091).
    Mra,
    /// Plaintext TCP, for labs and tests.
    Tcp,
    /// Plaintext UDP, for labs and tests.
    Udp,
}

impl ListenerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ListenerKind::Oauth => "oauth",
            ListenerKind::Mra => "mra",
            ListenerKind::Tcp => "tcp",
            ListenerKind::Udp => "udp",
        }
    }

    fn default_addr(&self) -> SocketAddr {
        let port = match self {
            ListenerKind::Oauth => 5090,
            ListenerKind::Mra => 5091,
            ListenerKind::Tcp | ListenerKind::Udp => 5060,
        };
        SocketAddr::from(([0, 0, 0, 0], port))
    }

    /// True for the listeners that speak TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ListenerKind::Oauth | ListenerKind::Mra)
    }
}

/// What to do with a device that the directory does not list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDevices {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    registrar: RawRegistrar,
    auth: Option<RawAuth>,
    #[serde(default)]
    listener: Vec<RawListener>,
    #[serde(default)]
    limits: RawLimits,
    directory: Option<RawDirectory>,
    admin: Option<RawAdmin>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistrar {
    domain: Option<String>,
    realm: Option<String>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
    max_contacts: Option<u32>,
    retry_after_s: Option<u32>,
    challenge: Option<ChallengeKind>,
    unregister_on_close: Option<bool>,
    cores: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    jwks: Option<PathBuf>,
    #[serde(default)]
    keys: Vec<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_s: Option<u64>,
    cache_entries: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    kind: ListenerKind,
    addr: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    expressway_names: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_bytes: Option<u64>,
    handshake_timeout_s: Option<u64>,
    idle_timeout_s: Option<u64>,
    max_connections: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    file: PathBuf,
    unknown_devices: Option<UnknownDevices>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    addr: String,
}

/// `[registrar]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarSection {
    pub domain: Option<String>,
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub max_contacts: u32,
    pub retry_after_s: u32,
    pub challenge: ChallengeKind,
    pub unregister_on_close: bool,
    /// 0: every online core.
    pub cores: u32,
}

impl Default for RegistrarSection {
    /// The contract's defaults (Unified CM's values: 60 to 120 s, Retry-After 35).
    fn default() -> Self {
        RegistrarSection {
            domain: None,
            realm: "ccmsipline".to_string(),
            min_expires: 60,
            max_expires: 120,
            max_contacts: 10,
            retry_after_s: 35,
            challenge: ChallengeKind::Proxy,
            unregister_on_close: true,
            cores: 0,
        }
    }
}

/// `[auth]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSection {
    pub jwks: Option<PathBuf>,
    pub keys: Vec<PathBuf>,
    pub policy: Policy,
    pub cache_entries: usize,
}

/// One `[[listener]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub kind: ListenerKind,
    pub addr: SocketAddr,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub expressway_names: Vec<String>,
}

/// The longest handshake or idle timeout accepted (a week, in seconds).
pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;

/// `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub handshake_timeout_s: u64,
    pub idle_timeout_s: u64,
    pub max_connections: usize,
}

impl Default for Limits {
    /// The contract's defaults.
    fn default() -> Self {
        Limits {
            max_message_bytes: 65_536,
            handshake_timeout_s: 10,
            idle_timeout_s: 360,
            max_connections: 18_000,
        }
    }
}

/// `[directory]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectorySection {
    pub file: PathBuf,
    pub unknown_devices: UnknownDevices,
}

/// A checked registrar configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it came from (for messages).
    pub file: PathBuf,
    pub registrar: RegistrarSection,
    pub auth: AuthSection,
    pub listeners: Vec<Listener>,
    pub limits: Limits,
    pub directory: Option<DirectorySection>,
    pub admin: Option<SocketAddr>,
}

impl Config {
    /// Reads and checks `path`. Relative paths inside resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: None,
            file: path.display().to_string(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Checks `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let err = |key: &str, reason: String| ConfigError {
            line: None,
            file: file.clone(),
            key: key.to_string(),
            reason,
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(&file, text, &e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let r = raw.registrar;
        let d = RegistrarSection::default();
        let realm = r.realm.unwrap_or(d.realm);
        if !realm_is_valid(&realm) {
            return Err(err(
                "registrar.realm",
                format!("{realm:?} must be printable ASCII without '\"' or '\\\\'"),
            ));
        }
        if let Some(d) = &r.domain {
            if crate::sip::Uri::parse(format!("sip:{d}").as_bytes())
                .and_then(|u| u.sip().copied())
                .is_none_or(|u| u.user.is_some() || !u.params.is_empty())
            {
                return Err(err(
                    "registrar.domain",
                    format!("{d:?} is not a host name or address"),
                ));
            }
        }
        let min_expires = r.min_expires.unwrap_or(d.min_expires);
        let max_expires = r.max_expires.unwrap_or(d.max_expires);
        if max_expires == 0 {
            return Err(err("registrar.max_expires", "must be at least 1".into()));
        }
        if min_expires > max_expires {
            return Err(err(
                "registrar.min_expires",
                format!("{min_expires} is above max_expires ({max_expires})"),
            ));
        }
        let max_contacts = r.max_contacts.unwrap_or(d.max_contacts);
        if max_contacts == 0 {
            return Err(err("registrar.max_contacts", "must be at least 1".into()));
        }
        let registrar = RegistrarSection {
            domain: r.domain,
            realm,
            min_expires,
            max_expires,
            max_contacts,
            retry_after_s: r.retry_after_s.unwrap_or(d.retry_after_s),
            challenge: r.challenge.unwrap_or(d.challenge),
            unregister_on_close: r.unregister_on_close.unwrap_or(d.unregister_on_close),
            cores: r.cores.unwrap_or(d.cores),
        };

        let a = raw.auth.ok_or_else(|| {
            err(
                "auth",
                "missing: a registrar needs keys to check tokens".into(),
            )
        })?;
        if a.jwks.is_none() && a.keys.is_empty() {
            return Err(err("auth.jwks", "missing: set jwks or keys".into()));
        }
        let cache_entries = a.cache_entries.unwrap_or(1_000_000);
        if cache_entries == 0 || cache_entries > 100_000_000 {
            return Err(err(
                "auth.cache_entries",
                format!("{cache_entries} is outside 1..=100000000"),
            ));
        }
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let auth = AuthSection {
            jwks: a.jwks.map(resolve),
            keys: a.keys.into_iter().map(resolve).collect(),
            policy: Policy {
                issuer: nonempty(a.issuer),
                audience: nonempty(a.audience),
                leeway_s: a.leeway_s.unwrap_or(30),
            },
            cache_entries: cache_entries as usize,
        };

        if raw.listener.is_empty() {
            return Err(err("listener", "missing: at least one [[listener]]".into()));
        }
        let mut listeners = Vec::new();
        for (i, l) in raw.listener.into_iter().enumerate() {
            let key = |k: &str| format!("listener[{i}].{k}");
            let addr = match &l.addr {
                None => l.kind.default_addr(),
                Some(a) => a
                    .parse()
                    .map_err(|_| err(&key("addr"), format!("{a:?} is not an address:port")))?,
            };
            if l.kind.is_tls() {
                for (name, v) in [("cert", &l.cert), ("key", &l.key)] {
                    if v.is_none() {
                        return Err(err(
                            &key(name),
                            format!("missing (required for kind \"{}\")", l.kind.as_str()),
                        ));
                    }
                }
            } else {
                for (name, present) in [
                    ("cert", l.cert.is_some()),
                    ("key", l.key.is_some()),
                    ("client_ca", l.client_ca.is_some()),
                    ("expressway_names", l.expressway_names.is_some()),
                ] {
                    if present {
                        return Err(err(
                            &key(name),
                            format!("not allowed for kind \"{}\" (plaintext)", l.kind.as_str()),
                        ));
                    }
                }
            }
            let names = l.expressway_names.unwrap_or_default();
            match l.kind {
                ListenerKind::Mra => {
                    if l.client_ca.is_none() {
                        return Err(err(
                            &key("client_ca"),
                            "missing (required for kind \"mra\")".into(),
                        ));
                    }
                    if names.is_empty() || names.iter().any(|n| n.is_empty()) {
                        return Err(err(
                            &key("expressway_names"),
                            "must list at least one non-empty name".into(),
                        ));
                    }
                }
                ListenerKind::Oauth if l.client_ca.is_some() || !names.is_empty() => {
                    return Err(err(
                        &key("client_ca"),
                        "only kind \"mra\" verifies client certificates".into(),
                    ));
                }
                _ => {}
            }
            // Port 0 asks the system for a free port, a different one each time.
            if let Some(prev) = listeners.iter().position(|p: &Listener| {
                addr.port() != 0
                    && p.addr == addr
                    && (p.kind == ListenerKind::Udp) == (l.kind == ListenerKind::Udp)
            }) {
                return Err(err(
                    &key("addr"),
                    format!("{addr} is also listener[{prev}]'s address"),
                ));
            }
            listeners.push(Listener {
                kind: l.kind,
                addr,
                cert: l.cert.map(resolve),
                key: l.key.map(resolve),
                client_ca: l.client_ca.map(resolve),
                expressway_names: names,
            });
        }

        let lim = raw.limits;
        let dl = Limits::default();
        let max_message_bytes = lim.max_message_bytes.unwrap_or(dl.max_message_bytes as u64);
        if !(1024..=1 << 20).contains(&max_message_bytes) {
            return Err(err(
                "limits.max_message_bytes",
                format!("{max_message_bytes} is outside 1024..=1048576"),
            ));
        }
        let max_connections = lim.max_connections.unwrap_or(dl.max_connections as u64);
        if max_connections == 0 {
            return Err(err("limits.max_connections", "must be at least 1".into()));
        }
        let limits = Limits {
            max_message_bytes: max_message_bytes as usize,
            handshake_timeout_s: lim
                .handshake_timeout_s
                .unwrap_or(dl.handshake_timeout_s)
                .max(1),
            idle_timeout_s: lim.idle_timeout_s.unwrap_or(dl.idle_timeout_s),
            max_connections: max_connections as usize,
        };
        if limits.handshake_timeout_s > MAX_TIMEOUT_S {
            return Err(err(
                "limits.handshake_timeout_s",
                format!(
                    "{} is above {MAX_TIMEOUT_S} (one week)",
                    limits.handshake_timeout_s
                ),
            ));
        }
        if limits.idle_timeout_s > MAX_TIMEOUT_S {
            return Err(err(
                "limits.idle_timeout_s",
                format!(
                    "{} is above {MAX_TIMEOUT_S} (one week)",
                    limits.idle_timeout_s
                ),
            ));
        }
        if limits.idle_timeout_s < u64::from(registrar.max_expires) {
            return Err(err("limits.idle_timeout_s", format!("{} is below registrar.max_expires ({}): idle clients would be cut before they re-register", limits.idle_timeout_s, registrar.max_expires)));
        }

        let directory = raw.directory.map(|d| DirectorySection {
            file: resolve(d.file),
            unknown_devices: d.unknown_devices.unwrap_or(UnknownDevices::Allow),
        });
        let admin =
            match raw.admin {
                None => None,
                Some(a) => Some(a.addr.parse().map_err(|_| {
                    err("admin.addr", format!("{:?} is not an address:port", a.addr))
                })?),
            };
        Ok(Config {
            file: path.to_path_buf(),
            registrar,
            auth,
            listeners,
            limits,
            directory,
            admin,
        })
    }

    /// Loads the key set the configuration names (what `serve --check` and start-up do).
    pub fn load_keys(&self) -> Result<KeySet, ConfigError> {
        let pems: Vec<&Path> = self.auth.keys.iter().map(PathBuf::as_path).collect();
        KeySet::load(self.auth.jwks.as_deref(), &pems).map_err(|e| ConfigError {
            line: None,
            file: self.file.display().to_string(),
            key: "auth".into(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[registrar]
domain = "10.10.10.1"
realm = "ccmsipline"
min_expires = 60
max_expires = 120
max_contacts = 10
retry_after_s = 35
challenge = "proxy"
unregister_on_close = true
cores = 0

[auth]
jwks = "jwks.json"
keys = []
issuer = ""
audience = ""
leeway_s = 30
cache_entries = 1000000

[[listener]]
kind = "oauth"
addr = "0.0.0.0:5090"
cert = "server.pem"
key = "server.key"

[[listener]]
kind = "mra"
addr = "0.0.0.0:5091"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
expressway_names = ["expc1.example.com"]

[[listener]]
kind = "tcp"
addr = "127.0.0.1:5060"

[limits]
max_message_bytes = 65536
handshake_timeout_s = 10
idle_timeout_s = 360
max_connections = 18000

[directory]
file = "devices.toml"
unknown_devices = "allow"

[admin]
addr = "127.0.0.1:9090"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/regstorm/registrar.toml"))
    }

    #[test]
    fn the_contract_example_parses_with_paths_resolved() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.registrar.domain.as_deref(), Some("10.10.10.1"));
        assert_eq!(
            c.auth.jwks.as_deref(),
            Some(Path::new("/etc/regstorm/jwks.json"))
        );
        assert_eq!(c.auth.policy.issuer, None, "empty issuer means unchecked");
        assert_eq!(c.listeners.len(), 3);
        assert_eq!(c.listeners[1].expressway_names, ["expc1.example.com"]);
        assert_eq!(
            c.listeners[1].client_ca.as_deref(),
            Some(Path::new("/etc/regstorm/ca.pem"))
        );
        assert_eq!(c.admin, Some("127.0.0.1:9090".parse().unwrap()));
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c = parse("[auth]\njwks = \"/k.json\"\n[[listener]]\nkind = \"oauth\"\ncert = \"c\"\nkey = \"k\"\n").unwrap();
        assert_eq!(
            (
                c.registrar.min_expires,
                c.registrar.max_expires,
                c.registrar.retry_after_s
            ),
            (60, 120, 35)
        );
        assert_eq!(c.registrar.challenge, ChallengeKind::Proxy);
        assert_eq!(c.listeners[0].addr, "0.0.0.0:5090".parse().unwrap());
        assert_eq!(c.limits.max_message_bytes, 65536);
        assert_eq!(c.auth.cache_entries, 1_000_000);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = |text: &str| parse(text).unwrap_err().to_string();
        let base = "[auth]\njwks = \"j\"\n[[listener]]\nkind = \"tcp\"\n";
        assert!(e(&format!(
            "{base}[registrar]\nmax_expires = 10\nmin_expires = 60\n"
        ))
        .starts_with(
            "/etc/regstorm/registrar.toml: registrar.min_expires: 60 is above max_expires (10)"
        ));
        assert!(e(&format!("{base}[registrar]\nbogus = 1\n")).contains("unknown field `bogus`"));
        assert!(e(&format!("{base}[registrar]\nchallenge = \"digest\"\n"))
            .contains("unknown variant `digest`"));
        assert_eq!(
            e("[auth]\njwks = \"j\"\n[[listener]]\nkind = \"oauth\"\ncert = \"c\"\n"),
            "/etc/regstorm/registrar.toml: listener[0].key: missing (required for kind \"oauth\")"
        );
        assert_eq!(
            e("[auth]\njwks = \"j\"\n[[listener]]\nkind = \"mra\"\ncert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"\n"),
            "/etc/regstorm/registrar.toml: listener[0].expressway_names: must list at least one non-empty name"
        );
        assert_eq!(
            e("[auth]\njwks = \"j\"\n[[listener]]\nkind = \"tcp\"\ncert = \"c\"\n"),
            "/etc/regstorm/registrar.toml: listener[0].cert: not allowed for kind \"tcp\" (plaintext)"
        );
        assert_eq!(
            e(&format!("{base}[[listener]]\nkind = \"tcp\"\n")),
            "/etc/regstorm/registrar.toml: listener[1].addr: 0.0.0.0:5060 is also listener[0]'s address"
        );
        assert!(e(&format!("{base}[limits]\nidle_timeout_s = 60\n"))
            .contains("limits.idle_timeout_s: 60 is below registrar.max_expires"));
        assert!(e("[[listener]]\nkind = \"tcp\"\n").contains(": auth: missing"));
        assert!(e(&format!("{base}[registrar]\nrealm = \"a\\\"b\"\n")).contains("registrar.realm"));
        assert!(e(&format!("{base}[registrar]\ndomain = \"a b\"\n")).contains("registrar.domain"));
        assert!(e("not toml [").starts_with("/etc/regstorm/registrar.toml:1: "));
        // A UDP and a TCP listener may share an address.
        assert!(parse(&format!("{base}[[listener]]\nkind = \"udp\"\n")).is_ok());
    }

    /// CONTRACT "Exit status": a bad configuration is one line naming the file and the key;
    /// for a value of the wrong type, the line too (`file:line: key: reason`), in words
    /// rather than serde's `invalid type: string "sixty", expected u32`.
    #[test]
    fn a_value_of_the_wrong_type_names_the_file_line_and_key() {
        let e = |text: &str| parse(text).unwrap_err().to_string();
        let base = "[auth]\njwks = \"j\"\n[[listener]]\nkind = \"tcp\"\n";
        let at = |line: usize, rest: &str| format!("/etc/regstorm/registrar.toml:{line}: {rest}");
        assert_eq!(
            e(&format!(
                "[registrar]\nrealm = \"r\"\nmin_expires = \"sixty\"\n{base}"
            )),
            at(
                3,
                "registrar.min_expires: expected an integer, found a string"
            )
        );
        assert_eq!(
            e(&format!("{base}[limits]\nmax_connections = \"lots\"\n")),
            at(
                6,
                "limits.max_connections: expected an integer, found a string"
            )
        );
        assert_eq!(
            e(&format!("{base}[registrar]\nunregister_on_close = 1\n")),
            at(
                6,
                "registrar.unregister_on_close: expected a boolean, found an integer"
            )
        );
        assert_eq!(
            e(&format!("{base}[registrar]\nmax_expires = 1.5\n")),
            at(
                6,
                "registrar.max_expires: expected an integer, found a float"
            )
        );
        assert_eq!(
            e(&format!("{base}[registrar]\nmin_expires = -1\n")),
            at(
                6,
                "registrar.min_expires: expected an integer from 0 to 4294967295, found -1"
            )
        );
        assert_eq!(
            e(&format!(
                "{base}[[listener]]\nkind = \"udp\"\naddr = 5060\n"
            )),
            at(7, "listener[1].addr: expected a string, found an integer")
        );
        assert_eq!(
            e("[auth]\njwks = \"j\"\nkeys = \"k.pem\"\n[[listener]]\nkind = \"tcp\"\n"),
            at(3, "auth.keys: expected an array, found a string")
        );
        assert_eq!(
            e(&format!("registrar = 5\n{base}")),
            at(1, "registrar: expected a table, found an integer")
        );
        assert!(
            e(&format!("{base}[registrar]\nbogus = 1\n")).starts_with(&at(
                6,
                "registrar.bogus: unknown field `bogus`, expected one of"
            ))
        );
        assert!(e(&format!("{base}[registrar]\nchallenge = \"digest\"\n"))
            .starts_with(&at(6, "registrar.challenge: unknown variant `digest`")));
    }
}
