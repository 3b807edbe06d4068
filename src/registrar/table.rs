//! Bindings by address-of-record, with expiry. This first version keeps each binding's fields
//! as owned byte strings in a `HashMap<Aor, Vec<Binding>>` plus an ordered expiry set; the
//! compact layout (UUIDs as 16 bytes, shared parts once) and the sharding across cores that the
//! registrar issue asks for replace the storage behind this same interface.

use crate::config::ListenerKind;
use crate::sip::Aor;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Identifies the connection a binding was learnt on (unique per process).
pub type ConnId = u64;

/// One registered contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The Contact value as received (name-addr with its parameters, without `expires`).
    pub contact: Box<[u8]>,
    /// The contact URI, to recognise the same contact again (RFC 3261 §10.3 step 7).
    pub uri: Box<[u8]>,
    /// `+sip.instance`, when sent: the same instance replaces its binding (RFC 5626 §6).
    pub instance: Option<Box<[u8]>>,
    /// Cisco device name.
    pub device: Option<Box<[u8]>>,
    /// Absolute expiry, seconds.
    pub expires_at: u64,
    pub call_id: Box<[u8]>,
    pub cseq: u32,
    pub conn: ConnId,
    pub listener: ListenerKind,
    /// Path header values (RFC 3327), comma-joined, when the REGISTER had any.
    pub path: Option<Box<[u8]>>,
}

impl Binding {
    /// True when `other` names the same contact: same instance when both have one, else the
    /// same URI.
    pub fn same_contact(&self, uri: &[u8], instance: Option<&[u8]>) -> bool {
        same_contact(&self.uri, self.instance.as_deref(), uri, instance)
    }
}

/// Whether two contacts are the same: the same instance when both have one, else the same URI.
pub(crate) fn same_contact(
    uri: &[u8],
    instance: Option<&[u8]>,
    other_uri: &[u8],
    other_instance: Option<&[u8]>,
) -> bool {
    match (instance, other_instance) {
        (Some(a), Some(b)) => a == b,
        _ => uri == other_uri,
    }
}

/// One binding as the admin endpoint shows it (`/bindings/{aor}`, CONTRACT "Admin endpoints").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BindingInfo {
    /// The contact as listed in a 200 OK, without `;expires=`.
    pub contact: String,
    /// `+sip.instance`, as received.
    pub instance: Option<String>,
    /// Cisco device name.
    pub device: Option<String>,
    /// Seconds left.
    pub expires_in: u64,
    /// The listener kind it came on (`oauth`, `mra`, `tcp`, `udp`).
    pub listener: &'static str,
    /// Path values (RFC 3327), comma-joined.
    pub path: Option<String>,
}

/// Every binding, by AOR, with an ordered set of (expiry, AOR) for purging.
#[derive(Debug, Default)]
pub struct BindingTable {
    by_aor: HashMap<Aor, Vec<Binding>>,
    expiry: BTreeSet<(u64, Aor)>,
    /// AORs that got a binding on each connection, each once (a name may be stale: checked on
    /// use; the set is bounded by the AORs ever seen on the connection).
    by_conn: HashMap<ConnId, HashSet<Aor>>,
    count: usize,
}

impl BindingTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bindings now registered.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The live bindings of `aor` at `now` (expired ones are dropped first).
    pub fn get(&mut self, aor: &Aor, now: u64) -> &[Binding] {
        self.drop_expired(aor, now);
        self.by_aor.get(aor).map_or(&[], Vec::as_slice)
    }

    fn drop_expired(&mut self, aor: &Aor, now: u64) {
        if let Some(list) = self.by_aor.get_mut(aor) {
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            self.count -= before - list.len();
            if list.is_empty() {
                self.by_aor.remove(aor);
            }
        }
    }

    /// Takes the bindings of `aor` out of the table (call [`BindingTable::get`] first to drop
    /// the expired ones); [`BindingTable::set`] puts the changed list back.
    pub fn take(&mut self, aor: &Aor) -> Vec<Binding> {
        let list = self.by_aor.remove(aor).unwrap_or_default();
        self.count -= list.len();
        list
    }

    /// Replaces the bindings of `aor` with `list` (the result of one REGISTER).
    pub fn set(&mut self, aor: Aor, list: Vec<Binding>) {
        let old = self.by_aor.get(&aor).map_or(0, Vec::len);
        self.count = self.count - old + list.len();
        if let Some(latest) = list.iter().map(|b| b.expires_at).max() {
            self.expiry.insert((latest, aor.clone()));
        }
        for b in &list {
            let aors = self.by_conn.entry(b.conn).or_default();
            if !aors.contains(&aor) {
                aors.insert(aor.clone());
            }
        }
        if list.is_empty() {
            self.by_aor.remove(&aor);
        } else {
            self.by_aor.insert(aor, list);
        }
    }

    /// Removes every binding learnt on `conn` (`unregister_on_close`); returns how many.
    pub fn remove_connection(&mut self, conn: ConnId) -> usize {
        let mut removed = 0;
        for aor in self.by_conn.remove(&conn).unwrap_or_default() {
            if let Some(list) = self.by_aor.get_mut(&aor) {
                let before = list.len();
                list.retain(|b| b.conn != conn);
                removed += before - list.len();
                if list.is_empty() {
                    self.by_aor.remove(&aor);
                }
            }
        }
        self.count -= removed;
        removed
    }

    /// The live bindings of `aor` at `now`, for the admin endpoint.
    pub fn list(&mut self, aor: &Aor, now: u64) -> Vec<BindingInfo> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.get(aor, now)
            .iter()
            .map(|b| BindingInfo {
                contact: text(&b.contact),
                instance: b.instance.as_deref().map(text),
                device: b.device.as_deref().map(text),
                expires_in: b.expires_at.saturating_sub(now),
                listener: b.listener.as_str(),
                path: b.path.as_deref().map(text),
            })
            .collect()
    }

    /// Drops what expired by `now`; returns how many bindings went and the next deadline.
    pub fn purge(&mut self, now: u64) -> (usize, Option<u64>) {
        let mut removed = 0;
        while let Some((at, aor)) = self.expiry.first().cloned() {
            if at > now {
                return (removed, Some(at));
            }
            self.expiry.pop_first();
            let before = self.count;
            self.drop_expired(&aor, now);
            removed += before - self.count;
        }
        (removed, None)
    }
}
