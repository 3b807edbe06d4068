//! `regstorm::sip::Uri::parse` on arbitrary bytes; for SIP URIs the canonical AOR must be a
//! fixed point: it parses again as a SIP URI without params or headers, with the same AOR.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regstorm::sip::{SipUri, Uri};
use regstorm_fuzz::check_sip_uri;

fuzz_target!(|data: &[u8]| {
    let Some(uri) = Uri::parse(data) else {
        assert!(SipUri::parse(data).is_none());
        return;
    };
    match uri {
        Uri::Sip(u) => {
            assert_eq!(SipUri::parse(data), Some(u));
            assert_eq!(uri.sip(), Some(&u));
            let scheme = &data[..data.iter().position(|&b| b == b':').expect("a scheme")];
            assert_eq!(u.sips, scheme.eq_ignore_ascii_case(b"sips"));
            let aor = check_sip_uri(&u);
            // The AOR is the same whatever the spelling of the scheme.
            let mut upper = data.to_vec();
            upper[..scheme.len()].make_ascii_uppercase();
            let u2 = SipUri::parse(&upper).expect("scheme case does not matter");
            assert_eq!(check_sip_uri(&u2), aor);
        }
        Uri::Other { scheme, rest } => {
            assert!(!scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips"));
            assert!(!rest.is_empty());
            assert_eq!(scheme.len() + 1 + rest.len(), data.len());
            assert!(uri.sip().is_none());
            assert!(SipUri::parse(data).is_none());
        }
    }
});
