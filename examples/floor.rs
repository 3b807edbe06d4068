//! The floor of scripts/compare-peers.sh: the least a SIP server can do for a REGISTER over TCP.
//! It frames each message by its head and Content-Length and answers `SIP/2.0 200 OK` echoing
//! Via (every one, in order), From, To (with a tag), Call-ID and CSeq, plus `Content-Length: 0`.
//! No token check, no binding table, no parse beyond finding those header lines.
//!
//! It runs on the same I/O runtime as `regstorm serve`: glommio 0.9 (io_uring), one executor
//! pinned to CPU 0 with a small io_uring memory area, so the CPU a REGISTER costs here is the
//! runtime's and the kernel's share, and `regstorm serve` minus this floor is the registrar's own
//! work (parse, token cache, table, answer). Framing is a bare memchr/memmem scan rather than
//! `regstorm::sip::Framer`, whose full head parse belongs to the registrar's side of the ledger.
//!
//!     cargo run --release --example floor -- 127.0.0.1:5062

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use memchr::memmem;

/// Receive buffer per connection; a message larger than this closes the connection.
const BUF: usize = 64 * 1024;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5062".to_owned());
    let executor = LocalExecutorBuilder::new(Placement::Fixed(0))
        .name("floor")
        .io_memory(1 << 20)
        .spawn(move || async move {
            let listener = match TcpListener::bind(&addr) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("floor: cannot listen on {addr}: {e}");
                    std::process::exit(1);
                }
            };
            eprintln!("floor: listening on {}", listener.local_addr().unwrap());
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        glommio::spawn_local(serve(stream)).detach();
                    }
                    Err(e) => eprintln!("floor: accept: {e}"),
                }
            }
        });
    match executor {
        Ok(handle) => {
            let _ = handle.join();
        }
        Err(e) => {
            eprintln!("floor: cannot start the glommio executor (io_uring): {e}");
            std::process::exit(1);
        }
    }
}

/// One connection: read, answer every complete message in the buffer with one write, repeat.
async fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let end_of_head = memmem::Finder::new(b"\r\n\r\n");
    let mut buf = vec![0u8; BUF];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        if start == end {
            (start, end) = (0, 0);
        } else if end == BUF {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        let n = match stream.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        end += n;
        loop {
            let input = &buf[start..end];
            // Keep-alive CRLFs between messages (RFC 5626 §4.4.1 pings are answered with CRLF).
            if input.starts_with(b"\r\n\r\n") {
                out.extend_from_slice(b"\r\n");
                start += 4;
                continue;
            }
            if input.starts_with(b"\r\n") {
                start += 2;
                continue;
            }
            let Some(at) = end_of_head.find(input) else {
                break;
            };
            let head = &input[..at + 2];
            let total = at + 4 + content_length(head);
            if total > BUF {
                return;
            }
            if input.len() < total {
                break;
            }
            answer(head, &mut out);
            start += total;
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if end == BUF && start == 0 {
            return; // a head larger than the buffer
        }
    }
}

/// The header lines of `head` (each without its CRLF), the request line skipped.
fn lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = head;
    let mut first = true;
    std::iter::from_fn(move || loop {
        let eol = memchr::memchr(b'\n', rest)?;
        let line = rest[..eol].strip_suffix(b"\r").unwrap_or(&rest[..eol]);
        rest = &rest[eol + 1..];
        if std::mem::take(&mut first) {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        return Some((line[..colon].trim_ascii(), line));
    })
}

fn content_length(head: &[u8]) -> usize {
    lines(head)
        .find(|(name, _)| {
            name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")
        })
        .and_then(|(name, line)| {
            let value = line[name.len()..].trim_ascii_start().strip_prefix(b":")?;
            std::str::from_utf8(value.trim_ascii()).ok()?.parse().ok()
        })
        .unwrap_or(0)
}

/// `SIP/2.0 200 OK` with the transaction headers of the request, as they came.
fn answer(head: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"SIP/2.0 200 OK\r\n");
    for (name, line) in lines(head) {
        let is = |long: &[u8], compact: &[u8]| {
            name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(compact)
        };
        if is(b"via", b"v") || is(b"from", b"f") || is(b"call-id", b"i") || is(b"cseq", b"cseq") {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        } else if is(b"to", b"t") {
            out.extend_from_slice(line);
            if memmem::find(line, b";tag=").is_none() {
                out.extend_from_slice(b";tag=floor");
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
}
