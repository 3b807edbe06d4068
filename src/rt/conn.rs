//! Sockets to sessions: the accept loop, one task per stream connection, one receive loop per
//! datagram listener. Each moves bytes and the clock into the sans-IO code and its answers
//! back out; nothing here decides anything about SIP or TLS.

use super::{now_ms, Core};
use crate::admin::{CloseCause, Refusal};
use crate::config::ListenerKind;
use crate::registrar::Facts;
use crate::session::{answer_datagram, CloseReason, Session};
use crate::sip::Source;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream, UdpSocket};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Bytes read from a socket at a time, into the core's one read buffer (a Jabber REGISTER with
/// its token and body is about 3.5 KB); longer messages and TLS records just take more reads.
pub(super) const READ_BUF: usize = 4 * 1024;
/// After a read that filled the buffer, up to this many more are taken at once, without
/// waiting, before answering: a client that pipelines gets its answers in one write (one
/// segment, one wake-up of the client) instead of one per page read.
const DRAIN_READS: usize = 16;
/// How long the accept loop waits when this tick's connections are taken (about a probe tick).
const ADMIT_WAIT: Duration = Duration::from_millis(10);
/// The largest datagram taken (UDP's own limit).
const MAX_DATAGRAM: usize = 65_535;

fn source(addr: SocketAddr) -> Source {
    Source {
        ip: addr.ip(),
        port: addr.port(),
    }
}

/// Takes connections on one stream listener (TCP or TLS) until the core stops.
pub(super) async fn accept_loop(core: Rc<Core>, li: usize, listener: TcpListener) {
    let max = core.shared.cfg.limits.max_connections;
    let kind = core.shared.cfg.listeners[li].kind;
    loop {
        // New connections at a bounded rate per tick: taken before the accept, so that a
        // flood of handshakes waits in the kernel's backlog instead of starving the
        // connections already up. A slot taken and then lost to an accept error is a tick's
        // budget spent on nothing, which is harmless.
        while !core.registrar.borrow_mut().admission().admit_connection() {
            if core.stopping.get() {
                return;
            }
            glommio::timer::sleep(ADMIT_WAIT).await;
        }
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors or memory: say so, and do not spin.
                tracing::warn!("{}: accept failed: {e}", kind.as_str());
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if core.stopping.get() {
            return;
        }
        let open = &core.shared.open[li];
        if open.fetch_add(1, Ordering::AcqRel) >= max {
            open.fetch_sub(1, Ordering::AcqRel);
            core.metrics().connection_refused(kind, Refusal::Limit);
            tracing::debug!(
                "{}: connection refused: max_connections {max}",
                kind.as_str()
            );
            drop(stream);
            continue;
        }
        glommio::spawn_local(connection(core.clone(), li, stream)).detach();
    }
}

/// What the sweeper knows of a connection: its socket and when its time runs out.
#[derive(Debug)]
pub(crate) struct Watch {
    fd: std::os::fd::RawFd,
    /// Milliseconds; the session's handshake, message or idle deadline.
    deadline: std::cell::Cell<u64>,
    /// The core's excused time when the deadline was set: what accrues after it (the core
    /// running late) pushes the deadline back.
    excused_at: std::cell::Cell<u64>,
    /// Set once the sweeper shut the socket's read side.
    expired: std::cell::Cell<bool>,
}

/// Grace after a deadline before the write side is shut too (a peer that does not read).
const WRITE_GRACE_MS: u64 = 5_000;

/// Enforces every watched connection's deadline: its read side is shut down, so its pending
/// read ends and the connection task closes it (with a TLS close_notify when it can); a
/// connection still stuck after the grace (blocked writing to a peer that does not read) has
/// both sides shut. Reads carry no per-operation timeout: this runs twice a second per core.
pub(super) fn sweep(core: &Core, now: u64) {
    let excused = core.excused_ms.get();
    for w in core.watched.borrow().values() {
        // The registrar's own lateness is not the peer's silence.
        let due = w.deadline.get() + excused.saturating_sub(w.excused_at.get());
        if now < due {
            continue;
        }
        let how = if now >= due + WRITE_GRACE_MS {
            nix::sys::socket::Shutdown::Both
        } else if !w.expired.get() {
            nix::sys::socket::Shutdown::Read
        } else {
            continue;
        };
        w.expired.set(true);
        let _ = nix::sys::socket::shutdown(w.fd, how);
    }
}

/// Gives the connection slot back however the task ends, counting why it ended.
struct Slot(Rc<Core>, usize, u64, std::cell::Cell<CloseCause>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.watched.borrow_mut().remove(&self.2);
        self.0.shared.open[self.1].fetch_sub(1, Ordering::AcqRel);
        let kind = self.0.shared.cfg.listeners[self.1].kind;
        self.0.metrics().connection_closed(kind, self.3.get());
    }
}

fn cause(reason: &CloseReason) -> CloseCause {
    match reason {
        CloseReason::Framing(_) => CloseCause::Framing,
        CloseReason::Tls(_) => CloseCause::Tls,
        CloseReason::CertificateRefused(_) => CloseCause::MraName,
        CloseReason::HandshakeTimeout => CloseCause::HandshakeTimeout,
        CloseReason::Idle => CloseCause::Idle,
        CloseReason::MessageTimeout => CloseCause::MessageTimeout,
        CloseReason::PeerClosed => CloseCause::PeerClosed,
    }
}

/// One stream connection, from accept to close.
async fn connection(core: Rc<Core>, li: usize, mut stream: TcpStream) {
    let kind = core.shared.cfg.listeners[li].kind;
    core.metrics().connection_opened(kind);
    let conn = core.next_conn();
    let slot = Slot(
        core.clone(),
        li,
        conn,
        std::cell::Cell::new(CloseCause::Socket),
    );
    let limits = core.shared.cfg.limits;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let facts = Facts {
        listener: kind,
        conn,
        source: peer.map(source),
    };
    let now = now_ms();
    let mut session = if kind.is_tls() {
        let Some(cfg) = core.tls.borrow()[li].clone() else {
            return;
        };
        match rustls::ServerConnection::new(cfg) {
            Ok(c) => Session::tls(c, facts, limits, now),
            Err(e) => {
                tracing::warn!("{}: TLS session not created: {e}", kind.as_str());
                return;
            }
        }
    } else {
        Session::plain(facts, limits, now)
    };
    let watch = Rc::new(Watch {
        fd: std::os::fd::AsRawFd::as_raw_fd(&stream),
        deadline: std::cell::Cell::new(session.deadline()),
        excused_at: std::cell::Cell::new(core.excused_ms.get()),
        expired: std::cell::Cell::new(false),
    });
    core.watched.borrow_mut().insert(conn, watch.clone());
    let mut out = Vec::new();
    let mut handshaking = kind.is_tls();
    loop {
        watch.deadline.set(session.deadline());
        watch.excused_at.set(core.excused_ms.get());
        // What is there is taken into the core's buffer at once; with nothing there the
        // connection waits for its socket holding no buffer (a one-byte peek), so an idle
        // connection costs no read buffer.
        let mut read = recv_now(&core, watch.fd);
        if read.is_none() {
            let mut one = [0u8; 1];
            let waited = stream.peek(&mut one).await;
            read = match waited {
                Ok(0) => Some(Ok(0)),
                Ok(_) => recv_now(&core, watch.fd),
                Err(e) => Some(Err(e.into())),
            };
        }
        if watch.expired.get() {
            // The sweeper shut the read side: the handshake, message or idle time ran out.
            if let Some(reason) = session.on_timer(now_ms()) {
                tracing::debug!("{}: {peer:?} closed: {reason:?}", kind.as_str());
                slot.3.set(cause(&reason));
                if reason == CloseReason::HandshakeTimeout {
                    core.metrics().tls_handshake_failed();
                    core.metrics().connection_refused(kind, Refusal::Tls);
                }
                flush(&core, &mut stream, &mut session, &mut out).await;
            }
            break;
        }
        let n = match read {
            // Readable, then nothing after all (another reader cannot exist; a spurious wake).
            None => continue,
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
            Some(Err(e)) => {
                tracing::debug!("{}: read: {e}", kind.as_str());
                break;
            }
        };
        let m = core.metrics();
        m.bytes_in(n as u64);
        // The core's buffer holds this read until it is handed on: no await in between.
        let mut result = receive(&core, &mut session, n);
        // More already waiting: taken now, answered together.
        let mut full = n == READ_BUF;
        let pipelining = full;
        let mut peer_closed = false;
        let mut reads = 0;
        while full && result.is_ok() && reads < DRAIN_READS {
            reads += 1;
            match recv_now(&core, watch.fd) {
                Some(Ok(0)) => peer_closed = true,
                Some(Ok(k)) => {
                    m.bytes_in(k as u64);
                    full = k == READ_BUF;
                    result = receive(&core, &mut session, k);
                    continue;
                }
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                // Nothing more now (or an error the next read reports).
                _ => {}
            }
            break;
        }
        session.take_answers(|register, code| {
            if register {
                m.register_answered(code);
            } else {
                m.other_answered(code);
            }
        });
        if handshaking {
            if let Err(CloseReason::Tls(why) | CloseReason::CertificateRefused(why)) = &result {
                m.tls_handshake_failed();
                let reason = match result {
                    Err(CloseReason::CertificateRefused(_)) => Refusal::MraName,
                    _ => Refusal::Tls,
                };
                m.connection_refused(kind, reason);
                tracing::info!("{}: handshake with {peer:?} failed: {why}", kind.as_str());
            } else if !session.tls_connection().is_some_and(|c| c.is_handshaking()) {
                handshaking = false;
                m.tls_handshake_completed();
            }
        }
        let written = flush(&core, &mut stream, &mut session, &mut out).await;
        if !pipelining {
            // A device's connection between two REGISTERs minutes apart keeps no answer
            // buffer either (the session handed its own over in `transmit`); a pipelining one
            // (an Expressway-C) keeps it for the next turn.
            out = Vec::new();
        }
        if let Err(reason) = result {
            tracing::debug!("{}: {peer:?} closed: {reason:?}", kind.as_str());
            slot.3.set(cause(&reason));
            break;
        }
        if peer_closed {
            slot.3.set(CloseCause::PeerClosed);
            break;
        }
        if core.stopping.get() {
            slot.3.set(CloseCause::Stopping);
            break;
        }
        if !written {
            break; // a socket error: the slot's cause already says so
        }
        // One turn (at most 1 + DRAIN_READS reads) per connection before the others get
        // theirs: a busy Expressway-C connection does not starve its neighbours.
        glommio::yield_if_needed().await;
    }
    let removed = core.registrar.borrow_mut().connection_closed(facts.conn);
    if removed > 0 {
        tracing::debug!("{}: {removed} bindings went with {peer:?}", kind.as_str());
    }
}

/// One non-blocking read of the socket into the core's buffer: `None` when nothing is there.
fn recv_now(core: &Core, fd: std::os::fd::RawFd) -> Option<std::io::Result<usize>> {
    let mut buf = core.read_buf.borrow_mut();
    match nix::sys::socket::recv(fd, &mut buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
        Ok(n) => Some(Ok(n)),
        Err(nix::errno::Errno::EAGAIN) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// Hands one read (the first `n` bytes of the core's read buffer) to the session. Times the call when it verified fresh tokens, so that the
/// core's admission knows what a verification costs here (the little else done in the same
/// read is charged to it too: the estimate errs on the safe side).
fn receive(core: &Core, session: &mut Session, n: usize) -> Result<(), CloseReason> {
    let buf = core.read_buf.borrow();
    let bytes = &buf[..n];
    let mut registrar = core.registrar.borrow_mut();
    let before = registrar.verifier().stats().verifications;
    // One clock read per read; a second only when there is a cost to measure.
    let started = super::now_us();
    let result = session.receive(bytes, started / 1000, &mut registrar);
    let verified = registrar.verifier().stats().verifications - before;
    if verified > 0 {
        let took = super::now_us().saturating_sub(started);
        registrar.admission().observe_cost(took, verified);
    }
    result
}

/// Writes what the session has for the socket; false when the socket failed.
async fn flush(
    core: &Core,
    stream: &mut TcpStream,
    session: &mut Session,
    out: &mut Vec<u8>,
) -> bool {
    session.transmit(out);
    if out.is_empty() {
        return true;
    }
    core.in_flight.set(core.in_flight.get() + 1);
    core.metrics().bytes_out(out.len() as u64);
    let r = stream.write_all(out).await;
    core.in_flight.set(core.in_flight.get() - 1);
    out.clear();
    r.is_ok()
}

/// One datagram listener: each request answered to the address and port it came from
/// (RFC 3581 rport; the top Via gets `received` and `rport` filled in).
pub(super) async fn udp_loop(core: Rc<Core>, li: usize, mut socket: UdpSocket) {
    let max = core.shared.cfg.limits.max_message_bytes;
    socket.set_buffer_size(MAX_DATAGRAM);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(2048);
    let kind = core.shared.cfg.listeners[li].kind;
    debug_assert_eq!(kind, ListenerKind::Udp);
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("udp: receive: {e}");
                continue;
            }
        };
        if core.stopping.get() {
            return;
        }
        let facts = Facts {
            listener: kind,
            conn: 0,
            source: Some(source(from)),
        };
        let m = core.metrics();
        m.bytes_in(n as u64);
        let answered = {
            let mut registrar = core.registrar.borrow_mut();
            answer_datagram(
                &buf[..n],
                max,
                &mut registrar,
                &facts,
                now_ms() / 1000,
                &mut out,
            )
        };
        match answered {
            Some((true, code)) => m.register_answered(code),
            Some((false, code)) => m.other_answered(code),
            None => {}
        }
        if !out.is_empty() {
            m.bytes_out(out.len() as u64);
            core.in_flight.set(core.in_flight.get() + 1);
            if let Err(e) = socket.send_to(&out, from).await {
                tracing::debug!("udp: send to {from}: {e}");
            }
            core.in_flight.set(core.in_flight.get() - 1);
            out.clear();
        }
    }
}
