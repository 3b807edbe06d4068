//! Checks shared by the fuzz targets of `regstorm-fuzz`.

use regstorm::sip::{write_aor, Aor, SipUri};

/// Position of the first CRLF CRLF in `s`.
pub fn find_end_of_head(s: &[u8]) -> Option<usize> {
    s.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A header value as the parser hands it out: no leading or trailing white space, and CR or LF
/// only inside a fold (CR LF followed by SP or HT).
pub fn check_header_value(v: &[u8]) {
    let lws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    if let (Some(&first), Some(&last)) = (v.first(), v.last()) {
        assert!(!lws(first) && !lws(last), "header value not trimmed: {v:?}");
    }
    for (i, &b) in v.iter().enumerate() {
        match b {
            b'\r' => {
                assert_eq!(v.get(i + 1), Some(&b'\n'), "bare CR in a header value: {v:?}");
                assert!(matches!(v.get(i + 2), Some(b' ' | b'\t')), "CRLF without a fold: {v:?}");
            }
            b'\n' => assert_eq!(v[i - 1], b'\r', "bare LF in a header value: {v:?}"),
            _ => {}
        }
    }
}

/// Everything a parsed SIP URI promises, and that its canonical AOR is a fixed point: the AOR
/// string parses again as a SIP URI with no password, parameters or headers, whose AOR is the
/// same string.
pub fn check_sip_uri(u: &SipUri<'_>) -> Aor {
    assert!(u.params.is_empty() || u.params[0] == b';', "params must start with ';': {u:?}");
    let _ = u.param("transport");
    let _ = u.param("lr");
    let _ = u.param("");
    let mut user = Vec::new();
    u.user_unescaped_into(&mut user);
    assert!(u.user_is(&user), "user_is(unescaped user) must hold: {u:?}");

    let aor = Aor::new(u);
    let mut written = Vec::new();
    write_aor(u, &mut written);
    assert_eq!(aor.as_str().as_bytes(), &written[..], "Aor::new and write_aor disagree");
    assert!(!aor.as_str().is_empty(), "empty AOR for {u:?}");
    assert_eq!(aor.as_str().starts_with("sips:"), u.sips);

    let again = SipUri::parse(aor.as_str().as_bytes())
        .unwrap_or_else(|| panic!("AOR {:?} of {u:?} does not parse as a SIP URI", aor.as_str()));
    assert!(again.params.is_empty(), "AOR {:?} has params", aor.as_str());
    assert!(again.headers.is_none(), "AOR {:?} has headers", aor.as_str());
    assert!(again.password.is_none(), "AOR {:?} has a password", aor.as_str());
    assert_eq!(again.sips, u.sips);
    assert_eq!(again.port, u.port, "AOR {:?} lost the port of {u:?}", aor.as_str());
    assert_eq!(again.user.is_some(), u.user.is_some(), "AOR {:?} vs {u:?}", aor.as_str());
    let mut user_again = Vec::new();
    again.user_unescaped_into(&mut user_again);
    assert_eq!(user_again, user, "AOR {:?} changed the user of {u:?}", aor.as_str());
    let aor_again = Aor::new(&again);
    assert_eq!(aor_again, aor, "AOR of {u:?} is not a fixed point");
    aor
}

/// True when the known issue `id` is listed in `REGSTORM_FUZZ_SKIP` (comma-separated): its
/// assertion is then skipped, so that a long run can look past a finding that is already
/// saved under tests/fuzz_regressions/ and not yet fixed. Unset, every assertion is on.
pub fn skipping(id: &str) -> bool {
    static SKIP: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SKIP.get_or_init(|| {
        std::env::var("REGSTORM_FUZZ_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .iter()
    .any(|s| s == id)
}
