//! Writes the seed corpora of the fuzz targets (run by scripts/fuzz.sh, not a fuzz target):
//!
//!   seed_corpus <corpus-dir> <conformance-dir>
//!
//! `message/` and `framer/` get the RFC 4475 messages, the RFC 5118 wire messages and the
//! Jabber REGISTER of the seed; `uri/` gets the Request-URI and the From/To/Contact/Path URIs of
//! those messages plus a few hand-written edge cases. Existing files are overwritten; files the
//! fuzzer added are kept.

use regstorm::sip::{parse, ContactValue, StartLine, Status, EMPTY_HEADER};
use std::path::{Path, PathBuf};
use std::{env, fs, process};

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} <corpus-dir> <conformance-dir>", args[0]);
        process::exit(2);
    }
    let corpus = PathBuf::from(&args[1]);
    let conformance = PathBuf::from(&args[2]);

    let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
    for (dir, prefix) in [("rfc4475", "rfc4475"), ("rfc5118/wire", "rfc5118")] {
        let dir = conformance.join(dir);
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sip"))
            .collect();
        files.sort();
        for p in files {
            let stem = p.file_stem().expect("a file name").to_string_lossy().into_owned();
            messages.push((format!("{prefix}-{stem}.sip"), fs::read(&p).expect("readable")));
        }
    }
    let register = regstorm::load::jabber::seed_register(regstorm::load::jabber::SAMPLE_TOKEN);
    messages.push(("jabber-register.sip".into(), register));

    for target in ["message", "framer"] {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in &messages {
            write(&dir, name, bytes);
        }
    }

    let dir = corpus.join("uri");
    fs::create_dir_all(&dir).expect("corpus dir");
    let mut uris: Vec<Vec<u8>> = [
        "sip:alice@example.com",
        "SIPS:%61lice:secret@Example.COM:5061;transport=tls;lr?subject=x&priority=urgent",
        "sip:[2001:db8::10]:5070;maddr=[2001:db8::1]",
        "sip:[2001:db8:::192.0.2.1]",
        "sip:user;par=u%40example.net@example.com",
        "sip:null-%00-null@192.0.2.1:0005060",
        "tel:+1-972-555-2222;phone-context=example.com",
        "urn:uuid:00000000-0000-0000-0000-882323451234",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for (_, bytes) in &messages {
        collect_uris(bytes, &mut uris);
    }
    uris.sort();
    uris.dedup();
    for (i, u) in uris.iter().enumerate() {
        write(&dir, &format!("seed-{i:03}.uri"), u);
    }
    println!(
        "seeded {} messages into {c}/{{message,framer}} and {} URIs into {c}/uri",
        messages.len(),
        uris.len(),
        c = corpus.display()
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

fn collect_uris(bytes: &[u8], out: &mut Vec<Vec<u8>>) {
    let mut headers = [EMPTY_HEADER; 64];
    let Ok(Status::Complete(msg)) = parse(bytes, &mut headers) else { return };
    if let StartLine::Request { uri, .. } = msg.start {
        out.push(uri.as_bytes().to_vec());
    }
    for a in [msg.from(), msg.to()].into_iter().flatten() {
        out.push(a.uri.to_vec());
    }
    for c in msg.contacts().map_while(Result::ok) {
        if let ContactValue::Addr(c) = c {
            out.push(c.addr.uri.to_vec());
        }
    }
    for p in msg.paths().map_while(Result::ok) {
        out.push(p.uri.to_vec());
    }
}
