//! One connection without sockets: wire bytes in (TLS records, or plaintext on the lab
//! listeners), framed SIP through the registrar, answers out in order. The runtime only moves
//! bytes and keeps time; everything here is driven by `receive`, `transmit` and `on_timer` with
//! `now` in milliseconds, so the whole path runs in tests without io_uring.

use crate::config::Limits as ConfigLimits;
use crate::registrar::{Facts, Outcome, Registrar};
use crate::sip::{self, Error, Frame, Framer, Header, EMPTY_HEADER};
use std::io::{Read, Write};

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The byte stream cannot be framed any more (after a 400 where one could be written).
    Framing(Error),
    /// TLS failed (the alert, if any, is in the output).
    Tls(String),
    /// The client certificate chained to the CA but the application refused it (the
    /// Expressway-C name check of `tls.rs`): the alert is in the output.
    CertificateRefused(String),
    HandshakeTimeout,
    /// No complete message for `idle_timeout_s`.
    Idle,
    /// A message was begun and not finished within `handshake_timeout_s` (a slow sender
    /// holding the connection: bytes that do not make a message do not count as activity).
    MessageTimeout,
    /// The peer closed its side.
    PeerClosed,
}

enum Transport {
    Tls(Box<rustls::ServerConnection>),
    Plain,
}

/// Output waiting beyond this makes the session stop reading until the peer catches up.
pub const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// The header lines one message may have (the framer's limit).
const HEADER_SLOTS: usize = 96;

/// The wire layer's limits for `max_message_bytes`. The head may use all of it: a message
/// within `max_message_bytes` is answered whatever its shape (a 16 KiB Authorization header
/// is one line of a 17 KiB head, not a framing error that closes the connection unanswered);
/// the header count stays bounded by the slots every parse is given.
fn wire_limits(max_message_bytes: usize) -> sip::Limits {
    sip::Limits {
        max_head: max_message_bytes,
        max_body: max_message_bytes,
        max_headers: HEADER_SLOTS,
    }
}

/// One connection's state.
pub struct Session {
    transport: Transport,
    framer: Framer,
    /// Plaintext received and not yet framed.
    inbuf: Vec<u8>,
    /// Responses written by the registrar, not yet handed to TLS.
    out_plain: Vec<u8>,
    /// Bytes ready for the socket.
    out_wire: Vec<u8>,
    facts: Facts,
    limits: ConfigLimits,
    /// (was it a REGISTER, status) of each answer since the last [`Session::take_answers`].
    answers: Vec<(bool, u16)>,
    opened_ms: u64,
    /// When the last complete frame (message, ping) arrived, or the handshake finished.
    last_ms: u64,
    /// When bytes of a frame not yet complete began arriving.
    partial_since: Option<u64>,
    /// Frames taken so far (to tell whether a read completed any).
    frames: u64,
    closed: Option<CloseReason>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("facts", &self.facts)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Session {
    fn new(transport: Transport, facts: Facts, limits: ConfigLimits, now_ms: u64) -> Self {
        let framer = Framer::new(wire_limits(limits.max_message_bytes));
        Session {
            transport,
            framer,
            // Buffers grow on first use: an idle connection holds as little as possible.
            inbuf: Vec::new(),
            out_plain: Vec::new(),
            out_wire: Vec::new(),
            facts,
            limits,
            answers: Vec::new(),
            opened_ms: now_ms,
            last_ms: now_ms,
            partial_since: None,
            frames: 0,
            closed: None,
        }
    }

    /// A TLS (or mutual TLS) session over an accepted connection.
    pub fn tls(
        mut conn: rustls::ServerConnection,
        facts: Facts,
        limits: ConfigLimits,
        now_ms: u64,
    ) -> Self {
        // Answers are bounded by what one read can ask for (and the runtime writes them out
        // before reading again): rustls's default 64 KiB send limit would cut them silently.
        conn.set_buffer_limit(None);
        Self::new(Transport::Tls(Box::new(conn)), facts, limits, now_ms)
    }

    /// A plaintext TCP session (lab listener).
    pub fn plain(facts: Facts, limits: ConfigLimits, now_ms: u64) -> Self {
        Self::new(Transport::Plain, facts, limits, now_ms)
    }

    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<&CloseReason> {
        self.closed.as_ref()
    }

    /// The TLS connection, for the runtime's certificate checks (MRA client names).
    pub fn tls_connection(&self) -> Option<&rustls::ServerConnection> {
        match &self.transport {
            Transport::Tls(c) => Some(c),
            Transport::Plain => None,
        }
    }

    /// Whether the runtime should read more from the peer. `unsent` is how many bytes the
    /// runtime took from [`Session::transmit`] and could not write to the socket yet: past
    /// [`MAX_PENDING_OUTPUT`] the session stops reading until the peer reads its answers
    /// (backpressure; requests are answered in order, so unread answers bound the work).
    pub fn wants_read(&self, unsent: usize) -> bool {
        self.closed.is_none() && unsent + self.out_wire.len() < MAX_PENDING_OUTPUT
    }

    /// Takes wire bytes from the peer; `bytes` empty means the peer closed.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        registrar: &mut Registrar,
    ) -> Result<(), CloseReason> {
        if let Some(r) = &self.closed {
            return Err(r.clone());
        }
        if bytes.is_empty() {
            return Err(self.close(CloseReason::PeerClosed));
        }
        let handshaking = self.handshaking();
        let frames = self.frames;
        match &mut self.transport {
            Transport::Plain => self.inbuf.extend_from_slice(bytes),
            Transport::Tls(conn) => {
                let mut rd = bytes;
                let mut peer_closed = false;
                while !rd.is_empty() && !peer_closed {
                    match conn.read_tls(&mut rd) {
                        // rustls takes nothing after the peer's close_notify.
                        Ok(0) => peer_closed = true,
                        Ok(_) => {}
                        Err(e) => return Err(self.close(CloseReason::Tls(e.to_string()))),
                    }
                    let state = match conn.process_new_packets() {
                        Ok(state) => state,
                        Err(e) => {
                            // rustls queued an alert: send it, then close.
                            let _ = conn.write_tls(&mut self.out_wire);
                            let refused = matches!(
                                e,
                                rustls::Error::InvalidCertificate(
                                    rustls::CertificateError::ApplicationVerificationFailure
                                )
                            );
                            let why = e.to_string();
                            return Err(self.close(if refused {
                                CloseReason::CertificateRefused(why)
                            } else {
                                CloseReason::Tls(why)
                            }));
                        }
                    };
                    peer_closed |= state.peer_has_closed();
                    // Drained after every batch of records, so rustls's own plaintext limit
                    // is never reached however many records one read brings.
                    let ready = state.plaintext_bytes_to_read();
                    if ready > 0 {
                        let start = self.inbuf.len();
                        self.inbuf.resize(start + ready, 0);
                        if let Err(e) = conn.reader().read_exact(&mut self.inbuf[start..]) {
                            return Err(self.close(CloseReason::Tls(e.to_string())));
                        }
                    }
                }
                if peer_closed {
                    // Answer what came before the close_notify, then close.
                    let _ = self.frame_all(now_ms / 1000, registrar);
                    self.flush_plain();
                    return Err(self.close(CloseReason::PeerClosed));
                }
            }
        }
        let result = self.frame_all(now_ms / 1000, registrar);
        self.flush_plain();
        self.note_progress(handshaking, frames, now_ms);
        result
    }

    fn handshaking(&self) -> bool {
        matches!(&self.transport, Transport::Tls(c) if c.is_handshaking())
    }

    /// Activity is a complete frame or a finished handshake, never bytes alone: a peer that
    /// trickles a message byte by byte has `handshake_timeout_s` to finish it, whatever the
    /// pace, and does not hold its connection for ever.
    fn note_progress(&mut self, was_handshaking: bool, frames_before: u64, now_ms: u64) {
        if self.handshaking() {
            return; // the handshake deadline runs from the connection's opening
        }
        let framed = self.frames != frames_before;
        if was_handshaking || framed {
            self.last_ms = now_ms;
        }
        if was_handshaking && self.inbuf.is_empty() {
            self.partial_since = None;
        } else if framed {
            // What is left over, if anything, began with this read.
            self.partial_since = (!self.inbuf.is_empty()).then_some(now_ms);
        } else {
            // Bytes that completed nothing: a message (or TLS record) under way.
            self.partial_since.get_or_insert(now_ms);
        }
    }

    /// Frames and answers every complete message in `inbuf`.
    fn frame_all(&mut self, now_s: u64, registrar: &mut Registrar) -> Result<(), CloseReason> {
        let mut consumed = 0;
        let outcome = loop {
            let mut headers: [Header<'_>; HEADER_SLOTS] = [EMPTY_HEADER; HEADER_SLOTS];
            let input = &self.inbuf[consumed..];
            match self.framer.next(input, &mut headers) {
                Ok(Frame::Partial) => break Ok(()),
                Ok(Frame::Ping) => {
                    // RFC 5626 §4.4.1: a CRLF pong.
                    self.out_plain.extend_from_slice(b"\r\n");
                    consumed += 4;
                    self.frames += 1;
                }
                Ok(Frame::Crlf) => {
                    consumed += 2;
                    self.frames += 1;
                }
                Ok(Frame::Message(msg)) => {
                    let len = msg.len();
                    self.frames += 1;
                    let outcome = registrar.handle(&msg, &self.facts, now_s, &mut self.out_plain);
                    if let Outcome::Replied(code) = outcome {
                        let register = msg.method() == Some(sip::Method::Register);
                        self.answers.push((register, code));
                    }
                    consumed += len;
                }
                Ok(Frame::Invalid { len, error }) => {
                    let answered = answer_bad_head(
                        &input[..len],
                        error,
                        registrar,
                        &self.facts,
                        now_s,
                        &mut self.out_plain,
                    );
                    self.answers.extend(answered);
                    consumed += len;
                    self.frames += 1;
                }
                Err(error) => {
                    // Framing is lost: answer 400 if the head can be read, then close.
                    let answered = answer_bad_head(
                        input,
                        error,
                        registrar,
                        &self.facts,
                        now_s,
                        &mut self.out_plain,
                    );
                    self.answers.extend(answered);
                    break Err(CloseReason::Framing(error));
                }
            }
        };
        self.inbuf.drain(..consumed);
        if let Err(r) = outcome {
            return Err(self.close(r));
        }
        Ok(())
    }

    fn flush_plain(&mut self) {
        if self.out_plain.is_empty() {
            return;
        }
        match &mut self.transport {
            Transport::Plain => self.out_wire.append(&mut self.out_plain),
            Transport::Tls(conn) => {
                // Writing into rustls's buffer cannot fail short of a closed session.
                let _ = conn.writer().write_all(&self.out_plain);
                self.out_plain.clear();
            }
        }
    }

    /// Hands each answer given since the last call to `f(was_register, status)` (for the
    /// runtime's counters).
    pub fn take_answers(&mut self, mut f: impl FnMut(bool, u16)) {
        for (register, code) in self.answers.drain(..) {
            f(register, code);
        }
    }

    /// Moves the bytes ready for the socket into `out`: into an empty `out` by handing over
    /// the buffer itself (no copy; the session keeps `out`'s empty one), else appended.
    pub fn transmit(&mut self, out: &mut Vec<u8>) {
        if let Transport::Tls(conn) = &mut self.transport {
            while conn.wants_write() {
                if conn.write_tls(&mut self.out_wire).is_err() {
                    break;
                }
            }
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.out_wire);
        } else {
            out.append(&mut self.out_wire);
        }
    }

    /// The next moment `on_timer` must run (milliseconds).
    pub fn deadline(&self) -> u64 {
        if self.handshaking() {
            self.opened_ms + self.limits.handshake_timeout_s * 1000
        } else {
            let idle = self.last_ms + self.limits.idle_timeout_s * 1000;
            match self.partial_since {
                Some(p) => idle.min(p + self.limits.handshake_timeout_s * 1000),
                None => idle,
            }
        }
    }

    /// Closes the session when its handshake, message or idle time ran out.
    pub fn on_timer(&mut self, now_ms: u64) -> Option<CloseReason> {
        if self.closed.is_some() || now_ms < self.deadline() {
            return None;
        }
        let hs = self.limits.handshake_timeout_s * 1000;
        let reason = if self.handshaking() {
            CloseReason::HandshakeTimeout
        } else if self.partial_since.is_some_and(|p| now_ms >= p + hs) {
            CloseReason::MessageTimeout
        } else {
            CloseReason::Idle
        };
        Some(self.close(reason))
    }

    fn close(&mut self, reason: CloseReason) -> CloseReason {
        if let Transport::Tls(conn) = &mut self.transport {
            conn.send_close_notify();
        }
        self.closed = Some(reason.clone());
        reason
    }
}

/// Answers a message whose head broke a wire-layer rule, when enough of it can be read.
/// Returns (was it a REGISTER, status) when it was answered.
fn answer_bad_head(
    bytes: &[u8],
    error: Error,
    registrar: &mut Registrar,
    facts: &Facts,
    now_s: u64,
    out: &mut Vec<u8>,
) -> Option<(bool, u16)> {
    let mut headers = [EMPTY_HEADER; HEADER_SLOTS];
    let msg = sip::parse_lenient(bytes, &mut headers).ok()?;
    match registrar.answer_error(&msg, error, facts, now_s, out) {
        Outcome::Replied(code) => Some((msg.method() == Some(sip::Method::Register), code)),
        Outcome::Dropped => None,
    }
}

/// Answers one datagram (UDP listener): a message is handled by the registrar, a head that
/// breaks a wire rule gets its 400 or 505 when it can be read, anything else (keep-alive
/// CRLFs, garbage) is dropped. `max_bytes` bounds the datagram (`max_message_bytes`).
/// Returns (was it a REGISTER, status) when a well-formed request was answered.
pub fn answer_datagram(
    bytes: &[u8],
    max_bytes: usize,
    registrar: &mut Registrar,
    facts: &Facts,
    now_s: u64,
    out: &mut Vec<u8>,
) -> Option<(bool, u16)> {
    if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        return None;
    }
    let limits = wire_limits(max_bytes);
    let mut headers = [EMPTY_HEADER; HEADER_SLOTS];
    let error = match sip::parse_datagram(bytes, &mut headers, &limits) {
        Ok(msg) => {
            return match registrar.handle(&msg, facts, now_s, out) {
                Outcome::Replied(code) => Some((msg.method() == Some(sip::Method::Register), code)),
                Outcome::Dropped => None,
            };
        }
        Err(e) => e,
    };
    answer_bad_head(bytes, error, registrar, facts, now_s, out)
}
