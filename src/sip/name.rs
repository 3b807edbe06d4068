//! Header names: one table of the names regstorm reads or writes, with the compact forms of
//! RFC 3261 §7.3.3 and RFC 3265/3515; every other name is kept as `Other`.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident = $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. Comparison is case-insensitive on the wire; compact forms map
        /// to their full names.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName<'b> {
            $( #[doc = $canon] $variant, )*
            /// A name regstorm has no use for, as it appears on the wire.
            Other(&'b str),
        }

        /// The known names without payload: their discriminants are the dense indices.
        #[derive(Clone, Copy)]
        #[repr(u8)]
        enum Known { $( $variant, )* }

        /// How many known names there are: the size of a per-message index by name.
        pub(crate) const KNOWN_NAMES: usize = [$( stringify!($variant) ),*].len();

        const CANONICAL: [&str; KNOWN_NAMES] = [$( $canon ),*];
        const VARIANTS: [HeaderName<'static>; KNOWN_NAMES] = [$( HeaderName::$variant ),*];

        impl<'b> HeaderName<'b> {
            /// The canonical spelling, used when writing.
            pub fn as_str(&self) -> &'b str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }

            /// Dense index of a known name, `None` for `Other`.
            #[inline]
            pub(crate) fn index(&self) -> Option<usize> {
                match self {
                    $( HeaderName::$variant => Some(Known::$variant as usize), )*
                    HeaderName::Other(_) => None,
                }
            }

            fn from_compact(c: u8) -> Option<Self> {
                match c.to_ascii_lowercase() {
                    $( $( $compact => Some(HeaderName::$variant), )? )*
                    _ => None,
                }
            }
        }
    };
}

/// A perfect hash of the known full names (length, first, second and last byte, case folded):
/// one table probe and one comparison decide whether a name is known. The table is built at
/// compile time, and a collision between two known names fails the build.
const fn name_hash(n: &[u8]) -> usize {
    let (first, second, last) = (
        (n[0] | 0x20) as u32,
        (n[1] | 0x20) as u32,
        (n[n.len() - 1] | 0x20) as u32,
    );
    ((n.len() as u32 + first * 14 + last + second * 2) & 127) as usize
}

const BY_HASH: [u8; 128] = {
    let mut t = [0xFFu8; 128];
    let mut i = 0;
    while i < KNOWN_NAMES {
        let h = name_hash(CANONICAL[i].as_bytes());
        assert!(
            t[h] == 0xFF,
            "two known header names share a hash: change name_hash"
        );
        t[h] = i as u8;
        i += 1;
    }
    t
};

/// Case-insensitive equality of a canonical name (letters and `-`) with a token of the same
/// length: OR-ing 0x20 folds letters, and no other token byte folds onto a letter or `-`.
#[inline]
fn eq_fold(canon: &[u8], name: &[u8]) -> bool {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let word =
        |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) | FOLD;
    let mut a = canon.chunks_exact(8);
    let mut b = name.chunks_exact(8);
    (&mut a).zip(&mut b).all(|(x, y)| word(x) == word(y))
        && a.remainder()
            .iter()
            .zip(b.remainder())
            .all(|(&x, &y)| x | 0x20 == y | 0x20)
}

impl HeaderName<'_> {
    #[inline]
    fn from_full(name: &[u8]) -> Option<Self> {
        let i = BY_HASH[name_hash(name)];
        let canon = CANONICAL.get(usize::from(i))?.as_bytes();
        (canon.len() == name.len() && eq_fold(canon, name)).then(|| VARIANTS[usize::from(i)])
    }
}

header_names! {
    Via = "Via", b'v';
    From = "From", b'f';
    To = "To", b't';
    CallId = "Call-ID", b'i';
    CSeq = "CSeq";
    Contact = "Contact", b'm';
    Expires = "Expires";
    MaxForwards = "Max-Forwards";
    ContentLength = "Content-Length", b'l';
    ContentType = "Content-Type", b'c';
    ContentEncoding = "Content-Encoding", b'e';
    Require = "Require";
    ProxyRequire = "Proxy-Require";
    Supported = "Supported", b'k';
    Unsupported = "Unsupported";
    Date = "Date";
    Authorization = "Authorization";
    ProxyAuthorization = "Proxy-Authorization";
    WwwAuthenticate = "WWW-Authenticate";
    ProxyAuthenticate = "Proxy-Authenticate";
    Path = "Path";
    Route = "Route";
    RecordRoute = "Record-Route";
    UserAgent = "User-Agent";
    Server = "Server";
    Allow = "Allow";
    Accept = "Accept";
    MinExpires = "Min-Expires";
    RetryAfter = "Retry-After";
    Warning = "Warning";
    Subject = "Subject", b's';
    Event = "Event", b'o';
    AllowEvents = "Allow-Events", b'u';
    Reason = "Reason";
    MimeVersion = "MIME-Version";
}

impl<'b> HeaderName<'b> {
    /// The name of `bytes`, which the caller has checked to be a non-empty RFC 3261 token.
    #[inline]
    pub fn parse(bytes: &'b [u8]) -> Self {
        if bytes.is_empty() {
            return HeaderName::Other("");
        }
        let known = if bytes.len() == 1 {
            Self::from_compact(bytes[0])
        } else {
            Self::from_full(bytes)
        };
        // Token characters are ASCII, so the conversion cannot fail for checked input; a
        // caller that passes anything else gets the lossless empty name rather than a panic.
        known.unwrap_or_else(|| HeaderName::Other(std::str::from_utf8(bytes).unwrap_or("")))
    }

    /// Case-insensitive equality, as SIP compares names.
    #[inline]
    pub fn matches(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl fmt::Display for HeaderName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_mixed_case_names_map_to_one_variant() {
        assert_eq!(HeaderName::parse(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::parse(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::parse(b"MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::parse(b"l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse(b"m"), HeaderName::Contact);
        assert_eq!(
            HeaderName::parse(b"C%6Fntact"),
            HeaderName::Other("C%6Fntact")
        );
        assert_eq!(HeaderName::parse(b"q"), HeaderName::Other("q"));
        assert!(HeaderName::Other("X-Foo").matches(&HeaderName::Other("x-foo")));
        assert_eq!(
            HeaderName::parse(b""),
            HeaderName::Other(""),
            "no panic on an empty name"
        );
    }

    #[test]
    fn folding_never_confuses_token_bytes_with_name_bytes() {
        // Every canonical name against every single-byte substitution by a token character.
        for canon in CANONICAL {
            for (pos, &c) in canon.as_bytes().iter().enumerate() {
                for b in 0u8..=255 {
                    if !crate::sip::scan::TOKEN[b as usize] {
                        continue;
                    }
                    let mut name = canon.as_bytes().to_vec();
                    name[pos] = b;
                    assert_eq!(
                        eq_fold(canon.as_bytes(), &name),
                        c.eq_ignore_ascii_case(&b),
                        "{canon} with {b:#x} at {pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn indices_are_dense_and_distinct() {
        assert_eq!(HeaderName::Via.index(), Some(0));
        assert_eq!(HeaderName::MimeVersion.index(), Some(KNOWN_NAMES - 1));
        assert_eq!(HeaderName::Other("x").index(), None);
    }
}
