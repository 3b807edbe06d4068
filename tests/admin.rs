//! The admin endpoints without sockets: every route and error of CONTRACT "Admin endpoints",
//! HTTP framing (partial input, pipelining, limits, persistence), and the metrics text read
//! back line by line.

use regstorm::admin::{
    handle_request, AdminView, CloseCause, Handled, Metrics, Refusal, MAX_HEAD, MAX_REQUEST,
};
use regstorm::config::ListenerKind;
use regstorm::registrar::BindingInfo;
use regstorm::sip::Aor;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A registrar as the admin code sees it: one AOR with a binding, metrics, a serving flag.
struct FakeView {
    serving: bool,
    metrics: Arc<Metrics>,
    bindings: u64,
    /// Every AOR asked for, to check the canonical form reaches the table.
    asked: RefCell<Vec<String>>,
}

impl FakeView {
    fn new() -> Self {
        FakeView {
            serving: true,
            metrics: Arc::new(Metrics::new(2)),
            bindings: 1,
            asked: RefCell::new(Vec::new()),
        }
    }
}

fn jabber_binding() -> BindingInfo {
    BindingInfo {
        contact: "<sip:1010@192.0.2.7:51234;transport=tls>".into(),
        instance: Some("\"<urn:uuid:00000000-0000-0000-0000-000000001010>\"".into()),
        device: Some("CSFrado".into()),
        expires_in: 117,
        listener: "oauth",
        path: None,
    }
}

impl AdminView for FakeView {
    fn serving(&self) -> bool {
        self.serving
    }

    fn bindings(&self, aor: &Aor) -> Vec<BindingInfo> {
        self.asked.borrow_mut().push(aor.as_str().to_owned());
        if aor.as_str() == "sip:1010@10.10.10.1" {
            vec![jabber_binding()]
        } else {
            Vec::new()
        }
    }

    fn render_metrics(&self, out: &mut Vec<u8>) {
        self.metrics.render(self.bindings, out);
    }
}

/// A response read back with httparse, Content-Length honoured.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// Parses one response off the front of `bytes`; returns it and the bytes it took.
fn read_response(bytes: &[u8]) -> (Response, usize) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(bytes).expect("well-formed response") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("truncated response: {bytes:?}"),
    };
    assert_eq!(resp.version, Some(1), "responses are HTTP/1.1");
    let mut map = BTreeMap::new();
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap().to_owned();
        let old = map.insert(h.name.to_ascii_lowercase(), value);
        assert!(old.is_none(), "header {} twice", h.name);
    }
    let len: usize = map
        .get("content-length")
        .expect("Content-Length is always set")
        .parse()
        .unwrap();
    let body = bytes[head..head + len].to_vec();
    let status = resp.code.unwrap();
    (
        Response {
            status,
            headers: map,
            body,
        },
        head + len,
    )
}

/// Handles one request that must be answered, checking the whole response was written.
fn ask_with(view: &FakeView, request: &[u8]) -> (Response, Handled) {
    let mut out = Vec::new();
    let handled = handle_request(request, view, &mut out);
    assert_ne!(
        handled,
        Handled::Partial,
        "{:?}",
        String::from_utf8_lossy(request)
    );
    let (resp, used) = read_response(&out);
    assert_eq!(used, out.len(), "exactly one response written");
    (resp, handled)
}

fn ask(request: &str) -> (Response, Handled) {
    ask_with(&FakeView::new(), request.as_bytes())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: admin\r\nUser-Agent: test\r\n\r\n")
}

/// Answered, keeping the connection, having read the whole request.
fn kept(request: &str) -> Handled {
    Handled::Answered {
        consumed: request.len(),
        close: false,
    }
}

fn closed(handled: Handled) -> bool {
    matches!(handled, Handled::Answered { close: true, .. })
}

// ---------------------------------------------------------------------------------------------
// Routes

#[test]
fn metrics_answers_the_prometheus_text_format() {
    let req = get("/metrics");
    let (resp, handled) = ask(&req);
    assert_eq!(handled, kept(&req));
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(
        resp.header("connection"),
        None,
        "HTTP/1.1 persists by default"
    );
    let samples = parse_exposition(resp.text());
    assert_eq!(value(&samples, "regstorm_bindings", &[]), 1);
}

#[test]
fn healthz_is_200_while_serving_and_503_otherwise() {
    let req = get("/healthz");
    let (resp, handled) = ask(&req);
    assert_eq!((resp.status, resp.text()), (200, "ok\n"));
    assert_eq!(handled, kept(&req));

    let mut view = FakeView::new();
    view.serving = false;
    let (resp, handled) = ask_with(&view, req.as_bytes());
    assert_eq!(resp.status, 503);
    assert_eq!(handled, kept(&req), "503 keeps the connection");
}

fn bindings_json(resp: &Response) -> serde_json::Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    serde_json::from_slice(&resp.body).expect("JSON body")
}

#[test]
fn bindings_lists_an_aor_given_as_a_sip_uri() {
    let view = FakeView::new();
    let (resp, _) = ask_with(&view, get("/bindings/sip:1010@10.10.10.1").as_bytes());
    let json = bindings_json(&resp);
    assert_eq!(
        json,
        serde_json::json!({
            "aor": "sip:1010@10.10.10.1",
            "bindings": [{
                "contact": "<sip:1010@192.0.2.7:51234;transport=tls>",
                "instance": "\"<urn:uuid:00000000-0000-0000-0000-000000001010>\"",
                "device": "CSFrado",
                "expires_in": 117,
                "listener": "oauth",
                "path": null,
            }],
        })
    );
    assert_eq!(*view.asked.borrow(), ["sip:1010@10.10.10.1"]);
}

#[test]
fn bindings_accepts_percent_encoding() {
    for path in [
        "/bindings/sip%3A1010%4010.10.10.1",
        "/bindings/sip%3a1010%4010.10.10.1",
        "/bindings/%73%69%70%3A%31%30%31%30%40%31%30.10.10.1",
        "/bindings/sip:1010@10.10.10.1?ignored=query",
    ] {
        let (resp, _) = ask(&get(path));
        let json = bindings_json(&resp);
        assert_eq!(json["aor"], "sip:1010@10.10.10.1", "{path}");
        assert_eq!(json["bindings"].as_array().unwrap().len(), 1, "{path}");
    }
}

#[test]
fn bindings_uses_the_canonical_aor() {
    let view = FakeView::new();
    // Scheme and host case, URI parameters and an escaped unreserved user character all fold.
    let path = "/bindings/SIP:%31010@10.10.10.1;transport=tls";
    let (resp, _) = ask_with(&view, get(path).as_bytes());
    assert_eq!(bindings_json(&resp)["aor"], "sip:1010@10.10.10.1");

    let (resp, _) = ask_with(
        &view,
        get("/bindings/sips:Alice@Example.COM:5061").as_bytes(),
    );
    assert_eq!(bindings_json(&resp)["aor"], "sips:Alice@example.com:5061");
    assert_eq!(
        *view.asked.borrow(),
        ["sip:1010@10.10.10.1", "sips:Alice@example.com:5061"]
    );
}

#[test]
fn bindings_of_an_unknown_aor_is_an_empty_list() {
    let (resp, _) = ask(&get("/bindings/sip:2020@10.10.10.1"));
    assert_eq!(
        bindings_json(&resp),
        serde_json::json!({"aor": "sip:2020@10.10.10.1", "bindings": []})
    );
}

#[test]
fn bindings_of_something_that_is_not_a_sip_uri_is_400() {
    for path in [
        "/bindings/",
        "/bindings/1010@10.10.10.1",
        "/bindings/tel:+15551234",
        "/bindings/sip:",
        "/bindings/sip:1010@",
        "/bindings/sip%3",
        "/bindings/sip%3A1010%4",
        "/bindings/sip%zz1010@10.10.10.1",
        "/bindings/sip%3A1010%40bad%20host",
    ] {
        let req = get(path);
        let view = FakeView::new();
        let (resp, handled) = ask_with(&view, req.as_bytes());
        assert_eq!(resp.status, 400, "{path}");
        assert_eq!(
            handled,
            kept(&req),
            "{path}: framing intact, connection kept"
        );
        assert!(view.asked.borrow().is_empty(), "{path}");
    }
}

#[test]
fn unknown_paths_are_404() {
    for path in [
        "/",
        "/metricsx",
        "/metrics/",
        "/bindings",
        "/healthz/x",
        "/Metrics",
    ] {
        let req = get(path);
        let (resp, handled) = ask(&req);
        assert_eq!(resp.status, 404, "{path}");
        assert_eq!(handled, kept(&req));
    }
    // Unknown wins over method: there is no resource to allow anything on.
    let (resp, _) = ask("POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(resp.status, 404);
}

#[test]
fn absolute_form_targets_are_routed() {
    let (resp, _) = ask(&get("http://127.0.0.1:9090/healthz"));
    assert_eq!(resp.status, 200);
    let (resp, _) = ask(&get("HTTP://admin/bindings/sip%3A1010%4010.10.10.1"));
    assert_eq!(
        bindings_json(&resp)["bindings"].as_array().unwrap().len(),
        1
    );
    let (resp, handled) = ask(&get("ftp://admin/healthz"));
    assert_eq!(resp.status, 400);
    assert!(!closed(handled));
}

#[test]
fn other_methods_are_405_with_allow_get() {
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"] {
        for path in ["/metrics", "/healthz", "/bindings/sip:1010@10.10.10.1"] {
            let req = format!("{method} {path} HTTP/1.1\r\nHost: a\r\n\r\n");
            let (resp, handled) = ask(&req);
            assert_eq!(resp.status, 405, "{method} {path}");
            assert_eq!(resp.header("allow"), Some("GET"));
            assert_eq!(handled, kept(&req));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP errors and limits

#[test]
fn malformed_http_is_400_and_closes() {
    for req in [
        "GET /metrics HTTP/1.1\r\nHost a\r\n\r\n",
        "GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /met rics HTTP/1.1\r\nHost: a\r\n\r\n",
        "G(T /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHo st: a\r\n\r\n",
    ] {
        let (resp, handled) = ask(req);
        assert_eq!(resp.status, 400, "{req:?}");
        assert_eq!(resp.header("connection"), Some("close"), "{req:?}");
        assert!(closed(handled), "{req:?}");
    }
    // A TLS ClientHello sent to the plaintext port.
    let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let (resp, handled) = ask_with(&FakeView::new(), hello);
    assert_eq!(resp.status, 400);
    assert!(closed(handled));
}

#[test]
fn bad_content_length_is_400_and_closes() {
    for cl in [
        "Content-Length: x",
        "Content-Length: -1",
        "Content-Length: 1, 1",
        "Content-Length: 2\r\nContent-Length: 3",
    ] {
        let req = format!("GET /metrics HTTP/1.1\r\nHost: a\r\n{cl}\r\n\r\nabc");
        let (resp, handled) = ask(&req);
        assert_eq!(resp.status, 400, "{cl}");
        assert!(closed(handled), "{cl}");
    }
    // Repeated equal values are one length (RFC 9110 §8.6).
    let req =
        "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
    let (resp, handled) = ask(req);
    assert_eq!(resp.status, 200);
    assert_eq!(handled, kept(req));
}

#[test]
fn transfer_codings_are_501_and_close() {
    let req = "POST /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let (resp, handled) = ask(req);
    assert_eq!(resp.status, 501);
    assert!(closed(handled));
}

#[test]
fn http11_needs_exactly_one_host() {
    let req = "GET /healthz HTTP/1.1\r\n\r\n";
    let (resp, handled) = ask(req);
    assert_eq!(resp.status, 400);
    assert_eq!(handled, kept(req), "framing is intact");
    let (resp, _) = ask("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(resp.status, 400);
    let (resp, _) = ask("GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200, "HTTP/1.0 has no Host requirement");
}

#[test]
fn a_head_over_8_kib_is_431_and_closes() {
    // Complete but too long.
    let long = format!(
        "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(MAX_HEAD)
    );
    let (resp, handled) = ask(&long);
    assert_eq!(resp.status, 431);
    assert!(closed(handled));

    // Still incomplete at the limit: answered without waiting for the rest.
    let unfinished = &long.as_bytes()[..MAX_HEAD];
    let (resp, handled) = ask_with(&FakeView::new(), unfinished);
    assert_eq!(resp.status, 431);
    assert!(closed(handled));
    let mut out = Vec::new();
    let one_short = &long.as_bytes()[..MAX_HEAD - 1];
    assert_eq!(
        handle_request(one_short, &FakeView::new(), &mut out),
        Handled::Partial
    );
    assert!(out.is_empty());

    // Just inside the limit: served.
    let base = "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n".len();
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(MAX_HEAD - base)
    );
    assert_eq!(fits.len(), MAX_HEAD);
    let (resp, handled) = ask(&fits);
    assert_eq!(resp.status, 200);
    assert_eq!(handled, kept(&fits));
}

#[test]
fn too_many_header_lines_is_431() {
    let mut req = String::from("GET /metrics HTTP/1.1\r\nHost: a\r\n");
    for i in 0..40 {
        req.push_str(&format!("X-{i}: {i}\r\n"));
    }
    req.push_str("\r\n");
    let (resp, handled) = ask(&req);
    assert_eq!(resp.status, 431);
    assert!(closed(handled));
}

#[test]
fn small_bodies_are_skipped_large_ones_413() {
    let req = "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    let mut out = Vec::new();
    let view = FakeView::new();
    assert_eq!(
        handle_request(&req.as_bytes()[..req.len() - 1], &view, &mut out),
        Handled::Partial,
        "waits for the body"
    );
    assert!(out.is_empty());
    let (resp, handled) = ask(req);
    assert_eq!(resp.status, 405);
    assert_eq!(handled, kept(req), "the body is consumed");

    let req = "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n";
    let (resp, handled) = ask(req);
    assert_eq!(resp.status, 413);
    assert!(closed(handled));
}

// ---------------------------------------------------------------------------------------------
// Persistence, pipelining, partial input

#[test]
fn connection_close_is_honoured() {
    for (req, close, header) in [
        ("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", false, None),
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            true,
            Some("close"),
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n",
            true,
            Some("close"),
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: TE, close\r\n\r\n",
            true,
            Some("close"),
        ),
        ("GET /healthz HTTP/1.0\r\n\r\n", true, Some("close")),
        (
            "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            false,
            Some("keep-alive"),
        ),
        (
            "GET /nowhere HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            true,
            Some("close"),
        ),
    ] {
        let (resp, handled) = ask(req);
        assert_eq!(
            handled,
            Handled::Answered {
                consumed: req.len(),
                close
            },
            "{req:?}"
        );
        assert_eq!(resp.header("connection"), header, "{req:?}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let reqs = [
        get("/healthz"),
        "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc".to_owned(),
        get("/bindings/sip%3A1010%4010.10.10.1"),
        get("/nowhere"),
        get("/metrics"),
    ];
    let mut buf: Vec<u8> = reqs.concat().into_bytes();
    // And the start of one more.
    buf.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHo");
    let view = FakeView::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut answers = 0;
    loop {
        match handle_request(&buf[pos..], &view, &mut out) {
            Handled::Partial => break,
            Handled::Answered { consumed, close } => {
                assert!(!close);
                assert_eq!(consumed, reqs[answers].len());
                pos += consumed;
                answers += 1;
            }
        }
    }
    assert_eq!(answers, reqs.len());
    assert_eq!(&buf[pos..], b"GET /healthz HTTP/1.1\r\nHo");

    let mut statuses = Vec::new();
    let mut at = 0;
    while at < out.len() {
        let (resp, used) = read_response(&out[at..]);
        statuses.push(resp.status);
        at += used;
    }
    assert_eq!(statuses, [200, 405, 200, 404, 200]);
}

#[test]
fn pipelining_stops_at_connection_close() {
    let buf = [
        "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_owned(),
        get("/metrics"),
    ]
    .concat();
    let mut out = Vec::new();
    let handled = handle_request(buf.as_bytes(), &FakeView::new(), &mut out);
    assert_eq!(
        handled,
        Handled::Answered {
            consumed: buf.len() - get("/metrics").len(),
            close: true
        }
    );
}

#[test]
fn every_split_point_is_partial_until_the_last_byte() {
    let req = "GET /bindings/sip%3A1010%4010.10.10.1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    let view = FakeView::new();
    for end in 0..req.len() {
        let mut out = Vec::new();
        assert_eq!(
            handle_request(&req.as_bytes()[..end], &view, &mut out),
            Handled::Partial,
            "{end} bytes"
        );
        assert!(out.is_empty(), "nothing written at {end}");
    }
    assert!(view.asked.borrow().is_empty());
    let (resp, handled) = ask(req);
    assert_eq!(resp.status, 200);
    assert_eq!(handled, kept(req));
}

#[test]
fn leading_empty_lines_are_ignored() {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
    let req = format!("\r\n{}", get("/healthz"));
    let (resp, handled) = ask(&req);
    assert_eq!(resp.status, 200);
    assert_eq!(handled, kept(&req));
}

#[test]
fn a_full_read_buffer_never_waits() {
    // MAX_REQUEST bytes of one unfinished request are always answered.
    let head = "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 8192\r\n\r\n";
    let mut buf = head.as_bytes().to_vec();
    buf.resize(MAX_REQUEST, b'x');
    let mut out = Vec::new();
    assert_ne!(
        handle_request(&buf, &FakeView::new(), &mut out),
        Handled::Partial
    );
    let junk = vec![b'a'; MAX_REQUEST];
    assert!(closed(handle_request(
        &junk,
        &FakeView::new(),
        &mut Vec::new()
    )));
}

// ---------------------------------------------------------------------------------------------
// Metrics

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: u64,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Reads `name="value",...` up to the closing brace; returns the labels and the rest.
fn parse_labels(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return (labels, rest);
        }
        if !labels.is_empty() {
            s = s.strip_prefix(',').expect("labels separated by commas");
        }
        let eq = s.find('=').expect("label =");
        let name = &s[..eq];
        assert!(
            is_metric_name(name) && !name.contains(':'),
            "label name {name:?}"
        );
        s = s[eq + 1..].strip_prefix('"').expect("quoted label value");
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next().expect("unterminated label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => panic!("bad escape \\{c}"),
                },
                (_, '\n') => panic!("raw line feed in a label value"),
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        s = &s[end + 1..];
    }
}

/// Reads the text format 0.0.4 back, asserting its rules: every line a comment or a sample
/// `name{labels} value`, HELP then TYPE before a family's samples, each family once, counters
/// ending `_total`, every name starting `regstorm_`, no duplicate series.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the last line ends with a line feed");
    let mut help = HashSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut series = HashSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect("HELP name text");
            assert!(!doc.is_empty(), "{name} has help text");
            assert!(help.insert(name.to_owned()), "{name}: HELP once");
            assert!(!types.contains_key(name), "{name}: HELP before TYPE");
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(help.contains(name), "{name}: HELP before TYPE");
            assert!(matches!(kind, "counter" | "gauge"), "{name}: {kind}");
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name}: counters and only counters end _total"
            );
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
            current = Some(name.to_owned());
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let name_end = line.find(['{', ' ']).expect("a sample");
            let name = &line[..name_end];
            assert!(is_metric_name(name), "{name:?}");
            assert!(name.starts_with("regstorm_"), "{name}");
            assert_eq!(
                current.as_deref(),
                Some(name),
                "{name}: sample under its TYPE"
            );
            let (labels, rest) = match line[name_end..].strip_prefix('{') {
                Some(l) => parse_labels(l),
                None => (Vec::new(), &line[name_end..]),
            };
            let value = rest.strip_prefix(' ').expect("one space before the value");
            // Counters are integers; gauges in seconds may carry a fraction.
            let value: u64 = match value.parse() {
                Ok(v) => v,
                Err(_) => value
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("{line:?}: value"))
                    .round() as u64,
            };
            assert!(
                series.insert(format!("{name}{labels:?}")),
                "{line}: series twice"
            );
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
    }
    for name in &help {
        assert!(types.contains_key(name), "{name}: TYPE follows HELP");
        assert!(
            samples.iter().any(|s| &s.name == name),
            "{name}: at least one sample"
        );
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> u64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
        .value
}

fn render(metrics: &Metrics, bindings: u64) -> Vec<Sample> {
    let mut out = Vec::new();
    metrics.render(bindings, &mut out);
    parse_exposition(std::str::from_utf8(&out).unwrap())
}

#[test]
fn the_contract_names_are_all_there_at_zero() {
    let samples = render(&Metrics::new(1), 0);
    for (name, labels) in [
        ("regstorm_registers_total", &[("status", "200")][..]),
        ("regstorm_registers_total", &[("status", "other")]),
        ("regstorm_bindings", &[]),
        ("regstorm_connections", &[("listener", "oauth")]),
        ("regstorm_connections", &[("listener", "udp")]),
        ("regstorm_connections_total", &[("listener", "mra")]),
        (
            "regstorm_connections_refused_total",
            &[("listener", "mra"), ("reason", "mra_name")],
        ),
        ("regstorm_tls_handshakes_total", &[]),
        ("regstorm_tls_handshake_failures_total", &[]),
        ("regstorm_token_cache_hits_total", &[]),
        ("regstorm_token_cache_misses_total", &[]),
        ("regstorm_token_verifications_total", &[]),
        ("regstorm_token_cache_entries", &[]),
        ("regstorm_bytes_in_total", &[]),
        ("regstorm_bytes_out_total", &[]),
        ("regstorm_overload_rejections_total", &[]),
        ("regstorm_reloads_total", &[]),
        ("regstorm_other_requests_total", &[("status", "405")]),
    ] {
        assert_eq!(value(&samples, name, labels), 0, "{name}{labels:?}");
    }
    for status in [
        200, 400, 401, 403, 404, 405, 407, 416, 420, 423, 500, 501, 503, 505,
    ] {
        let status = status.to_string();
        value(&samples, "regstorm_registers_total", &[("status", &status)]);
    }
}

#[test]
fn counters_are_summed_across_cores() {
    const N: u64 = 10_000;
    let metrics = Arc::new(Metrics::new(2));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let metrics = Arc::clone(&metrics);
            std::thread::spawn(move || {
                let core = metrics.core(i);
                for n in 0..N {
                    core.register_answered(if n % 2 == 0 { 200 } else { 407 });
                    core.bytes_in(3);
                    core.connection_opened(ListenerKind::Oauth);
                    if n % 4 != 0 {
                        core.connection_closed(ListenerKind::Oauth, CloseCause::PeerClosed);
                    }
                }
                core.register_answered(299);
                core.other_answered(200);
                core.other_answered(501);
                core.bytes_out(100);
                core.connection_opened(ListenerKind::Mra);
                core.connection_refused(ListenerKind::Mra, Refusal::MraName);
                core.connection_refused(ListenerKind::Oauth, Refusal::Limit);
                core.connection_refused(ListenerKind::Oauth, Refusal::Tls);
                core.tls_handshake_completed();
                core.tls_handshake_failed();
                core.overload_rejected();
                // Totals from the verifier: the last copy wins, it is not added.
                core.set_token_stats(1, 1, 1);
                core.set_token_stats(100 + i as u64, 10, 5);
                core.set_token_cache_entries(7);
                core.set_token_cache_entries(40);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    metrics.core(0).reloaded();

    let s = render(&metrics, 3);
    let status = |code: &str| value(&s, "regstorm_registers_total", &[("status", code)]);
    assert_eq!(status("200"), N);
    assert_eq!(status("407"), N);
    assert_eq!(status("other"), 2);
    assert_eq!(status("403"), 0);
    let other = |code: &str| value(&s, "regstorm_other_requests_total", &[("status", code)]);
    assert_eq!((other("200"), other("501"), other("405")), (2, 2, 0));
    assert_eq!(value(&s, "regstorm_bytes_in_total", &[]), 6 * N);
    assert_eq!(value(&s, "regstorm_bytes_out_total", &[]), 200);
    let conns = |name: &str, l: &str| value(&s, name, &[("listener", l)]);
    assert_eq!(conns("regstorm_connections_total", "oauth"), 2 * N);
    assert_eq!(conns("regstorm_connections", "oauth"), 2 * (N / 4));
    assert_eq!(conns("regstorm_connections", "mra"), 2);
    assert_eq!(conns("regstorm_connections", "tcp"), 0);
    let refused = |l: &str, r: &str| {
        value(
            &s,
            "regstorm_connections_refused_total",
            &[("listener", l), ("reason", r)],
        )
    };
    assert_eq!(refused("mra", "mra_name"), 2);
    assert_eq!(refused("oauth", "limit"), 2);
    assert_eq!(refused("oauth", "tls"), 2);
    assert_eq!(refused("oauth", "mra_name"), 0);
    assert_eq!(value(&s, "regstorm_tls_handshakes_total", &[]), 2);
    assert_eq!(value(&s, "regstorm_tls_handshake_failures_total", &[]), 2);
    assert_eq!(value(&s, "regstorm_token_cache_hits_total", &[]), 201);
    assert_eq!(value(&s, "regstorm_token_cache_misses_total", &[]), 20);
    assert_eq!(value(&s, "regstorm_token_verifications_total", &[]), 10);
    assert_eq!(value(&s, "regstorm_token_cache_entries", &[]), 80);
    assert_eq!(value(&s, "regstorm_overload_rejections_total", &[]), 2);
    assert_eq!(value(&s, "regstorm_reloads_total", &[]), 1);
    assert_eq!(value(&s, "regstorm_bindings", &[]), 3);
}

#[test]
fn metrics_over_http_match_the_renderer() {
    let view = FakeView::new();
    view.metrics.core(1).register_answered(423);
    let (resp, _) = ask_with(&view, get("/metrics").as_bytes());
    let mut direct = Vec::new();
    view.metrics.render(1, &mut direct);
    assert_eq!(resp.body, direct);
    let s = parse_exposition(resp.text());
    assert_eq!(
        value(&s, "regstorm_registers_total", &[("status", "423")]),
        1
    );
}

#[test]
fn admission_decisions_and_returns_are_summed_over_cores() {
    let metrics = Metrics::new(2);
    for (core, k) in [(0, 1), (1, 10)] {
        metrics
            .core(core)
            .set_admission(&regstorm::registrar::AdmissionStats {
                verify_admitted: 7 * k,
                verify_shed: 5 * k,
                verify_returned: 3 * k,
                verify_shed_again: 2 * k,
                ..Default::default()
            });
    }
    let samples = render(&metrics, 0);
    let got = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    let verify = |outcome| [("class", "verify"), ("outcome", outcome)];
    assert_eq!(got("regstorm_admission_total", &verify("admitted")), 77);
    assert_eq!(got("regstorm_admission_total", &verify("shed")), 55);
    assert_eq!(
        got(
            "regstorm_admission_returns_total",
            &[("outcome", "verified")]
        ),
        33
    );
    assert_eq!(
        got("regstorm_admission_returns_total", &[("outcome", "shed")]),
        22
    );
}
