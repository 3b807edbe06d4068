//! The device directory (the Phone Security Profile of Unified CM): per device, whether OAuth
//! is on and which listener kinds it may register on.
//!
//! ```toml
//! [[device]]
//! name = "CSFrado"
//! oauth = true
//! ports = ["oauth", "mra"]
//! ```

use crate::config::{ConfigError, DirectorySection, ListenerKind, UnknownDevices};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    #[serde(default)]
    device: Vec<RawDevice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: String,
    #[serde(default = "yes")]
    oauth: bool,
    #[serde(default = "all_ports")]
    ports: Vec<ListenerKind>,
}

fn yes() -> bool {
    true
}

fn all_ports() -> Vec<ListenerKind> {
    vec![
        ListenerKind::Oauth,
        ListenerKind::Mra,
        ListenerKind::Tcp,
        ListenerKind::Udp,
    ]
}

/// What the directory says of a REGISTER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Known device, but OAuth is off for it or this listener kind is not among its ports:
    /// Unified CM's 403 "SIP OAuth Registration port Mismatch" with Retry-After.
    PortMismatch,
    /// Not in the directory, and unknown devices are denied.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Policy {
    oauth: bool,
    ports: Vec<ListenerKind>,
}

/// The loaded directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directory {
    devices: HashMap<Box<[u8]>, Policy>,
    unknown: UnknownDevices,
}

impl Directory {
    /// Parses a directory file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, unknown: UnknownDevices) -> Result<Self, ConfigError> {
        let err = |key: String, reason: String| ConfigError {
            line: None,
            file: file.to_string(),
            key,
            reason,
        };
        let raw: RawDirectory =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        let mut devices = HashMap::new();
        for (i, d) in raw.device.into_iter().enumerate() {
            if d.name.is_empty() {
                return Err(err(format!("device[{i}].name"), "empty".into()));
            }
            let policy = Policy {
                oauth: d.oauth,
                ports: d.ports,
            };
            if devices
                .insert(d.name.clone().into_bytes().into_boxed_slice(), policy)
                .is_some()
            {
                return Err(err(
                    format!("device[{i}].name"),
                    format!("{:?} is listed twice", d.name),
                ));
            }
        }
        Ok(Directory { devices, unknown })
    }

    /// Loads the file a `[directory]` section names.
    pub fn load(section: &DirectorySection) -> Result<Self, ConfigError> {
        let file = section.file.display().to_string();
        let text = std::fs::read_to_string(&section.file).map_err(|e| ConfigError {
            line: None,
            file: file.clone(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file, section.unknown_devices)
    }

    /// The verdict for `device` (the Contact's device name) registering on `listener`.
    pub fn check(&self, device: Option<&[u8]>, listener: ListenerKind) -> Verdict {
        match device.and_then(|d| self.devices.get(d)) {
            Some(p) if p.oauth && p.ports.contains(&listener) => Verdict::Allowed,
            Some(_) => Verdict::PortMismatch,
            None if self.unknown == UnknownDevices::Allow => Verdict::Allowed,
            None => Verdict::Unknown,
        }
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[device]]
name = "CSFrado"
oauth = true
ports = ["oauth"]

[[device]]
name = "CSFlegacy"
oauth = false
"#;

    #[test]
    fn verdicts() {
        let d = Directory::parse(FILE, "devices.toml", UnknownDevices::Deny).unwrap();
        assert_eq!(
            d.check(Some(b"CSFrado"), ListenerKind::Oauth),
            Verdict::Allowed
        );
        assert_eq!(
            d.check(Some(b"CSFrado"), ListenerKind::Mra),
            Verdict::PortMismatch
        );
        assert_eq!(
            d.check(Some(b"CSFlegacy"), ListenerKind::Oauth),
            Verdict::PortMismatch
        );
        assert_eq!(
            d.check(Some(b"CSFnew"), ListenerKind::Oauth),
            Verdict::Unknown
        );
        assert_eq!(d.check(None, ListenerKind::Oauth), Verdict::Unknown);
        let open = Directory::parse(FILE, "devices.toml", UnknownDevices::Allow).unwrap();
        assert_eq!(
            open.check(Some(b"CSFnew"), ListenerKind::Mra),
            Verdict::Allowed
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = Directory::parse(
            "[[device]]\nname = \"a\"\n[[device]]\nname = \"a\"\n",
            "d.toml",
            UnknownDevices::Allow,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.toml: device[1].name: \"a\" is listed twice"
        );
        let e = Directory::parse(
            "[[device]]\nname = \"a\"\nports = [\"sctp\"]\n",
            "d.toml",
            UnknownDevices::Allow,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("d.toml:3: device[0].ports: unknown variant `sctp`"),
            "{e}"
        );
        let e = Directory::parse(
            "[[device]]\nname = \"a\"\n[[device]]\nname = \"b\"\noauth = \"no\"\n",
            "d.toml",
            UnknownDevices::Allow,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.toml:5: device[1].oauth: expected a boolean, found a string"
        );
    }
}
