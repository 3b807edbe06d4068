//! A connection's outgoing bytes: appended at the back, taken from the front as the socket (or
//! TLS) takes them. Taking moves nothing; the bytes left are moved down only once the taken
//! part is the larger half, so each byte is moved at most about once however deep the queue
//! grows and however little each write takes. (A `Vec` drained from the front moves the whole
//! rest on every partial write: with a registrar behind in a storm and megabytes queued, that
//! was most of the engine's CPU.) Hand-written rather than `bytes::BytesMut` because the
//! REGISTER writer and rustls append into a `Vec<u8>`.

/// Bytes waiting to go out, oldest first.
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already taken.
    head: usize,
}

impl Outbox {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    /// The oldest waiting bytes, at most `max` of them.
    pub fn front(&self, max: usize) -> &[u8] {
        let end = self.buf.len().min(self.head.saturating_add(max));
        &self.buf[self.head..end]
    }

    /// Where new bytes are appended (after every waiting byte).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The first `n` waiting bytes went out (more than are waiting counts as all).
    pub fn consume(&mut self, n: usize) {
        self.head = self.buf.len().min(self.head + n);
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head >= self.buf.len() - self.head {
            // The taken part is the larger half: moving the rest down costs no more than
            // what was taken since the last move.
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// Drops every waiting byte (the connection is gone); the capacity stays.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }
}
