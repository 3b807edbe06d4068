//! The registrar's decision for one request: a pure function of the request, the connection it
//! came on and `now`, answering into a buffer (CONTRACT "REGISTER outcomes", RFC 3261 §10.3).
//! No sockets, no clock.

use super::admission::{Admission, AdmissionConfig};
use super::contact::CompactContact;
use super::directory::{Directory, Verdict};
use super::stripe::{ConnId, Planned, Refusal, Registration};
use super::table::Bindings;
use crate::auth::{write_challenge, TokenError, Verifier};
use crate::config::{ChallengeKind, ListenerKind, RegistrarSection};
use crate::sip::{
    write_http_date, Aor, ContactValue, Error, HeaderName, Host, Message, Method, ResponseWriter,
    SipUri, Source, Uri,
};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::sync::Arc;

/// What the connection knows about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    pub listener: ListenerKind,
    pub conn: ConnId,
    /// Where the request came from, for the top Via's received/rport (datagram listeners).
    pub source: Option<Source>,
}

/// What `handle` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status was appended to the output buffer.
    Replied(u16),
    /// Nothing to answer (a response arrived).
    Dropped,
}

/// Option tags this registrar supports (RFC 3327 Path).
const SUPPORTED: &[&[u8]] = &[b"path"];
const ALLOW: &[u8] = b"REGISTER, OPTIONS";

/// Stripes of the binding table a registrar makes for itself ([`Registrar::new`]).
const STRIPES: usize = 64;

/// One core's registrar: configuration, token verifier, and the binding table it shares with
/// the other cores.
#[derive(Debug)]
pub struct Registrar {
    cfg: RegistrarSection,
    verifier: Verifier,
    /// Which fresh tokens this core verifies now, and when shed ones come back.
    admission: Admission,
    bindings: Arc<Bindings>,
    server: Vec<u8>,
    tag_seed: u64,
    directory: Option<Directory>,
    /// The `<host>` of the port-mismatch Warning: `domain` when set, else the host name.
    warn_host: String,
}

/// An answer to write: status, reason phrase, headers beyond the echoed ones. Static reason
/// phrases and the usual few headers need no allocation of their own.
struct Answer {
    code: u16,
    reason: Cow<'static, [u8]>,
    extra: SmallVec<[(&'static str, Vec<u8>); 2]>,
}

impl Answer {
    fn new(code: u16, reason: &'static str) -> Self {
        Answer {
            code,
            reason: Cow::Borrowed(reason.as_bytes()),
            extra: SmallVec::new(),
        }
    }

    fn from_error(e: Error) -> Self {
        let mut reason = Vec::new();
        e.write_reason(&mut reason);
        Answer {
            code: e.status(),
            reason: Cow::Owned(reason),
            extra: SmallVec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: Vec<u8>) -> Self {
        self.extra.push((name, value));
        self
    }
}

fn text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        _ => "",
    }
}

fn host_matches(host: &Host<'_>, domain: &str) -> bool {
    match host {
        Host::Name(n) => n.eq_ignore_ascii_case(domain),
        Host::V4(a) => domain.parse() == Ok(*a),
        Host::V6(a) => match (
            a.parse::<std::net::Ipv6Addr>(),
            domain
                .trim_matches(['[', ']'])
                .parse::<std::net::Ipv6Addr>(),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => a.eq_ignore_ascii_case(domain.trim_matches(['[', ']'])),
        },
    }
}

/// The Request-URI every request must have: one that parses (else 400) and is SIP or SIPS,
/// the only schemes served here (else 416 on every method: RFC 3261 §8.2.2.1, RFC 4475
/// §3.3.2 and §3.3.3).
fn check_request_uri<'b>(req: &Message<'_, 'b>) -> Result<SipUri<'b>, Answer> {
    match req.request_uri() {
        Some(Ok(Uri::Sip(u))) => Ok(u),
        Some(Ok(Uri::Other { .. })) => Err(Answer::new(416, text(416))),
        _ => Err(Answer::from_error(Error::BadRequestUri)),
    }
}

impl Registrar {
    /// A registrar with a binding table of its own.
    pub fn new(cfg: RegistrarSection, verifier: Verifier) -> Self {
        Self::with_bindings(cfg, verifier, Arc::new(Bindings::new(STRIPES)))
    }

    /// A registrar on a binding table shared with other cores' registrars.
    pub fn with_bindings(
        cfg: RegistrarSection,
        verifier: Verifier,
        bindings: Arc<Bindings>,
    ) -> Self {
        let server = format!("regstorm/{}", env!("CARGO_PKG_VERSION")).into_bytes();
        let warn_host = cfg.domain.clone().unwrap_or_else(|| "regstorm".to_string());
        // Without a clock nothing earns a budget: the runtime sets the real policy
        // ([`Registrar::set_admission`], with [`Registrar::admission_config`]).
        let admission = Admission::unlimited();
        Registrar {
            cfg,
            verifier,
            admission,
            bindings,
            server,
            tag_seed: crate::mix::GAMMA,
            directory: None,
            warn_host,
        }
    }

    /// Applies a device directory (the Phone Security Profile).
    pub fn set_directory(&mut self, directory: Option<Directory>) {
        self.directory = directory;
    }

    /// The host name for the port-mismatch Warning when no `domain` is configured.
    pub fn set_host_name(&mut self, host: &str) {
        if self.cfg.domain.is_none() && !host.is_empty() {
            self.warn_host = host.to_string();
        }
    }

    /// The shared binding table.
    pub fn bindings(&self) -> &Arc<Bindings> {
        &self.bindings
    }

    pub fn verifier(&mut self) -> &mut Verifier {
        &mut self.verifier
    }

    /// This core's admission policy (the runtime feeds it time and the queueing delay).
    pub fn admission(&mut self) -> &mut Admission {
        &mut self.admission
    }

    /// The admission policy for this configuration: a shed device is told to come back
    /// within `retry_after_s` at most (the calendar spreads the retries below it).
    pub fn admission_config(&self) -> AdmissionConfig {
        AdmissionConfig {
            retry_max_s: self.cfg.retry_after_s.max(1),
            ..AdmissionConfig::default()
        }
    }

    /// Replaces the admission policy (the runtime's, driven by its probe; tests).
    pub fn set_admission(&mut self, admission: Admission) {
        self.admission = admission;
    }

    /// A connection closed: with `unregister_on_close`, its bindings go with it.
    pub fn connection_closed(&mut self, conn: ConnId) -> usize {
        if self.cfg.unregister_on_close {
            self.bindings.remove_connection(conn)
        } else {
            0
        }
    }

    fn next_tag(&mut self) -> [u8; 16] {
        // A To tag per response: distinct, not guessable in sequence (splitmix64 of a counter).
        let z = crate::mix::next(&mut self.tag_seed);
        let mut tag = [0u8; 16];
        for (i, t) in tag.iter_mut().enumerate() {
            *t = b"0123456789abcdef"[((z >> (60 - 4 * i)) & 15) as usize];
        }
        tag
    }

    fn reply(
        &mut self,
        req: &Message<'_, '_>,
        facts: &Facts,
        now: u64,
        out: &mut Vec<u8>,
        r: Answer,
    ) -> Outcome {
        let tag = self.next_tag();
        let mut w = ResponseWriter::start(out, r.code, &r.reason, req, &tag, facts.source);
        for (name, value) in &r.extra {
            w.header(name, value);
        }
        w.header_with("Date", |o| write_http_date(now, o));
        w.header("Server", &self.server);
        w.finish(b"");
        Outcome::Replied(r.code)
    }

    /// Answers one request. `now` is seconds since the epoch.
    pub fn handle(
        &mut self,
        req: &Message<'_, '_>,
        facts: &Facts,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let Some(method) = req.method() else {
            return Outcome::Dropped;
        };
        let answer = if let Method::Extension(_) = method {
            // RFC 4475 §3.1.2.18: an unknown method is 501 even when its CSeq disagrees.
            Answer::new(501, text(501)).with("Allow", ALLOW.to_vec())
        } else if let Err(e) = req.check_mandatory() {
            // A malformed To or From is 400 on every method, before the method is looked at.
            Answer::from_error(e)
        } else {
            // The Request-URI's scheme comes before the method: 416 on every method.
            match (check_request_uri(req), method) {
                (Err(r), _) => r,
                (Ok(ruri), Method::Register) => match self.register(req, &ruri, facts, now, out) {
                    Ok(outcome) => return outcome,
                    Err(r) => r,
                },
                (Ok(_), Method::Options) => Answer::new(200, text(200))
                    .with("Allow", ALLOW.to_vec())
                    .with("Accept", b"application/sdp, multipart/mixed".to_vec())
                    .with("Supported", b"path".to_vec()),
                (Ok(_), _) => Answer::new(405, text(405)).with("Allow", ALLOW.to_vec()),
            }
        };
        self.reply(req, facts, now, out, answer)
    }

    /// Answers a request whose head broke a rule of the wire layer (read with
    /// [`crate::sip::parse_lenient`]): 400 with a reason naming the fault, or 505. Responses
    /// and requests without a Via are not answered.
    pub fn answer_error(
        &mut self,
        req: &Message<'_, '_>,
        error: Error,
        facts: &Facts,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Outcome {
        if !req.is_request() || req.header(HeaderName::Via).is_none() {
            return Outcome::Dropped;
        }
        self.reply(req, facts, now, out, Answer::from_error(error))
    }

    fn challenge(&self, invalid_token: bool) -> Answer {
        let mut value = Vec::with_capacity(64);
        write_challenge(&mut value, &self.cfg.realm, invalid_token);
        match self.cfg.challenge {
            ChallengeKind::Proxy => Answer::new(407, text(407)).with("Proxy-Authenticate", value),
            ChallengeKind::Www => Answer::new(401, text(401)).with("WWW-Authenticate", value),
        }
    }

    fn register(
        &mut self,
        req: &Message<'_, '_>,
        ruri: &SipUri<'_>,
        facts: &Facts,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, Answer> {
        // Request-URI (SIP or SIPS, checked in `handle`): for this domain when one is set
        // (else 404).
        if let Some(domain) = &self.cfg.domain {
            if !host_matches(&ruri.host, domain) {
                return Err(Answer::new(404, "Domain Not Served"));
            }
        }
        // RFC 3261 §8.2.2.3: every Require / Proxy-Require option tag must be supported.
        let mut unsupported: Vec<u8> = Vec::new();
        for name in [HeaderName::Require, HeaderName::ProxyRequire] {
            for tag in req.option_tags(name) {
                let tag = tag.map_err(Answer::from_error)?;
                if !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
                    if !unsupported.is_empty() {
                        unsupported.extend_from_slice(b", ");
                    }
                    unsupported.extend_from_slice(tag);
                }
            }
        }
        if !unsupported.is_empty() {
            return Err(Answer::new(420, text(420)).with("Unsupported", unsupported));
        }
        // The AOR: To must be a SIP or SIPS URI (RFC 3261 §10.3 step 5).
        let to = req.to().map_err(Answer::from_error)?;
        let Some(to_uri) = to.sip_uri() else {
            return Err(Answer::new(400, "To Is Not A SIP URI"));
        };
        // Bearer credentials (CONTRACT "Tokens").
        let token = match req.bearer() {
            Err(_) => return Err(self.challenge(true)),
            Ok(None) => return Err(self.challenge(false)),
            Ok(Some(b)) => b.token,
        };
        let contacts: SmallVec<[ContactValue<'_>; 2]> = req
            .contacts()
            .collect::<Result<_, _>>()
            .map_err(Answer::from_error)?;
        let admission = &mut self.admission;
        let verified = match self
            .verifier
            .verify_admitted(token, now, |d| admission.admit_verification(d))
        {
            Ok(v) => v,
            Err(TokenError::Shed) => {
                // Over this core's verification budget: come back later, at a time the
                // calendar spreads (never a 407: the token may be good).
                let after = self.admission.last_retry_after_s();
                return Err(Answer::new(503, "Overloaded")
                    .with("Retry-After", after.to_string().into_bytes()));
            }
            Err(_) => return Err(self.challenge(true)),
        };
        let mut user = Vec::new();
        to_uri.user_unescaped_into(&mut user);
        if !verified.claims.covers_user(&user) {
            return Err(Answer::new(403, "Token Does Not Cover This AOR"));
        }
        for c in &contacts {
            if let ContactValue::Addr(c) = c {
                if !verified.claims.covers_device(c.device_name()) {
                    return Err(Answer::new(403, "Token Does Not Cover This Device"));
                }
            }
        }

        // The directory's port rule: Unified CM answers a device registering on a port its
        // security profile does not allow with this 403, and Jabber retries after Retry-After.
        if let Some(dir) = &self.directory {
            let devices: Vec<Option<&[u8]>> = contacts
                .iter()
                .filter_map(|c| match c {
                    ContactValue::Addr(c) => Some(c.device_name()),
                    ContactValue::Wildcard => None,
                })
                .collect();
            for device in devices {
                match dir.check(device, facts.listener) {
                    Verdict::Allowed => {}
                    Verdict::PortMismatch => {
                        let warning = format!(
                            "399 {} \"SIP OAuth Registration port Mismatch\"",
                            self.warn_host
                        );
                        return Err(Answer::new(403, text(403))
                            .with(
                                "Retry-After",
                                self.cfg.retry_after_s.to_string().into_bytes(),
                            )
                            .with("Warning", warning.into_bytes()));
                    }
                    Verdict::Unknown => return Err(Answer::new(403, "Unknown Device")),
                }
            }
        }

        let aor = Aor::new(&to_uri);
        let call_id = req.call_id().map_err(Answer::from_error)?;
        let cseq = req.cseq().map_err(Answer::from_error)?.seq;
        let header_expires = req.expires().map_err(Answer::from_error)?;
        let wildcard = contacts.iter().any(|c| matches!(c, ContactValue::Wildcard));
        // RFC 3261 §10.3 step 6: `*` only alone and with Expires: 0.
        if wildcard && (contacts.len() != 1 || header_expires != Some(0)) {
            return Err(Answer::new(
                400,
                "Wildcard Contact Needs Expires 0 And No Other Contact",
            ));
        }
        let path = {
            let values: Vec<&[u8]> = req.values(HeaderName::Path).collect();
            (!values.is_empty()).then(|| values.join(&b", "[..]))
        };
        // Everything that does not depend on the stored bindings is worked out before the
        // stripe is locked: granted expiries (423 stays in contact order, RFC 3261 §10.3 step
        // 7) and the compact form of each contact.
        let mut granted_header = None;
        let planned: SmallVec<[Planned<'_>; 2]> = contacts
            .iter()
            .filter_map(|c| match c {
                ContactValue::Addr(c) => Some(c),
                ContactValue::Wildcard => None,
            })
            .map(|c| {
                let asked = c.expires.or(header_expires).unwrap_or(self.cfg.max_expires);
                let granted = if asked != 0 && asked < self.cfg.min_expires {
                    None
                } else {
                    let g = asked.min(self.cfg.max_expires);
                    granted_header.get_or_insert(g);
                    Some(g)
                };
                Planned {
                    uri: c.addr.uri,
                    instance: c.instance(),
                    granted,
                    contact: CompactContact::new(c),
                }
            })
            .collect();
        let registration = Registration {
            aor: &aor,
            call_id,
            cseq,
            conn: facts.conn,
            listener: facts.listener,
            path: path.as_deref(),
            wildcard,
            contacts: &planned,
            max_contacts: self.cfg.max_contacts as usize,
        };
        // Checked and applied whole, or not at all, under one stripe lock.
        let listed = match self.bindings.register(&registration, now) {
            Ok(listed) => listed,
            Err(Refusal::TooBrief) => {
                return Err(Answer::new(423, text(423))
                    .with("Min-Expires", self.cfg.min_expires.to_string().into_bytes()))
            }
            Err(Refusal::Stale) => return Err(Answer::new(500, "Lower CSeq On The Same Call-ID")),
            Err(Refusal::TooMany) => {
                return Err(Answer::new(503, "Too Many Contacts").with(
                    "Retry-After",
                    self.cfg.retry_after_s.to_string().into_bytes(),
                ))
            }
        };

        // Answer 200 with every current binding (a fetch changes nothing).
        let mut r = Answer::new(200, text(200));
        for v in listed {
            r = r.with("Contact", v);
        }
        if let Some(g) = granted_header {
            r = r.with("Expires", g.to_string().into_bytes());
        }
        if req.header(HeaderName::Path).is_some() {
            for p in req.values(HeaderName::Path) {
                r = r.with("Path", p.to_vec());
            }
            r = r.with("Supported", b"path".to_vec());
        }
        Ok(self.reply(req, facts, now, out, r))
    }
}
