//! The one error type of the wire layer: small, `Copy`, with a reason phrase a 400 can reuse.

use super::name::HeaderName;
use std::fmt;

/// What is wrong with a message. Variants split into framing errors, after which the byte
/// stream cannot be trusted and a stream connection must close ([`Error::is_framing`]), and
/// message errors, which are answered (400, or the status of [`Error::status`]) while the
/// connection goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The request or status line does not have the RFC 3261 §7.1/§7.2 shape.
    BadStartLine,
    /// The method is not an RFC 3261 token.
    BadMethod,
    /// The Request-URI is empty, bracketed, or holds white space or control octets.
    BadRequestUri,
    /// A well-formed SIP version other than 2.0 (the registrar answers 505).
    UnsupportedVersion,
    /// The status code is not three digits from 100 to 699.
    BadStatusCode,
    /// The reason phrase is not UTF-8.
    BadReasonPhrase,
    /// A header line whose name is empty or not a token.
    BadHeaderName,
    /// A header line without a colon after its name.
    MissingColon,
    /// A CR or LF octet that is not part of a CRLF line end.
    BareLineEnd,
    /// More header lines than the caller's array (or the configured limit) holds.
    TooManyHeaders,
    /// The header section exceeds the configured limit before its end was found.
    HeadTooLarge,
    /// A datagram whose header section is not closed by an empty line.
    HeadUnterminated,
    /// Content-Length is not a decimal number of at most 2^32-1 (for example negative).
    BadContentLength,
    /// Two Content-Length headers with different values (RFC 4475 §3.3.9).
    ConflictingContentLength,
    /// Content-Length exceeds the configured body limit.
    BodyTooLarge,
    /// A datagram shorter than its Content-Length says (RFC 4475 §3.1.2.2).
    BodyIncomplete,
    /// A stream message without Content-Length (RFC 3261 §18.3 makes it mandatory there).
    MissingContentLength,
    /// A mandatory header is absent.
    Missing(HeaderName<'static>),
    /// A header that must appear once appears more than once (RFC 4475 §3.3.8).
    Duplicate(HeaderName<'static>),
    /// A header value does not follow its grammar.
    BadValue(HeaderName<'static>),
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    CSeqMethodMismatch,
}

impl Error {
    /// True when the byte stream can no longer be framed: close a stream connection.
    pub fn is_framing(&self) -> bool {
        matches!(
            self,
            Error::HeadTooLarge
                | Error::BadContentLength
                | Error::ConflictingContentLength
                | Error::BodyTooLarge
        )
    }

    /// The SIP status a server answers with: 505 for a foreign version, else 400.
    pub fn status(&self) -> u16 {
        match self {
            Error::UnsupportedVersion => 505,
            _ => 400,
        }
    }

    /// A static description, usable as (part of) a reason phrase.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::BadStartLine => "Malformed Start Line",
            Error::BadMethod => "Malformed Method",
            Error::BadRequestUri => "Malformed Request-URI",
            Error::UnsupportedVersion => "Version Not Supported",
            Error::BadStatusCode => "Malformed Status Code",
            Error::BadReasonPhrase => "Malformed Reason Phrase",
            Error::BadHeaderName => "Malformed Header Name",
            Error::MissingColon => "Header Line Without Colon",
            Error::BareLineEnd => "Bare CR or LF",
            Error::TooManyHeaders => "Too Many Headers",
            Error::HeadTooLarge => "Header Section Too Large",
            Error::HeadUnterminated => "Header Section Not Terminated",
            Error::BadContentLength => "Bad Content-Length",
            Error::ConflictingContentLength => "Conflicting Content-Length",
            Error::BodyTooLarge => "Message Body Too Large",
            Error::BodyIncomplete => "Body Shorter Than Content-Length",
            Error::MissingContentLength => "Missing Content-Length",
            Error::Missing(_) => "Missing Header",
            Error::Duplicate(_) => "Duplicate Header",
            Error::BadValue(_) => "Malformed Header",
            Error::CSeqMethodMismatch => "CSeq Method Mismatch",
        }
    }

    /// Appends the reason phrase for a response, naming the header at fault when there is one
    /// ("Missing Call-ID", "Malformed Via").
    pub fn write_reason(&self, out: &mut Vec<u8>) {
        let (what, name) = match self {
            Error::Missing(n) => ("Missing ", n),
            Error::Duplicate(n) => ("Duplicate ", n),
            Error::BadValue(n) => ("Malformed ", n),
            _ => return out.extend_from_slice(self.reason().as_bytes()),
        };
        out.extend_from_slice(what.as_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = Vec::with_capacity(40);
        self.write_reason(&mut s);
        f.write_str(&String::from_utf8_lossy(&s))
    }
}

impl std::error::Error for Error {}
