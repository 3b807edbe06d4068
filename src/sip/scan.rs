//! Byte classes and the small scanning primitives every SIP grammar rule is built from.
//!
//! Tables are `[bool; 256]` built in `const fn`s, so a class test is one load. Inside a header
//! value, CR and LF can only appear as part of a fold (the message parser rejects any other
//! CR or LF), so the value-level rules treat them as linear white space (RFC 3261 §7.3.1).

const fn class(chars: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    if alnum {
        let mut c = b'0';
        while c <= b'9' {
            t[c as usize] = true;
            c += 1;
        }
        let mut c = b'a';
        while c <= b'z' {
            t[c as usize] = true;
            t[(c - 32) as usize] = true;
            c += 1;
        }
    }
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    t
}

/// RFC 3261 §25.1 `token`: alphanum and `-.!%*_+`'~`.
pub(crate) static TOKEN: [bool; 256] = class(b"-.!%*_+`'~", true);

/// Call-ID characters: RFC 3261 `word` (token plus `()<>:\\"/[]?{}`) and the `@` of
/// `word ["@" word]`.
pub(crate) static CALL_ID: [bool; 256] = class(b"-.!%*_+`'~()<>:\\\"/[]?{}@", true);

/// Characters of a generic parameter value that is not quoted: `token / host`, where a host
/// may be an IPv6 reference (RFC 3261 `gen-value`; RFC 5118 §4.5 lets `received` carry one
/// with or without brackets).
pub(crate) static PARAM_VALUE: [bool; 256] = class(b"-.!%*_+`'~:[]", true);

/// SIP-URI `user` characters: unreserved, user-unreserved, and `%` for escapes.
pub(crate) static URI_USER: [bool; 256] = class(b"-_.!~*'()&=+$,;?/%", true);

/// SIP-URI `password` characters: unreserved, `&=+$,` and `%`.
pub(crate) static URI_PASSWORD: [bool; 256] = class(b"-_.!~*'()&=+$,%", true);

/// SIP-URI `paramchar`: unreserved, param-unreserved `[]/:&+$` and `%`.
pub(crate) static URI_PARAM: [bool; 256] = class(b"-_.!~*'()[]/:&+$%", true);

/// SIP-URI header characters (`hname`/`hvalue`): unreserved, `[]/?:+$` and `%`.
pub(crate) static URI_HEADER: [bool; 256] = class(b"-_.!~*'()[]/?:+$%", true);

/// Host name characters (RFC 3261 `hostname`) plus the parts of IPv4 addresses.
pub(crate) static HOST: [bool; 256] = class(b"-.", true);

/// Characters of an IPv6 reference between the brackets (RFC 5118 tolerates odd forms).
pub(crate) static IPV6: [bool; 256] = class(b":.", true);

/// Non-SIP URI characters after the scheme (RFC 3261 `absoluteURI`, RFC 2396 `uric`).
pub(crate) static URIC: [bool; 256] = class(b"-_.!~*'();/?:@&=+$,%#[]", true);

/// RFC 6750 `b64token`: the RFC 8898 `Bearer <token>` form.
pub(crate) static B64TOKEN: [bool; 256] = class(b"-._~+/", true);

#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Index of the first byte at or after `i` that is not linear white space.
#[inline]
pub(crate) fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_lws(s[i]) {
        i += 1;
    }
    i
}

/// `s` without leading and trailing linear white space.
#[inline]
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = skip_lws(s, 0);
    let mut end = s.len();
    while end > start && is_lws(s[end - 1]) {
        end -= 1;
    }
    &s[start..end]
}

/// End of the run of bytes in `table` starting at `i`.
#[inline]
pub(crate) fn span(s: &[u8], i: usize, table: &[bool; 256]) -> usize {
    let Some(rest) = s.get(i..) else { return i };
    let mut k = 0;
    // Four bytes per branch while the run lasts; the byte loop finds the exact end.
    while let Some(&[a, b, c, d]) = rest.get(k..k + 4) {
        if !(table[a as usize] & table[b as usize] & table[c as usize] & table[d as usize]) {
            break;
        }
        k += 4;
    }
    while k < rest.len() && table[rest[k] as usize] {
        k += 1;
    }
    i + k
}

/// True when `s` is non-empty and every byte is in `table`.
#[inline]
pub(crate) fn all_in(s: &[u8], table: &[bool; 256]) -> bool {
    !s.is_empty() && s.iter().all(|&b| table[b as usize])
}

/// End (exclusive, after the closing quote) of the quoted string that opens at `s[i] == '"'`,
/// honouring `\` quoted-pairs (RFC 3261 §25.1). `None` when it never closes.
pub(crate) fn quoted_end(s: &[u8], i: usize) -> Option<usize> {
    debug_assert_eq!(s.get(i), Some(&b'"'));
    let mut j = i + 1;
    loop {
        let k = j + memchr::memchr2(b'"', b'\\', s.get(j..)?)?;
        if s[k] == b'\\' {
            // A quoted-pair escapes any octet but CR and LF.
            match s.get(k + 1) {
                Some(b'\r' | b'\n') | None => return None,
                Some(_) => j = k + 2,
            }
        } else {
            return Some(k + 1);
        }
    }
}

/// The value of a decimal digit string, `None` when it is empty, holds a non-digit or exceeds
/// `max`. Leading zeros are allowed (RFC 4475 §3.1.1.1 "0009").
pub(crate) fn parse_decimal(s: &[u8], max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// The octet a `%HH` escape with these two digits stands for.
#[inline]
pub(crate) fn decode_hex_pair(h: u8, l: u8) -> Option<u8> {
    Some(hex_val(h)? << 4 | hex_val(l)?)
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// True when every `%` in `s` starts a well-formed `%HH` escape.
pub(crate) fn escapes_ok(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'%', &s[i..]) {
        let p = i + k;
        match (s.get(p + 1), s.get(p + 2)) {
            (Some(&a), Some(&b)) if hex_val(a).is_some() && hex_val(b).is_some() => i = p + 3,
            _ => return false,
        }
    }
    true
}

/// Appends `s` with every `%HH` escape decoded exactly once. Malformed escapes are copied
/// as they are (callers validate with [`escapes_ok`] first where it matters).
pub(crate) fn unescape_into(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'%', &s[i..]) {
        let p = i + k;
        out.extend_from_slice(&s[i..p]);
        match (
            s.get(p + 1).copied().and_then(hex_val),
            s.get(p + 2).copied().and_then(hex_val),
        ) {
            (Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i = p + 3;
            }
            _ => {
                out.push(b'%');
                i = p + 1;
            }
        }
    }
    out.extend_from_slice(&s[i..]);
}

/// Appends the decimal digits of `v`.
#[inline]
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_close_on_the_first_unescaped_quote() {
        let s = br#""J Rosenberg \\\""  <sip:x>"#;
        assert_eq!(quoted_end(s, 0), Some(18));
        assert_eq!(quoted_end(br#""open"#, 0), None);
        assert_eq!(quoted_end(b"\"a\\", 0), None);
    }

    #[test]
    fn decimals_reject_overflow_and_junk() {
        assert_eq!(parse_decimal(b"0009", 10), Some(9));
        assert_eq!(parse_decimal(b"4294967296", u64::from(u32::MAX)), None);
        assert_eq!(parse_decimal(b"-1", 10), None);
        assert_eq!(parse_decimal(b"", 10), None);
    }

    #[test]
    fn escapes_decode_exactly_once() {
        let mut out = Vec::new();
        unescape_into(b"v%61lue%25%34%31", &mut out);
        assert_eq!(out, b"value%41");
        assert_eq!(decode_hex_pair(b'3', b'b'), Some(b';'));
        assert!(!escapes_ok(b"%Z1"));
        assert!(escapes_ok(b"a%00b"));
    }
}
