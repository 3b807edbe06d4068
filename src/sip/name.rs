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

        /// How many known names there are: the size of a per-message index by name.
        pub(crate) const KNOWN_NAMES: usize = [$( stringify!($variant) ),*].len();

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
                #[allow(unused_assignments)]
                {
                    let mut i = 0usize;
                    $(
                        if matches!(self, HeaderName::$variant) { return Some(i); }
                        i += 1;
                    )*
                }
                None
            }

            fn from_compact(c: u8) -> Option<Self> {
                match c.to_ascii_lowercase() {
                    $( $( $compact => Some(HeaderName::$variant), )? )*
                    _ => None,
                }
            }

            fn from_full(name: &[u8]) -> Option<Self> {
                $(
                    if name.len() == $canon.len() && name.eq_ignore_ascii_case($canon.as_bytes()) {
                        return Some(HeaderName::$variant);
                    }
                )*
                None
            }
        }
    };
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
}

impl<'b> HeaderName<'b> {
    /// The name of `bytes`, which the caller has checked to be a non-empty RFC 3261 token.
    #[inline]
    pub fn parse(bytes: &'b [u8]) -> Self {
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
    pub fn matches(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => self.index().is_some() && self.index() == other.index(),
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
    }

    #[test]
    fn indices_are_dense_and_distinct() {
        assert_eq!(HeaderName::Via.index(), Some(0));
        assert_eq!(HeaderName::AllowEvents.index(), Some(KNOWN_NAMES - 1));
        assert_eq!(HeaderName::Other("x").index(), None);
    }
}
