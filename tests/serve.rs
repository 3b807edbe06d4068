//! End to end on loopback: the real server (glommio executors, real sockets, rustls) with lab
//! material, driven by std sockets and a rustls client. TLS, mutual TLS (allowed name, unlisted
//! name, another CA, no certificate), TCP, UDP, pipelining, trickling, bindings dying with their
//! connection; and the binary itself for `--check`, SIGHUP and SIGTERM.

use regstorm::auth::{Alg, Signer, TokenClaims};
use regstorm::config::{Config, ListenerKind};
use regstorm::lab::LabMaterial;
use regstorm::load::jabber::{cisco_body, Register};
use regstorm::rt::Server;
use rustls::pki_types::ServerName;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Lab {
    dir: PathBuf,
    m: LabMaterial,
    signer: Signer,
}

fn lab(name: &str) -> Lab {
    let m = regstorm::lab::generate(Alg::EdDSA).unwrap();
    let dir = std::env::temp_dir().join(format!("regstorm-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    m.write(&dir).unwrap();
    let signer = Signer::from_pkcs8(m.signing_key.as_bytes(), "signing.key").unwrap();
    Lab { dir, m, signer }
}

/// A configuration with every listener kind on a free loopback port.
fn write_config(lab: &Lab, cores: u32, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[registrar]
cores = {cores}
[auth]
jwks = "jwks.json"
[[listener]]
kind = "oauth"
addr = "127.0.0.1:0"
cert = "server.pem"
key = "server.key"
[[listener]]
kind = "mra"
addr = "127.0.0.1:0"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
expressway_names = ["expc1.example.com"]
[[listener]]
kind = "tcp"
addr = "127.0.0.1:0"
[[listener]]
kind = "udp"
addr = "127.0.0.1:0"
{extra}
"#
    );
    let path = lab.dir.join("e2e.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(lab: &Lab, cores: u32, extra: &str) -> Server {
    let cfg = Config::load(&write_config(lab, cores, extra)).unwrap();
    Server::start(cfg).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(lab: &Lab, user: &str) -> String {
    lab.signer.mint(&TokenClaims {
        sub: user,
        exp: now() + 600,
        iat: now(),
        nbf: None,
        iss: None,
        aud: None,
        lines: &[],
        dev: None,
    })
}

/// A Jabber REGISTER for device number `n` (user 1000+n).
fn register(n: u32, token: Option<&str>, cseq: u32, transport: &str, expires: u32) -> Vec<u8> {
    let user = format!("{}", 1000 + n);
    let call_id = format!("call-{n}@10.0.0.1");
    let contact_user = format!("a8ae9f92-4b07-a0d7-d701-{n:012}");
    let instance = format!("<urn:uuid:00000000-0000-0000-0000-{n:012}>");
    let device = format!("CSF{n}");
    let branch = format!("z9hG4bK{n}x{cseq}");
    let r = Register {
        domain: "127.0.0.1",
        user: &user,
        local: "10.0.0.1:5062",
        transport,
        branch: &branch,
        from_tag: "ft",
        call_id: &call_id,
        cseq,
        contact_user: &contact_user,
        instance: &instance,
        device: &device,
        expires,
        token,
        date: "Mon, 30 Mar 2020 11:03:19 GMT",
        body: true,
    };
    let mut out = Vec::new();
    r.write(&mut out, &cisco_body());
    out
}

/// `msg` without its `name:` header lines.
fn without_header(msg: &[u8], name: &str) -> Vec<u8> {
    let prefix = format!("{name}:");
    String::from_utf8(msg.to_vec())
        .unwrap()
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with(&prefix))
        .collect::<String>()
        .into_bytes()
}

/// Reads one response (head and its Content-Length body) from a byte stream.
fn read_response(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {head:?}"),
            ));
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = header(&head, "Content-Length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(head)
}

fn status(resp: &str) -> u16 {
    resp[8..11].parse().unwrap()
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim())
}

fn contacts(resp: &str) -> usize {
    resp.lines().filter(|l| l.starts_with("Contact:")).count()
}

fn client_config(lab: &Lab, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let identity = identity.map(|(c, k)| (c.as_bytes(), k.as_bytes()));
    Arc::new(regstorm::tls::client_config(lab.m.ca_pem.as_bytes(), identity).unwrap())
}

type Tls = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

fn tls_connect(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    BufReader::new(rustls::StreamOwned::new(conn, tcp))
}

fn tcp_connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(tcp)
}

fn exchange<S: Read + Write>(s: &mut BufReader<S>, msg: &[u8]) -> String {
    s.get_mut().write_all(msg).unwrap();
    s.get_mut().flush().unwrap();
    read_response(s).unwrap()
}

#[test]
fn tls_jabber_flow_407_then_200() {
    let lab = lab("tls");
    let server = start(&lab, 1, "");
    let addr = server.addr(ListenerKind::Oauth).unwrap();
    let mut s = tls_connect(addr, client_config(&lab, None));
    let r = exchange(&mut s, &register(1, None, 1, "TLS", 3600));
    assert_eq!(status(&r), 407, "{r}");
    assert_eq!(
        header(&r, "Proxy-Authenticate"),
        Some("Bearer realm=\"ccmsipline\"")
    );
    let tok = token(&lab, "1001");
    let r = exchange(&mut s, &register(1, Some(&tok), 2, "TLS", 3600));
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "Expires"), Some("120"));
    assert!(
        header(&r, "Contact").unwrap().ends_with(";expires=120"),
        "{r}"
    );
    // A forged token: 407 invalid_token.
    let r = exchange(
        &mut s,
        &register(1, Some(&(tok.clone() + "x")), 3, "TLS", 3600),
    );
    assert_eq!(status(&r), 407, "{r}");
    assert!(header(&r, "Proxy-Authenticate")
        .unwrap()
        .contains("invalid_token"));
    // Someone else's token: 403.
    let r = exchange(&mut s, &register(2, Some(&tok), 4, "TLS", 3600));
    assert_eq!(status(&r), 403, "{r}");
    drop(s);
    server.stop();
}

#[test]
fn mra_allowed_certificate_carries_many_devices() {
    let lab = lab("mra-ok");
    let server = start(&lab, 1, "");
    let addr = server.addr(ListenerKind::Mra).unwrap();
    let cfg = client_config(&lab, Some((&lab.m.expressway_pem, &lab.m.expressway_key)));
    let mut s = tls_connect(addr, cfg);
    for n in 0..50 {
        let tok = token(&lab, &format!("{}", 1000 + n));
        let r = exchange(&mut s, &register(n, Some(&tok), 1, "TLS", 3600));
        assert_eq!(status(&r), 200, "device {n}: {r}");
    }
    drop(s);
    server.stop();
}

/// The handshake must fail, or the server close without answering.
fn assert_refused(mut s: Tls) {
    let sent = s
        .get_mut()
        .write_all(&register(1, None, 1, "TLS", 3600))
        .and_then(|()| s.get_mut().flush());
    if sent.is_ok() {
        // An alert or the close, not silence (a read timeout is not a refusal).
        match read_response(&mut s) {
            Ok(r) => panic!("expected a refusal, got {r:?}"),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "no refusal within 10 s: {e}"
            ),
        }
    }
}

#[test]
fn mra_refuses_unlisted_name_other_ca_and_no_certificate() {
    let lab = lab("mra-no");
    let server = start(&lab, 1, "");
    let addr = server.addr(ListenerKind::Mra).unwrap();
    // Same CA, a name not in expressway_names.
    let (cert, key) = lab.m.issue_client("rogue.example.com").unwrap();
    assert_refused(tls_connect(addr, client_config(&lab, Some((&cert, &key)))));
    // The right name from another CA.
    let other = regstorm::lab::generate(Alg::EdDSA).unwrap();
    assert_refused(tls_connect(
        addr,
        client_config(&lab, Some((&other.expressway_pem, &other.expressway_key))),
    ));
    // No certificate at all.
    assert_refused(tls_connect(addr, client_config(&lab, None)));
    // The listed name from the lab CA still works afterwards.
    let (cert, key) = lab.m.issue_client("expc1.example.com").unwrap();
    let mut s = tls_connect(addr, client_config(&lab, Some((&cert, &key))));
    let r = exchange(&mut s, &register(1, None, 1, "TLS", 3600));
    assert_eq!(status(&r), 407);
    drop(s);
    server.stop();
}

#[test]
fn tcp_pipelining_trickle_and_close_removes_bindings() {
    let lab = lab("tcp");
    let server = start(&lab, 1, "");
    let addr = server.addr(ListenerKind::Tcp).unwrap();
    let tok = token(&lab, "1001");
    // Pipelined: three REGISTERs in one write, answered in order.
    let mut s = tcp_connect(addr);
    let mut batch = register(1, None, 1, "TCP", 3600);
    batch.extend(register(1, Some(&tok), 2, "TCP", 3600));
    batch.extend(register(1, Some(&tok), 3, "TCP", 3600));
    s.get_mut().write_all(&batch).unwrap();
    let codes: Vec<(u16, String)> = (0..3)
        .map(|_| {
            let r = read_response(&mut s).unwrap();
            (status(&r), header(&r, "CSeq").unwrap().to_string())
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (407, "1 REGISTER".to_string()),
            (200, "2 REGISTER".to_string()),
            (200, "3 REGISTER".to_string())
        ]
    );
    // Trickled: a REGISTER a few bytes at a time (Nagle off, so the pieces go out apart).
    s.get_ref().set_nodelay(true).unwrap();
    let msg = register(1, Some(&tok), 4, "TCP", 3600);
    for chunk in msg.chunks(7) {
        s.get_mut().write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let r = read_response(&mut s).unwrap();
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(contacts(&r), 1);
    // A keep-alive ping gets its pong.
    s.get_mut().write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    // The connection closes: its binding goes with it (seen from another connection).
    drop(s);
    let mut other = tcp_connect(addr);
    // A fetch: the same REGISTER without Contact.
    let fetch = |cseq| without_header(&register(1, Some(&tok), cseq, "TCP", 3600), "Contact");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = exchange(&mut other, &fetch(10));
        assert_eq!(status(&r), 200, "{r}");
        if contacts(&r) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "binding still there: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(other);
    server.stop();
}

#[test]
fn a_large_pipelined_batch_then_close_gets_every_answer() {
    // Many pages of REGISTERs in one write, then the write side shut: the registrar takes
    // what is waiting in several reads, answers all of it, and only then closes.
    let lab = lab("batch");
    let server = start(&lab, 1, "");
    let addr = server.addr(ListenerKind::Tcp).unwrap();
    let tok = token(&lab, "1001");
    let mut s = tcp_connect(addr);
    let mut batch = Vec::new();
    for cseq in 1..=60 {
        batch.extend(register(1, Some(&tok), cseq, "TCP", 3600));
    }
    assert!(
        batch.len() > 8 * 4096,
        "{} bytes: several read buffers",
        batch.len()
    );
    s.get_mut().write_all(&batch).unwrap();
    s.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
    for cseq in 1..=60 {
        let r = read_response(&mut s).unwrap();
        assert_eq!(status(&r), 200, "{r}");
        assert_eq!(
            header(&r, "CSeq"),
            Some(format!("{cseq} REGISTER").as_str())
        );
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the answers, then the close");
    server.stop();
}

#[test]
fn udp_answers_to_the_source_with_rport() {
    let lab = lab("udp");
    let server = start(&lab, 1, "");
    let addr = server.addr(ListenerKind::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let tok = token(&lab, "1001");
    let msg = String::from_utf8(register(1, Some(&tok), 1, "UDP", 3600))
        .unwrap()
        .replace(";branch=", ";rport;branch=");
    sock.send_to(msg.as_bytes(), addr).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(from, addr);
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(status(&r), 200, "{r}");
    let port = sock.local_addr().unwrap().port();
    let via = header(&r, "Via").unwrap();
    assert!(via.contains(&format!("rport={port}")), "{via}");
    assert!(via.contains("received=127.0.0.1"), "{via}");
    // Garbage and keep-alives are dropped without an answer; the listener keeps serving.
    // (Counted answers are checked through /metrics below.)
    sock.send_to(b"\r\n\r\n", addr).unwrap();
    sock.send_to(b"\x00\x01garbage", addr).unwrap();
    let msg2 = msg.replace("CSeq: 1 ", "CSeq: 2 ");
    sock.send_to(msg2.as_bytes(), addr).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(header(&r, "CSeq"), Some("2 REGISTER"), "{r}");
    // Both answers are counted.
    let mut text = Vec::new();
    server.metrics().render(0, &mut text);
    let text = String::from_utf8(text).unwrap();
    assert_eq!(
        metric(&text, "regstorm_registers_total{status=\"200\"}"),
        2.0
    );
    server.stop();
}

#[test]
fn connection_limit_refuses_beyond_max() {
    let lab = lab("limit");
    let server = start(&lab, 1, "[limits]\nmax_connections = 2\n");
    let addr = server.addr(ListenerKind::Tcp).unwrap();
    let tok = token(&lab, "1001");
    let mut a = tcp_connect(addr);
    let mut b = tcp_connect(addr);
    assert_eq!(
        status(&exchange(&mut a, &register(1, Some(&tok), 1, "TCP", 3600))),
        200
    );
    assert_eq!(
        status(&exchange(&mut b, &register(1, Some(&tok), 2, "TCP", 3600))),
        200
    );
    let mut c = tcp_connect(addr);
    let _ = c
        .get_mut()
        .write_all(&register(1, Some(&tok), 3, "TCP", 3600));
    assert!(
        read_response(&mut c).is_err(),
        "a third connection was served"
    );
    // A slot frees when a connection closes.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = tcp_connect(addr);
        let _ = d
            .get_mut()
            .write_all(&register(1, Some(&tok), 4, "TCP", 3600));
        if read_response(&mut d).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was not reused");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(b);
    server.stop();
}

#[test]
fn bad_input_gets_400_and_a_broken_stream_is_closed() {
    let lab = lab("bad");
    let server = start(&lab, 1, "");
    let addr = server.addr(ListenerKind::Tcp).unwrap();
    let mut s = tcp_connect(addr);
    // A missing Call-ID: 400 naming it, the connection stays up.
    let broken = without_header(&register(1, None, 1, "TCP", 3600), "Call-ID");
    let r = exchange(&mut s, &broken);
    assert_eq!(status(&r), 400, "{r}");
    let r = exchange(&mut s, &register(1, None, 2, "TCP", 3600));
    assert_eq!(status(&r), 407, "{r}");
    // A Content-Length that is not a number breaks framing: 400, then the close.
    let msg = String::from_utf8(register(1, None, 1, "TCP", 3600)).unwrap();
    let bad = msg.replace("Content-Length: ", "Content-Length: x");
    let r = exchange(&mut s, bad.as_bytes());
    assert_eq!(status(&r), 400, "{r}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    server.stop();
}

// ---- The binary: --check, SIGHUP, SIGTERM ----

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_regstorm")
}

/// Starts `regstorm serve` and reads the bound addresses from its log.
fn spawn_serve(config: &Path) -> (Child, Vec<(String, SocketAddr)>) {
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addrs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while addrs.len() < 4 {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server did not report its listeners");
        if let Some(rest) = line.split("listening: ").nth(1) {
            let mut parts = rest.split_whitespace();
            let kind = parts.next().unwrap().to_string();
            let addr = parts.nth(1).unwrap().parse().unwrap();
            addrs.push((kind, addr));
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, addrs)
}

fn addr_of(addrs: &[(String, SocketAddr)], kind: &str) -> SocketAddr {
    addrs.iter().find(|(k, _)| k == kind).unwrap().1
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

fn peer_cert(s: &Tls) -> Vec<u8> {
    s.get_ref().conn.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn check_flag_names_the_file_and_key() {
    let lab = lab("check");
    let config = write_config(&lab, 1, "");
    let ok = Command::new(bin())
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    std::fs::write(lab.dir.join("server.key"), "not a key\n").unwrap();
    let bad = Command::new(bin())
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("e2e.toml") && err.contains("listener[0].key"),
        "{err}"
    );
}

/// CONTRACT "Exit status": `serve --check` on a value of the wrong type exits 2 with one line
/// naming the file, the line and the key.
#[test]
fn check_flag_names_the_file_line_and_key_of_a_value_of_the_wrong_type() {
    let lab = lab("check-type");
    for (text, want) in [
        (
            "[registrar]\nrealm = \"ccmsipline\"\nmin_expires = \"sixty\"\n",
            "registrar.toml:3: registrar.min_expires: expected an integer, found a string",
        ),
        (
            "[limits]\nmax_connections = \"lots\"\n",
            "registrar.toml:2: limits.max_connections: expected an integer, found a string",
        ),
    ] {
        let config = lab.dir.join("registrar.toml");
        let listeners = "[auth]\njwks = \"jwks.json\"\n[[listener]]\nkind = \"tcp\"\n";
        std::fs::write(&config, format!("{text}{listeners}")).unwrap();
        let out = Command::new(bin())
            .args(["serve", "--check", "--config", "registrar.toml"])
            .current_dir(&lab.dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err, format!("regstorm: {want}\n"));
    }
}

#[test]
fn sighup_reloads_certificate_and_keys_without_dropping_connections() {
    let lab = lab("hup");
    let config = write_config(&lab, 2, "");
    let (mut child, addrs) = spawn_serve(&config);
    let oauth = addr_of(&addrs, "oauth");
    let client = {
        // Trust the lab CA and the second lab's CA (the new certificate comes from it).
        let second = regstorm::lab::generate(Alg::EdDSA).unwrap();
        let both = format!("{}{}", lab.m.ca_pem, second.ca_pem);
        let cfg = regstorm::tls::client_config(both.as_bytes(), None).unwrap();
        (Arc::new(cfg), second)
    };
    let (cfg, second) = client;
    let old_tok = token(&lab, "1001");
    let mut before = tls_connect(oauth, cfg.clone());
    let r = exchange(&mut before, &register(1, Some(&old_tok), 1, "TLS", 3600));
    assert_eq!(status(&r), 200, "{r}");
    let old_cert = peer_cert(&before);

    // New server certificate and a new signing key; the old key is withdrawn.
    std::fs::write(lab.dir.join("server.pem"), &second.server_pem).unwrap();
    std::fs::write(lab.dir.join("server.key"), &second.server_key).unwrap();
    std::fs::write(lab.dir.join("jwks.json"), &second.jwks).unwrap();
    signal(&child, "-HUP");
    let new_signer = Signer::from_pkcs8(second.signing_key.as_bytes(), "signing.key").unwrap();
    let new_tok = new_signer.mint(&TokenClaims {
        sub: "1001",
        exp: now() + 600,
        iat: now(),
        nbf: None,
        iss: None,
        aud: None,
        lines: &[],
        dev: None,
    });
    // New handshakes get the new certificate (once the reload is applied).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fresh = tls_connect(oauth, cfg.clone());
        let r = exchange(&mut fresh, &register(1, Some(&new_tok), 2, "TLS", 3600));
        if peer_cert(&fresh) != old_cert && status(&r) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no reload: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The old connection is still up; the withdrawn key's token stops passing (once its core
    // has applied the reload: within a control tick).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut cseq = 3;
    let r = loop {
        let r = exchange(&mut before, &register(1, Some(&old_tok), cseq, "TLS", 3600));
        cseq += 1;
        if status(&r) != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status(&r), 407, "{r}");
    assert!(header(&r, "Proxy-Authenticate")
        .unwrap()
        .contains("invalid_token"));
    let r = exchange(&mut before, &register(1, Some(&new_tok), cseq, "TLS", 3600));
    cseq += 1;
    assert_eq!(status(&r), 200, "{r}");
    // A broken reload keeps the running material.
    std::fs::write(lab.dir.join("jwks.json"), "{").unwrap();
    signal(&child, "-HUP");
    // Longer than a control tick: had anything been applied, it would show now.
    std::thread::sleep(Duration::from_millis(1200));
    let r = exchange(&mut before, &register(1, Some(&new_tok), cseq, "TLS", 3600));
    assert_eq!(status(&r), 200, "{r}");
    let mut fresh = tls_connect(oauth, cfg.clone());
    let r = exchange(
        &mut fresh,
        &register(1, Some(&new_tok), cseq + 1, "TLS", 3600),
    );
    assert_eq!(status(&r), 200, "{r}");
    assert_ne!(peer_cert(&fresh), old_cert);

    let started = Instant::now();
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(5)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing"))
        .parse()
        .unwrap()
}

#[test]
fn admin_metrics_healthz_and_bindings() {
    let lab = lab("admin");
    let server = start(&lab, 1, "[admin]\naddr = \"127.0.0.1:0\"\n");
    let admin = server.admin.unwrap();
    assert_eq!(http_get(admin, "/healthz").0, 200);
    let tok = token(&lab, "1001");
    let mut t = tls_connect(
        server.addr(ListenerKind::Oauth).unwrap(),
        client_config(&lab, None),
    );
    assert_eq!(
        status(&exchange(&mut t, &register(1, None, 1, "TLS", 3600))),
        407
    );
    assert_eq!(
        status(&exchange(&mut t, &register(1, Some(&tok), 2, "TLS", 3600))),
        200
    );
    assert_eq!(
        status(&exchange(&mut t, &register(1, Some(&tok), 3, "TLS", 3600))),
        200
    );
    // A refused MRA client shows in the refusals.
    let (cert, key) = lab.m.issue_client("rogue.example.com").unwrap();
    assert_refused(tls_connect(
        server.addr(ListenerKind::Mra).unwrap(),
        client_config(&lab, Some((&cert, &key))),
    ));
    let (code, body) = http_get(admin, "/bindings/sip%3A1001%40127.0.0.1");
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["aor"], "sip:1001@127.0.0.1");
    let list = json["bindings"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["device"], "CSF1");
    assert_eq!(list[0]["listener"], "oauth");
    assert_eq!(
        list[0]["instance"],
        "<urn:uuid:00000000-0000-0000-0000-000000000001>"
    );
    assert!(list[0]["expires_in"].as_u64().unwrap() <= 120);
    // Token counters are published by each core's control task twice a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let (code, m) = http_get(admin, "/metrics");
        assert_eq!(code, 200);
        if metric(&m, "regstorm_token_cache_hits_total") >= 1.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 200);
    assert_eq!(
        metric(&m, "regstorm_registers_total{status=\"200\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(metric(&m, "regstorm_registers_total{status=\"407\"}"), 1.0);
    assert_eq!(metric(&m, "regstorm_bindings"), 1.0);
    assert_eq!(metric(&m, "regstorm_connections{listener=\"oauth\"}"), 1.0);
    assert!(metric(&m, "regstorm_tls_handshakes_total") >= 1.0);
    assert_eq!(metric(&m, "regstorm_token_verifications_total"), 1.0);
    assert_eq!(metric(&m, "regstorm_token_cache_hits_total"), 1.0);
    assert!(metric(&m, "regstorm_bytes_in_total") > 7000.0);
    assert_eq!(
        metric(
            &m,
            "regstorm_connections_refused_total{listener=\"mra\",reason=\"mra_name\"}"
        ),
        1.0,
        "{m}"
    );
    drop(t);
    server.stop();
}

#[test]
fn two_cores_share_one_binding_table() {
    let lab = lab("cores");
    let server = start(&lab, 2, "");
    let addr = server.addr(ListenerKind::Tcp).unwrap();
    let tok = token(&lab, "1001");
    let mut owner = tcp_connect(addr);
    let r = exchange(&mut owner, &register(1, Some(&tok), 1, "TCP", 3600));
    assert_eq!(status(&r), 200, "{r}");
    // Connections spread over both cores by SO_REUSEPORT; each must see the binding.
    let fetch = without_header(&register(1, Some(&tok), 2, "TCP", 3600), "Contact");
    for _ in 0..16 {
        let mut other = tcp_connect(addr);
        let r = exchange(&mut other, &fetch);
        assert_eq!(status(&r), 200, "{r}");
        assert_eq!(contacts(&r), 1, "{r}");
    }
    drop(owner);
    server.stop();
}

#[test]
fn idle_and_handshake_deadlines_close_connections() {
    let lab = lab("idle");
    // Deadlines of a second need expiries as short (the configuration checks idle >= max).
    let path = write_config(
        &lab,
        1,
        "[limits]\nidle_timeout_s = 1\nhandshake_timeout_s = 1\n",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("cores = 1", "cores = 1\nmin_expires = 1\nmax_expires = 1");
    std::fs::write(&path, text).unwrap();
    let server = Server::start(Config::load(&path).unwrap()).unwrap();
    // A TLS client that never says hello: closed after the handshake time.
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr(ListenerKind::Oauth).unwrap()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = silent.read_to_end(&mut got);
    // Nothing, or one TLS alert record (content type 21), then the close.
    assert!(
        got.is_empty() || (got[0] == 21 && got.len() == 7),
        "{got:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // A TLS session gone quiet: closed after the idle time, with a close_notify, and its
    // binding goes with it.
    let tok = token(&lab, "1001");
    let mut s = tls_connect(
        server.addr(ListenerKind::Oauth).unwrap(),
        client_config(&lab, None),
    );
    assert_eq!(
        status(&exchange(&mut s, &register(1, Some(&tok), 1, "TLS", 3600))),
        200
    );
    let started = Instant::now();
    let mut rest = Vec::new();
    let end = s.read_to_end(&mut rest);
    assert!(end.is_ok(), "expected a clean close_notify: {end:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    server.stop();
}

#[test]
fn an_address_that_cannot_be_bound_is_a_configuration_error() {
    let lab = lab("bind");
    let path = write_config(&lab, 1, "");
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine.
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "kind = \"tcp\"\naddr = \"127.0.0.1:0\"",
        "kind = \"tcp\"\naddr = \"192.0.2.1:5060\"",
        1,
    );
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("listener[2].addr") && last.contains("192.0.2.1:5060"),
        "{err}"
    );
}
