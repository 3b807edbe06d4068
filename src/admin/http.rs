//! HTTP/1.1 on the admin address: one request at a time out of the caller's buffer, answered
//! into the caller's output (RFC 9110, RFC 9112). Heads are parsed by httparse within fixed
//! bounds; request bodies are never needed, so a small one is skipped and a large one refused.

use crate::registrar::BindingInfo;
use crate::sip::{scan, Aor, SipUri};
use std::io::Write;

/// The longest request head (request line, header lines and the empty line) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines a request may carry.
pub const MAX_HEADERS: usize = 32;
/// The longest request body skipped; no admin route reads one.
pub const MAX_BODY: usize = 8 * 1024;
/// [`handle_request`] answers (never returns [`Handled::Partial`]) once the buffer holds this
/// many bytes, so a read buffer of this size is always enough.
pub const MAX_REQUEST: usize = MAX_HEAD + MAX_BODY;

/// What the admin endpoints need from the running registrar. The runtime implements it over its
/// shared state (an `Arc<Metrics>`, the binding table, the clock); the HTTP code sees nothing else.
pub trait AdminView {
    /// True while the registrar is serving (`/healthz` answers 200; 503 when false).
    fn serving(&self) -> bool;
    /// The bindings of `aor` now; empty for an unknown AOR.
    fn bindings(&self, aor: &Aor) -> Vec<BindingInfo>;
    /// Appends the metrics in the Prometheus text format 0.0.4 (see
    /// [`super::Metrics::render`]).
    fn render_metrics(&self, out: &mut Vec<u8>);
}

/// The result of [`handle_request`], in the httparse shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The request is not complete yet: call again with more bytes. Nothing was written.
    Partial,
    /// A response was appended to `out`. The first `consumed` bytes of the buffer were the
    /// request; when `close` is true, write the response and close the connection without
    /// reading further (any bytes after `consumed` are to be dropped).
    Answered { consumed: usize, close: bool },
}

/// Handles the request at the start of `buf`, appending its response to `out`. Pipelined
/// requests are answered one per call: call again on `&buf[consumed..]`.
pub fn handle_request(buf: &[u8], view: &dyn AdminView, out: &mut Vec<u8>) -> Handled {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Never parse past the limit: a head that does not end within MAX_HEAD bytes is refused.
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if window.len() < MAX_HEAD => return Handled::Partial,
        Ok(httparse::Status::Partial) => {
            return fatal(out, buf, 431, "request head longer than 8 KiB\n");
        }
        Err(httparse::Error::TooManyHeaders) => {
            return fatal(out, buf, 431, "too many header lines\n");
        }
        Err(_) => return fatal(out, buf, 400, "malformed HTTP request\n"),
    };

    let mut content_length: Option<u64> = None;
    let mut close_asked = false;
    let mut keep_alive_asked = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3: an invalid or conflicting length leaves no framing to trust.
            match scan::parse_decimal(h.value, u64::MAX) {
                Some(n) if content_length.is_none_or(|c| c == n) => content_length = Some(n),
                _ => return fatal(out, buf, 400, "bad Content-Length\n"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // RFC 9112 §6.1: a server that does not decode a transfer coding answers 501.
            return fatal(out, buf, 501, "transfer codings are not supported\n");
        } else if name.eq_ignore_ascii_case("connection") {
            for option in h.value.split(|&b| b == b',').map(scan::trim) {
                close_asked |= option.eq_ignore_ascii_case(b"close");
                keep_alive_asked |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > MAX_BODY as u64 {
        return fatal(out, buf, 413, "request body too large\n");
    }
    let consumed = head_len + body_len as usize;
    if buf.len() < consumed {
        return Handled::Partial;
    }

    // RFC 9112 §9.3: HTTP/1.1 persists unless closed; HTTP/1.0 only when it asks to.
    let http10 = req.version == Some(0);
    let close = close_asked || (http10 && !keep_alive_asked);
    let conn = if close {
        Conn::Close
    } else if http10 {
        Conn::KeepAlive
    } else {
        Conn::Default
    };
    let answered = Handled::Answered { consumed, close };

    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is answered 400.
    if !http10 && hosts != 1 {
        let body = b"exactly one Host header is required\n";
        write_response(out, 400, TEXT, conn, &[], body);
        return answered;
    }
    let Some(route) = req.path.and_then(route) else {
        write_response(out, 400, TEXT, conn, &[], b"bad request target\n");
        return answered;
    };
    // A resource that exists answers GET only (an unknown one is 404 whatever the method).
    if route != Route::Unknown && req.method != Some("GET") {
        let body = b"only GET is allowed\n";
        write_response(out, 405, TEXT, conn, &["Allow: GET"], body);
        return answered;
    }

    let mut body = Vec::new();
    match route {
        Route::Metrics => {
            view.render_metrics(&mut body);
            write_response(out, 200, PROMETHEUS, conn, &[], &body);
        }
        Route::Healthz if view.serving() => write_response(out, 200, TEXT, conn, &[], b"ok\n"),
        Route::Healthz => write_response(out, 503, TEXT, conn, &[], b"not serving\n"),
        Route::Bindings(escaped) => {
            let mut uri = Vec::with_capacity(escaped.len());
            let parsed = percent_decode(escaped.as_bytes(), &mut uri)
                .then(|| SipUri::parse(&uri))
                .flatten();
            match parsed {
                Some(uri) => {
                    let aor = Aor::new(&uri);
                    let bindings = view.bindings(&aor);
                    let listing = BindingsBody {
                        aor: aor.as_str(),
                        bindings: &bindings,
                    };
                    match serde_json::to_writer(&mut body, &listing) {
                        Ok(()) => write_response(out, 200, JSON, conn, &[], &body),
                        Err(_) => {
                            let body = b"bindings could not be written\n";
                            write_response(out, 500, TEXT, conn, &[], body);
                        }
                    }
                }
                None => {
                    let body = b"the AOR is not a SIP or SIPS URI\n";
                    write_response(out, 400, TEXT, conn, &[], body);
                }
            }
        }
        Route::Unknown => write_response(out, 404, TEXT, conn, &[], b"not found\n"),
    }
    answered
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON: &str = "application/json";

/// `/bindings/{aor}` as CONTRACT "Admin endpoints" lists it.
#[derive(serde::Serialize)]
struct BindingsBody<'a> {
    aor: &'a str,
    bindings: &'a [BindingInfo],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'a> {
    Metrics,
    Healthz,
    /// The AOR as sent, percent-encoding still in place.
    Bindings(&'a str),
    Unknown,
}

/// The route of a request target (RFC 9112 §3.2: origin form, or absolute form for http(s));
/// `None` for a target of neither form. The query, if any, is ignored.
fn route(target: &str) -> Option<Route<'_>> {
    let path = if target.starts_with('/') {
        target
    } else {
        let (scheme, rest) = target.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        rest.find('/').map_or("/", |i| &rest[i..])
    };
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    Some(match path {
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Healthz,
        _ => match path.strip_prefix("/bindings/") {
            Some(aor) => Route::Bindings(aor),
            None => Route::Unknown,
        },
    })
}

/// Decodes `%HH` escapes once (RFC 3986 §2.1), appending to `out`; false for a malformed one.
fn percent_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| scan::decode_hex_pair(h[0], h[1]))
            else {
                return false;
            };
            out.push(b);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    true
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// HTTP/1.1 persistence, nothing to say.
    Default,
    /// An HTTP/1.0 client asked to keep the connection: confirm it.
    KeepAlive,
    Close,
}

/// Answers a request whose framing cannot be trusted, and closes.
fn fatal(out: &mut Vec<u8>, buf: &[u8], status: u16, body: &str) -> Handled {
    write_response(out, status, TEXT, Conn::Close, &[], body.as_bytes());
    Handled::Answered {
        consumed: buf.len(),
        close: true,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Appends a whole response; Content-Length is always set, so every answer keeps framing.
fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    conn: Conn,
    extra: &[&str],
    body: &[u8],
) {
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    match conn {
        Conn::Default => {}
        Conn::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Conn::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    for line in extra {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}
