//! What a Cisco Jabber client in SIP OAuth mode puts on the wire: the REGISTER of the seed
//! (shared/seed/sip-oauth-jabber.txt) with CRLF line ends, its Cisco contact parameters, and
//! the 1,271-byte `multipart/mixed` body of two remotecc requests the seed leaves out.

use crate::sip::scan::push_decimal;

/// The multipart boundary Jabber uses.
pub const BOUNDARY: &str = "uniqueBoundary";

/// Length of the body the seed's REGISTER declares (`Content-Length: 1271`).
pub const CISCO_BODY_LEN: usize = 1271;

/// The two `application/x-cisco-remotecc-request+xml` parts Jabber sends with REGISTER: a bulk
/// update of the device's feature options and an options indication of its dialog usage.
/// Exactly [`CISCO_BODY_LEN`] octets, CRLF line ends.
pub fn cisco_body() -> Vec<u8> {
    const PART1: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<x-cisco-remotecc-request>\r\n\
  <bulkupdate>\r\n\
    <contentid>\r\n\
      <fields>\r\n\
        <field name=\"ringTone\">Ring1.raw</field>\r\n\
        <field name=\"callForwardAll\">false</field>\r\n\
        <field name=\"doNotDisturb\">false</field>\r\n\
        <field name=\"featureControlPolicy\">default</field>\r\n\
      </fields>\r\n\
    </contentid>\r\n\
  </bulkupdate>\r\n\
</x-cisco-remotecc-request>\r\n";
    const PART2: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<x-cisco-remotecc-request>\r\n\
  <optionsind>\r\n\
    <combine max=\"6\">\r\n\
      <service-control></service-control>\r\n\
    </combine>\r\n\
    <dialog usage=\"hook status\">\r\n\
      <unot></unot>\r\n\
      <sub></sub>\r\n\
    </dialog>\r\n\
    <dialog usage=\"shared line\">\r\n\
      <unot></unot>\r\n\
      <sub></sub>\r\n\
    </dialog>\r\n\
    <presence usage=\"blf speed dial\">\r\n\
      <unot></unot>\r\n\
      <sub></sub>\r\n\
    </presence>\r\n\
    <joinreq></joinreq>\r\n\
    <cfwdall-anyline>No</cfwdall-anyline>\r\n\
    <coaching></coaching>\r\n\
    <oosalarm></oosalarm>\r\n\
    <x-cisco-number></x-cisco-number>\r\n\
    <gatewayrecording></gatewayrecording>\r\n\
    <conferenceDisplayInfo></conferenceDisplayInfo>\r\n\
  </optionsind>\r\n\
</x-cisco-remotecc-request>\r\n";
    const PART_HEAD: &str =
        "Content-Type: application/x-cisco-remotecc-request+xml\r\nContent-Disposition: session;handling=required\r\n\r\n";
    let mut body = Vec::with_capacity(CISCO_BODY_LEN);
    for part in [PART1, PART2] {
        body.extend_from_slice(b"--");
        body.extend_from_slice(BOUNDARY.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(PART_HEAD.as_bytes());
        body.extend_from_slice(part.as_bytes());
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(BOUNDARY.as_bytes());
    body.extend_from_slice(b"--\r\n");
    // Pad inside the last XML part's trailing white space so the length is the seed's.
    debug_assert!(
        body.len() <= CISCO_BODY_LEN,
        "body is {} octets",
        body.len()
    );
    // The padding goes before the CRLF that precedes the close delimiter (RFC 2046 §5.1.1:
    // the delimiter line must start with the boundary), at the end of the XML part's content.
    let close = body.len() - (BOUNDARY.len() + 6);
    debug_assert_eq!(&body[close - 2..close], b"\r\n");
    let at = close - 2;
    let pad = CISCO_BODY_LEN.saturating_sub(body.len());
    body.splice(at..at, std::iter::repeat_n(b' ', pad));
    body
}

/// One Jabber device's identity and the per-request values of a REGISTER.
#[derive(Clone, Debug)]
pub struct Register<'a> {
    /// Registrar host (Request-URI, From and To host), e.g. `10.10.10.1`.
    pub domain: &'a str,
    /// Line number / user, e.g. `1010`.
    pub user: &'a str,
    /// Client address and port as they appear in Via and Contact.
    pub local: &'a str,
    /// Via transport token: `TLS`, `TCP` or `UDP`.
    pub transport: &'a str,
    pub branch: &'a str,
    pub from_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    /// Contact user part (Jabber uses a UUID).
    pub contact_user: &'a str,
    /// The `+sip.instance` URN, `<urn:uuid:...>`.
    pub instance: &'a str,
    /// The device name, e.g. `CSFrado`.
    pub device: &'a str,
    pub expires: u32,
    /// The OAuth access token, `None` for the unauthenticated first REGISTER.
    pub token: Option<&'a str>,
    /// The `Date` value to send.
    pub date: &'a str,
    /// Send the Cisco multipart body.
    pub body: bool,
}

impl Register<'_> {
    /// Appends the REGISTER, as the seed shows it, with CRLF line ends.
    pub fn write(&self, out: &mut Vec<u8>, body: &[u8]) {
        let s = |out: &mut Vec<u8>, parts: &[&str]| {
            for p in parts {
                out.extend_from_slice(p.as_bytes());
            }
        };
        s(out, &["REGISTER sip:", self.domain, " SIP/2.0\r\n"]);
        s(
            out,
            &[
                "Via: SIP/2.0/",
                self.transport,
                " ",
                self.local,
                ";branch=",
                self.branch,
                "\r\n",
            ],
        );
        s(
            out,
            &[
                "From: <sip:",
                self.user,
                "@",
                self.domain,
                ">;tag=",
                self.from_tag,
                "\r\n",
            ],
        );
        s(out, &["To: <sip:", self.user, "@", self.domain, ">\r\n"]);
        s(
            out,
            &["Call-ID: ", self.call_id, "\r\n", "Max-Forwards: 70\r\n"],
        );
        s(out, &["Date: ", self.date, "\r\n", "CSeq: "]);
        push_decimal(out, u64::from(self.cseq));
        s(out, &[" REGISTER\r\n", "User-Agent: Cisco-CSF\r\n"]);
        let transport = self.transport.to_ascii_lowercase();
        s(
            out,
            &[
                "Contact: <sip:",
                self.contact_user,
                "@",
                self.local,
                ";transport=",
                &transport,
            ],
        );
        s(
            out,
            &[
                ">;+sip.instance=\"",
                self.instance,
                "\";+u.sip!devicename.ccm.cisco.com=\"",
            ],
        );
        s(
            out,
            &[
                self.device,
                "\";+u.sip!model.ccm.cisco.com=\"503\";video\r\n",
            ],
        );
        if let Some(token) = self.token {
            s(
                out,
                &["Proxy-Authorization: Bearer token=\"", token, "\"\r\n"],
            );
        }
        s(out, &["Supported: replaces,join,sdp-anat,norefersub,resource-priority,extended-refer,X-cisco-callinfo,X-cisco-serviceuri,X-cisco-escapecodes,X-cisco-service-control,X-cisco-srtp-fallback,X-cisco-monrec,X-cisco-config,X-cisco-sis-7.0.0,X-cisco-xsi-8.5.1,X-cisco-graceful-reg,X-cisco-duplicate-reg\r\n"]);
        if self.token.is_some() {
            s(out, &["Reason: SIP;cause=200;text=\"cisco-alarm:111 Name=", self.device, " ActiveLoad=Jabber_for_Windows-12.8.0.51973 InactiveLoad=Jabber_for_Windows-12.8.0.51973 Last=Application-Requested-Destroy\"\r\n"]);
        }
        s(out, &["Expires: "]);
        push_decimal(out, u64::from(self.expires));
        s(out, &["\r\n"]);
        if self.body {
            s(
                out,
                &[
                    "Content-Type: multipart/mixed; boundary=",
                    BOUNDARY,
                    "\r\nMime-Version: 1.0\r\n",
                ],
            );
        }
        s(out, &["Content-Length: "]);
        let body = if self.body { body } else { &[][..] };
        push_decimal(out, body.len() as u64);
        s(out, &["\r\n\r\n"]);
        out.extend_from_slice(body);
    }
}

impl Register<'static> {
    /// The seed's second REGISTER (CSeq 2271, with a token), field for field.
    pub fn seed(token: &'static str) -> Self {
        Register {
            domain: "10.10.10.1",
            user: "1010",
            local: "10.10.10.10:62162",
            transport: "TLS",
            branch: "z9hG4bK00004a82",
            from_tag: "882323451234089000003bdd-00005eff",
            call_id: "88232345-12340017-00001c0b-00000cfa@10.10.10.10",
            cseq: 2271,
            contact_user: "a8ae9f92-4b07-a0d7-d701-29320aed1e2e",
            instance: "<urn:uuid:00000000-0000-0000-0000-882323451234>",
            device: "CSFrado",
            expires: 3600,
            token: Some(token),
            date: "Mon, 30 Mar 2020 11:03:19 GMT",
            body: true,
        }
    }
}

/// The seed's REGISTER with `token` and the Cisco body, as bytes on the wire.
pub fn seed_register(token: &'static str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    Register::seed(token).write(&mut out, &cisco_body());
    out
}

/// A stand-in for an access token of realistic size (about 900 octets of JWS compact
/// serialisation: three base64url segments). Not signed: for parser tests and benchmarks only.
pub const SAMPLE_TOKEN: &str = concat!(
    "eyJhbGciOiJFZERTQSIsImtpZCI6IjVmYjJkNGE3YzBlMTQ4OWJhMzE2ZjA1ZDlhOGMyZTQ3IiwidHlwIjoiSldUIn0.",
    "eyJzdWIiOiIxMDEwIiwibGluZXMiOlsiMTAxMCIsIjEwMTEiXSwiZGV2IjoiQ1NGcmFkbyIsImlzcyI6Imh0dHBzOi8v",
    "Y3VjbS1wdWIuZXhhbXBsZS5jb206ODQ0My9zc29zcC9vYXV0aCIsImF1ZCI6ImNjbXNpcGxpbmUiLCJleHAiOjE3OTg3",
    "NjE2MDAsImlhdCI6MTc5ODc1ODAwMCwibmJmIjoxNzk4NzU4MDAwLCJzY29wZSI6IlVuaWZpZWRDb21tdW5pY2F0aW9u",
    "cyBTcGFyayBzaXA6cmVnaXN0ZXIgc2lwOmNhbGwiLCJjbGllbnRfaWQiOiJDMTZkOWQ0N2Y1NjU0NTI5YjJhNjk1MGYx",
    "OTQ2NzUxZjQzOWI0NGQxMzYxZTk1NTJlNjU5MTQyYmE3NzlhNzk0NiIsInRva2VuX3R5cGUiOiJTZWxmLUNvbnRhaW5l",
    "ZCIsImp0aSI6IjFlNjFhNjQ1LTk5YjEtNGRhNS1hN2Q0LTZlNjU3NjYwNjI1YyIsImNhY2hlX2tleSI6ImNhY2hlLTEw",
    "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwIn0.",
    "TAtHUGAXOYFWGXPbWsrsHdOfR-zkRq7TDd9kVT3yWo0R3oT3LJs2Zyx-JHhhhJI5X3mc8d9hV9vj5bVUZ-0FBhqmHkbyc",
    "VF9lP3dQs7rWWzIkjaXdrQ3RgZ5mVZ-AT5bgYa_u9hg1c-Vd21ObjO6s1sL0UAWT7Yvp4uTWwUf3Bf8LBrhJdGIrnhB41",
    "Yj9pe63M6C3OKEF1jp1W9-mk6ep6Dh-0OB8ZN9vm0dJ2r1Ri0DnfMKq5G1mfAzxMTlKoCS4PsrfSvBh8GQBa4wEEPpA"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_seed_length_and_two_parts() {
        let body = cisco_body();
        assert_eq!(body.len(), CISCO_BODY_LEN);
        let parts = body
            .windows(16)
            .filter(|w| w == b"--uniqueBoundary")
            .count();
        assert_eq!(parts, 3, "two part delimiters and the close delimiter");
        assert!(body.ends_with(b"--uniqueBoundary--\r\n"));
    }

    #[test]
    fn sample_token_is_realistic() {
        assert!(
            (850..=1000).contains(&SAMPLE_TOKEN.len()),
            "{}",
            SAMPLE_TOKEN.len()
        );
        assert_eq!(SAMPLE_TOKEN.matches('.').count(), 2);
    }
}
