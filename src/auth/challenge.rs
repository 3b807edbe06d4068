//! The Bearer challenge (RFC 8898 §2.3; Cisco sends it in Proxy-Authenticate with a 407).

/// Appends `Bearer realm="<realm>"`, with `, error="invalid_token"` when a token was presented
/// and refused (RFC 6750 §3.1). `realm` was checked at configuration time to hold no `"` or `\`.
pub fn write_challenge(out: &mut Vec<u8>, realm: &str, invalid_token: bool) {
    out.extend_from_slice(b"Bearer realm=\"");
    out.extend_from_slice(realm.as_bytes());
    out.push(b'"');
    if invalid_token {
        out.extend_from_slice(b", error=\"invalid_token\"");
    }
}

/// True when `realm` can stand inside a quoted string unescaped.
pub fn realm_is_valid(realm: &str) -> bool {
    !realm.is_empty()
        && realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_forms() {
        let mut out = Vec::new();
        write_challenge(&mut out, "ccmsipline", false);
        assert_eq!(out, br#"Bearer realm="ccmsipline""#);
        out.clear();
        write_challenge(&mut out, "ccmsipline", true);
        assert_eq!(out, br#"Bearer realm="ccmsipline", error="invalid_token""#);
        assert!(!realm_is_valid("a\"b") && realm_is_valid("ccmsipline"));
    }
}
