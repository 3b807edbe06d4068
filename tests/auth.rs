//! Token verification: the JWS vectors in tests/conformance/jws, an attack suite (one named
//! test per attack), the verified-token cache under a fake clock, key loading, and the round
//! trip from `regstorm keys` + `regstorm token` to the verifier.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use regstorm::auth::{
    decode, generate_pkcs8, Alg, CacheBound, Claims, Key, KeySet, Policy, Signer, TokenClaims,
    TokenError, Verifier,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NOW: u64 = 1_800_000_000;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn signer(alg: Alg) -> Signer {
    let pkcs8 = match alg {
        Alg::RS256 => std::fs::read(data("rsa2048.pem")).unwrap(),
        _ => generate_pkcs8(alg).unwrap(),
    };
    Signer::from_pkcs8(&pkcs8, "test key").unwrap()
}

fn claims(exp: u64) -> TokenClaims<'static> {
    TokenClaims {
        sub: "1010",
        exp,
        iat: NOW - 60,
        iss: Some("https://cucm.example.com/ssosp/oauth"),
        aud: Some("ccmsipline"),
        lines: &["1010", "1011"],
        dev: Some("CSFrado"),
        ..TokenClaims::default()
    }
}

fn policy() -> Policy {
    Policy {
        issuer: Some("https://cucm.example.com/ssosp/oauth".into()),
        audience: Some("ccmsipline".into()),
        leeway_s: 30,
    }
}

fn verifier_for(keys: Vec<Key>, cache_entries: usize) -> Verifier {
    Verifier::new(Arc::new(KeySet::new(keys)), policy(), cache_entries)
}

/// A token with arbitrary header and payload JSON, signed by `s`.
fn forge(s: &Signer, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = s.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

fn header_of(s: &Signer) -> String {
    format!(
        r#"{{"alg":"{}","kid":"{}","typ":"JWT"}}"#,
        s.alg().as_str(),
        s.kid()
    )
}

fn payload(extra: &str) -> String {
    format!(
        r#"{{"sub":"1010","iss":"https://cucm.example.com/ssosp/oauth","aud":"ccmsipline"{extra}}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// External vectors.

/// The JWS vectors kept in the repository (tests/conformance/jws: RFC 7515 A.2 and A.3,
/// RFC 7520 §4.1 and §4.3, RFC 8037 A.4, each with a tampered copy; see its README).
fn jws_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/jws");
    assert!(d.is_dir(), "{} is missing from the checkout", d.display());
    d
}

#[test]
fn rfc_jws_vectors_verify_and_tampered_copies_fail() {
    let dir = jws_dir();
    let mut checked = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let jws = v["jws"].as_str().unwrap();
        let valid = v["valid"].as_bool().unwrap();
        let jwks = serde_json::json!({ "keys": [v["jwk"].clone()] }).to_string();
        if v["alg"] == "ES512" {
            // Not on the allow-list: refused as an algorithm, and its P-521 key at load time.
            assert_eq!(
                decode(jws.as_bytes()).unwrap_err(),
                TokenError::UnsupportedAlg,
                "{name}"
            );
            let e = KeySet::from_jwks(jwks.as_bytes(), &name).unwrap_err();
            assert!(
                e.to_string().contains("EC/P-521 is not supported"),
                "{name}: {e}"
            );
            checked.push(name);
            continue;
        }
        let keys = KeySet::from_jwks(jwks.as_bytes(), &name).unwrap_or_else(|e| panic!("{e}"));
        let token = decode(jws.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(token.alg.as_str(), v["alg"].as_str().unwrap(), "{name}");
        assert_eq!(
            token.payload,
            v["payload_json"].as_str().unwrap().as_bytes(),
            "{name}"
        );
        let key = keys
            .find(token.kid.as_deref())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = token.verify(key);
        if valid {
            assert_eq!(outcome, Ok(()), "{name} must verify");
        } else {
            assert_eq!(outcome, Err(TokenError::BadSignature), "{name} must fail");
        }
        checked.push(name);
    }
    assert_eq!(
        checked.len(),
        10,
        "5 vectors and 5 tampered copies: {checked:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The attack suite: each case a distinct test.

fn eddsa_setup() -> (Signer, Verifier) {
    let s = signer(Alg::EdDSA);
    let v = verifier_for(vec![s.public_key().clone()], 1000);
    (s, v)
}

fn refused(v: &mut Verifier, token: &str) -> TokenError {
    match v.verify(token.as_bytes(), NOW) {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(e) => e,
    }
}

#[test]
fn attack_alg_none() {
    let (s, mut v) = eddsa_setup();
    let none = format!(r#"{{"alg":"none","kid":"{}"}}"#, s.kid());
    let p = payload(&format!(r#","exp":{}"#, NOW + 600));
    let unsigned = format!("{}.{}.", B64.encode(&none), B64.encode(&p));
    assert_eq!(refused(&mut v, &unsigned), TokenError::Malformed);
    let with_sig = format!("{}.{}.AAAA", B64.encode(&none), B64.encode(&p));
    assert_eq!(refused(&mut v, &with_sig), TokenError::UnsupportedAlg);
}

#[test]
fn attack_hs256_keyed_with_the_public_key() {
    let (s, mut v) = eddsa_setup();
    let header = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, s.kid());
    let input = format!(
        "{}.{}",
        B64.encode(header),
        B64.encode(payload(&format!(r#","exp":{}"#, NOW + 600)))
    );
    let regstorm::auth::KeyKind::Ed25519(public) = &s.public_key().kind else {
        unreachable!()
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    let token = format!("{input}.{}", B64.encode(tag.as_ref()));
    assert_eq!(refused(&mut v, &token), TokenError::UnsupportedAlg);
}

#[test]
fn attack_signature_by_another_key_under_a_known_kid() {
    let (s, mut v) = eddsa_setup();
    let other = signer(Alg::EdDSA).with_kid(s.kid());
    let token = other.mint(&claims(NOW + 600));
    assert_eq!(refused(&mut v, &token), TokenError::BadSignature);
}

#[test]
fn attack_unknown_kid() {
    let (s, mut v) = eddsa_setup();
    let token = forge(
        &s,
        r#"{"alg":"EdDSA","kid":"nobody"}"#,
        &payload(&format!(r#","exp":{}"#, NOW + 600)),
    );
    assert_eq!(refused(&mut v, &token), TokenError::UnknownKid);
}

#[test]
fn attack_expired() {
    let (s, mut v) = eddsa_setup();
    assert_eq!(
        refused(&mut v, &s.mint(&claims(NOW - 31))),
        TokenError::Expired
    );
    // Inside the leeway it still passes.
    assert!(v.verify(s.mint(&claims(NOW - 29)).as_bytes(), NOW).is_ok());
}

#[test]
fn attack_not_yet_valid() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&TokenClaims {
        nbf: Some(NOW + 120),
        ..claims(NOW + 600)
    });
    assert_eq!(refused(&mut v, &token), TokenError::NotYetValid);
}

#[test]
fn attack_no_exp() {
    let (s, mut v) = eddsa_setup();
    assert_eq!(
        refused(&mut v, &forge(&s, &header_of(&s), &payload(""))),
        TokenError::MissingExp
    );
}

#[test]
fn attack_wrong_issuer() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&TokenClaims {
        iss: Some("https://evil.example.com"),
        ..claims(NOW + 600)
    });
    assert_eq!(refused(&mut v, &token), TokenError::WrongIssuer);
}

#[test]
fn attack_wrong_audience() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&TokenClaims {
        aud: Some("webex"),
        ..claims(NOW + 600)
    });
    assert_eq!(refused(&mut v, &token), TokenError::WrongAudience);
    let arr = forge(
        &s,
        &header_of(&s),
        &payload_with_aud(r#"["a","ccmsipline"]"#),
    );
    assert!(
        v.verify(arr.as_bytes(), NOW).is_ok(),
        "an array containing the audience passes"
    );
}

fn payload_with_aud(aud: &str) -> String {
    format!(
        r#"{{"sub":"1010","iss":"https://cucm.example.com/ssosp/oauth","aud":{aud},"exp":{}}}"#,
        NOW + 600
    )
}

#[test]
fn attack_payload_swapped_under_a_valid_signature() {
    let (s, mut v) = eddsa_setup();
    let good = s.mint(&claims(NOW + 600));
    let other = s.mint(&TokenClaims {
        sub: "9999",
        lines: &["9999"],
        ..claims(NOW + 600)
    });
    let g: Vec<&str> = good.split('.').collect();
    let o: Vec<&str> = other.split('.').collect();
    let swapped = format!("{}.{}.{}", g[0], o[1], g[2]);
    assert_eq!(refused(&mut v, &swapped), TokenError::BadSignature);
}

#[test]
fn attack_truncated() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&claims(NOW + 600));
    for cut in [1, 2, 3, 10, 43] {
        let e = refused(&mut v, &token[..token.len() - cut]);
        assert!(
            matches!(e, TokenError::BadSignature | TokenError::BadBase64),
            "cut {cut}: {e:?}"
        );
    }
    let two = &token[..token.rfind('.').unwrap()];
    assert_eq!(refused(&mut v, two), TokenError::Malformed);
}

#[test]
fn attack_padded_or_whitespace_laced_base64url() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&claims(NOW + 600));
    let parts: Vec<&str> = token.split('.').collect();
    let padded = format!("{}.{}=.{}", parts[0], parts[1], parts[2]);
    assert_eq!(refused(&mut v, &padded), TokenError::BadBase64);
    let spaced = format!(
        "{}.{} {}.{}",
        parts[0],
        &parts[1][..8],
        &parts[1][8..],
        parts[2]
    );
    assert_eq!(refused(&mut v, &spaced), TokenError::BadBase64);
    let newline = format!("{}.{}\n.{}", parts[0], parts[1], parts[2]);
    assert_eq!(refused(&mut v, &newline), TokenError::BadBase64);
    let standard = token.replace('-', "+").replace('_', "/");
    if standard != token {
        assert_eq!(refused(&mut v, &standard), TokenError::BadBase64);
    }
}

#[test]
fn attack_non_json() {
    let (s, mut v) = eddsa_setup();
    assert_eq!(
        refused(&mut v, &forge(&s, &header_of(&s), "not json")),
        TokenError::BadClaims
    );
    let bad_header = forge(
        &s,
        "{alg:EdDSA}",
        &payload(&format!(r#","exp":{}"#, NOW + 600)),
    );
    assert_eq!(refused(&mut v, &bad_header), TokenError::BadHeader);
}

#[test]
fn attack_64_kib_token() {
    let (_, mut v) = eddsa_setup();
    let huge = "A".repeat(64 * 1024);
    assert_eq!(
        refused(&mut v, &format!("{huge}.{huge}.{huge}")),
        TokenError::TooLarge
    );
    assert_eq!(
        v.stats().verifications,
        0,
        "refused before any signature work"
    );
}

#[test]
fn attack_deeply_nested_json() {
    let (s, mut v) = eddsa_setup();
    let nest = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let p = payload(&format!(r#","exp":{},"x":{nest}"#, NOW + 600));
    assert_eq!(
        refused(&mut v, &forge(&s, &header_of(&s), &p)),
        TokenError::BadClaims
    );
    let deeper = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let p = payload(&format!(r#","exp":{},"x":{deeper}"#, NOW + 600));
    assert_eq!(
        refused(&mut v, &forge(&s, &header_of(&s), &p)),
        TokenError::TooLarge
    );
}

#[test]
fn attack_crit_present() {
    let (s, mut v) = eddsa_setup();
    let h = format!(
        r#"{{"alg":"EdDSA","kid":"{}","crit":["exp"],"exp":1}}"#,
        s.kid()
    );
    assert_eq!(
        refused(
            &mut v,
            &forge(&s, &h, &payload(&format!(r#","exp":{}"#, NOW + 600)))
        ),
        TokenError::Critical
    );
}

#[test]
fn attack_algorithm_confusion_between_key_types() {
    // A P-256 key registered under the kid an EdDSA token names: refused before verifying.
    let s = signer(Alg::EdDSA);
    let p256 = signer(Alg::ES256);
    let wrong = Key::new(Some(s.kid().into()), None, p256.public_key().kind.clone());
    let mut v = verifier_for(vec![wrong], 10);
    assert_eq!(
        refused(&mut v, &s.mint(&claims(NOW + 600))),
        TokenError::KeyMismatch
    );
    // An RSA key whose JWK says RS256 cannot verify an ES256 token, whatever the kid.
    let r = signer(Alg::RS256);
    let rsa = Key::new(
        Some(p256.kid().into()),
        Some(Alg::RS256),
        r.public_key().kind.clone(),
    );
    let mut v = verifier_for(vec![rsa], 10);
    assert_eq!(
        refused(&mut v, &p256.mint(&claims(NOW + 600))),
        TokenError::KeyMismatch
    );
}

#[test]
fn attack_duplicate_claims() {
    let (s, mut v) = eddsa_setup();
    let p = format!(r#"{{"sub":"1010","sub":"admin","exp":{}}}"#, NOW + 600);
    assert_eq!(
        refused(&mut v, &forge(&s, &header_of(&s), &p)),
        TokenError::BadClaims
    );
}

#[test]
fn attack_kid_omitted_with_several_keys() {
    let a = signer(Alg::EdDSA);
    let b = signer(Alg::EdDSA);
    let mut v = verifier_for(vec![a.public_key().clone(), b.public_key().clone()], 10);
    let token = forge(
        &a,
        r#"{"alg":"EdDSA"}"#,
        &payload(&format!(r#","exp":{}"#, NOW + 600)),
    );
    assert_eq!(refused(&mut v, &token), TokenError::KidRequired);
    let mut one = verifier_for(vec![a.public_key().clone()], 10);
    assert!(
        one.verify(token.as_bytes(), NOW).is_ok(),
        "a lone key may be used without kid"
    );
}

// ---------------------------------------------------------------------------------------------
// Every algorithm verifies; the claims come through.

#[test]
fn each_algorithm_mints_and_verifies() {
    for alg in [Alg::EdDSA, Alg::ES256, Alg::RS256] {
        let s = signer(alg);
        let mut v = verifier_for(vec![s.public_key().clone()], 10);
        let token = s.mint(&claims(NOW + 600));
        let t = v
            .verify(token.as_bytes(), NOW)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(t.claims.sub(), b"1010");
        assert!(t.claims.covers_user(b"1011") && !t.claims.covers_user(b"1012"));
        assert!(
            t.claims.covers_device(Some(b"CSFrado")) && !t.claims.covers_device(Some(b"CSFother"))
        );
        assert_eq!(t.exp, NOW + 600);
        assert!(!t.cached);
    }
}

#[test]
fn openssl_and_python_pkcs8_v1_keys_load_and_sign() {
    for (file, alg) in [
        ("ed25519-openssl.pem", Alg::EdDSA),
        ("ed25519-python.pem", Alg::EdDSA),
        ("p256-openssl.pem", Alg::ES256),
        ("p256-python.pem", Alg::ES256),
        ("rsa2048.pem", Alg::RS256),
    ] {
        let s = Signer::from_pkcs8(&std::fs::read(data(file)).unwrap(), file)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.alg(), alg, "{file}");
        let mut v = verifier_for(vec![s.public_key().clone()], 10);
        assert!(
            v.verify(s.mint(&claims(NOW + 600)).as_bytes(), NOW).is_ok(),
            "{file}"
        );
    }
}

#[test]
fn pem_public_keys_load_with_the_file_stem_as_kid() {
    for (file, alg) in [
        ("ed25519-openssl", Alg::EdDSA),
        ("p256-openssl", Alg::ES256),
        ("rsa2048", Alg::RS256),
    ] {
        let public = data(&format!("{file}.pub.pem"));
        let keys = KeySet::load(None, &[public.as_path()]).unwrap_or_else(|e| panic!("{e}"));
        let key = keys.find(Some(&format!("{file}.pub"))).unwrap();
        assert_eq!(key.kind.alg(), alg);
        // The key verifies what the matching private key signs.
        let s = Signer::from_pkcs8(&std::fs::read(data(&format!("{file}.pem"))).unwrap(), file)
            .unwrap()
            .with_kid(&format!("{file}.pub"));
        let mut v = Verifier::new(Arc::new(keys), policy(), 10);
        assert!(
            v.verify(s.mint(&claims(NOW + 600)).as_bytes(), NOW).is_ok(),
            "{file}"
        );
    }
    let p384 = data("p384-openssl.pub.pem");
    let e = KeySet::load(None, &[p384.as_path()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: key \"p384-openssl.pub\": EC key is not on P-256",
            p384.display()
        )
    );
}

#[test]
fn jwk_alg_restricts_the_key() {
    let s = signer(Alg::ES256);
    let mut jwk = s.public_jwk();
    jwk["alg"] = "EdDSA".into();
    let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
    let e = KeySet::from_jwks(jwks.as_bytes(), "jwks.json").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "jwks.json: key \"{}\": \"alg\" does not match the key type",
            s.kid()
        )
    );
    let mut jwk = s.public_jwk();
    jwk["alg"] = "HS256".into();
    let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
    assert!(KeySet::from_jwks(jwks.as_bytes(), "jwks.json")
        .unwrap_err()
        .to_string()
        .contains("alg \"HS256\" is not allowed"));
}

// ---------------------------------------------------------------------------------------------
// The verified-token cache, with a fake clock.

#[test]
fn cache_hit_needs_no_second_verification() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&claims(NOW + 600));
    assert!(!v.verify(token.as_bytes(), NOW).unwrap().cached);
    for t in 1..50 {
        let hit = v.verify(token.as_bytes(), NOW + t).unwrap();
        assert!(hit.cached);
        assert_eq!(hit.claims.dev(), Some(&b"CSFrado"[..]));
    }
    assert_eq!(v.stats().verifications, 1);
    assert_eq!(v.cache().stats().hits, 49);
}

#[test]
fn cache_entry_past_exp_is_a_miss_at_lookup() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&claims(NOW + 100));
    v.verify(token.as_bytes(), NOW).unwrap();
    assert!(
        v.verify(token.as_bytes(), NOW + 129).unwrap().cached,
        "within exp + leeway"
    );
    assert_eq!(
        v.verify(token.as_bytes(), NOW + 130).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(v.cache().stats().expired, 1);
    assert_eq!(
        v.cache().len(),
        0,
        "the expired entry left the cache at that lookup"
    );
}

#[test]
fn cache_bound_holds_under_churn_and_keeps_the_hot_set() {
    let (s, mut v) = eddsa_setup();
    let capacity = 64;
    let mut v2 = verifier_for(vec![s.public_key().clone()], capacity);
    std::mem::swap(&mut v, &mut v2);
    let hot: Vec<String> = (0..16)
        .map(|i| {
            s.mint(&TokenClaims {
                iat: i,
                ..claims(NOW + 600)
            })
        })
        .collect();
    for t in &hot {
        v.verify(t.as_bytes(), NOW).unwrap();
    }
    for round in 0..20u64 {
        // Refresh churn: fresh tokens arrive, hot tokens keep being presented.
        for k in 0..32u64 {
            let fresh = s.mint(&TokenClaims {
                iat: 1000 + round * 100 + k,
                ..claims(NOW + 600)
            });
            v.verify(fresh.as_bytes(), NOW).unwrap();
            assert!(v.cache().len() <= capacity);
        }
        for t in &hot {
            v.verify(t.as_bytes(), NOW).unwrap();
        }
    }
    assert_eq!(v.cache().len(), capacity);
    let before = v.stats().verifications;
    for t in &hot {
        assert!(
            v.verify(t.as_bytes(), NOW).unwrap().cached,
            "hot tokens stay cached"
        );
    }
    assert_eq!(v.stats().verifications, before);
    assert!(v.cache().stats().evictions > 500);
}

/// `auth.cache_entries` bounds all cores together: a core whose connections carry more than
/// its even share of the devices keeps all their tokens while another core holds few, and
/// only when every place is taken does a core evict (its own entries).
#[test]
fn cores_share_one_cache_bound_so_an_uneven_split_evicts_nothing() {
    let s = signer(Alg::EdDSA);
    let keys = Arc::new(KeySet::new(vec![s.public_key().clone()]));
    let bound = CacheBound::new(10);
    let mut busy = Verifier::sharing(keys.clone(), policy(), bound.clone());
    let mut quiet = Verifier::sharing(keys, policy(), bound.clone());
    let token = |i: u64| {
        s.mint(&TokenClaims {
            iat: i,
            ..claims(NOW + 600)
        })
    };
    let tokens: Vec<String> = (0..10).map(token).collect();
    // 8 of the 10 devices on one core: more than half the bound, nothing evicted.
    for t in &tokens[..8] {
        busy.verify(t.as_bytes(), NOW).unwrap();
    }
    for t in &tokens[8..] {
        quiet.verify(t.as_bytes(), NOW).unwrap();
    }
    assert_eq!(bound.live(), 10);
    for _cycle in 0..3 {
        for t in &tokens[..8] {
            assert!(busy.verify(t.as_bytes(), NOW + 60).unwrap().cached);
        }
        for t in &tokens[8..] {
            assert!(quiet.verify(t.as_bytes(), NOW + 60).unwrap().cached);
        }
    }
    assert_eq!(busy.stats().verifications + quiet.stats().verifications, 10);
    assert_eq!(busy.cache().stats().evictions, 0);
    // Every place taken: an eleventh token evicts one of the quiet core's own, never more.
    quiet.verify(token(10).as_bytes(), NOW).unwrap();
    assert_eq!(bound.live(), 10);
    assert_eq!(quiet.cache().stats().evictions, 1);
    assert_eq!(
        busy.cache().len(),
        8,
        "another core's entries are not touched"
    );
    // A core that stops gives its places back.
    drop(busy);
    assert_eq!(bound.live(), 2);
    for i in 11..19 {
        quiet.verify(token(i).as_bytes(), NOW).unwrap();
    }
    assert_eq!(quiet.cache().len(), 10);
    assert_eq!(quiet.cache().stats().evictions, 1);
}

#[test]
fn cache_invalidated_when_the_key_is_withdrawn() {
    let a = signer(Alg::EdDSA);
    let b = signer(Alg::ES256);
    let mut v = verifier_for(vec![a.public_key().clone(), b.public_key().clone()], 100);
    let ta = a.mint(&claims(NOW + 600));
    let tb = b.mint(&claims(NOW + 600));
    v.verify(ta.as_bytes(), NOW).unwrap();
    v.verify(tb.as_bytes(), NOW).unwrap();
    // Rotation: a's key leaves the set, b's stays.
    v.set_keys(Arc::new(KeySet::new(vec![b.public_key().clone()])));
    assert_eq!(
        v.verify(ta.as_bytes(), NOW).unwrap_err(),
        TokenError::UnknownKid
    );
    assert!(
        v.verify(tb.as_bytes(), NOW).unwrap().cached,
        "entries of kept keys survive"
    );
    assert_eq!(v.cache().stats().orphaned, 1);
}

#[test]
fn failed_tokens_are_not_cached_but_remembered_briefly() {
    let (s, mut v) = eddsa_setup();
    let bad = signer(Alg::EdDSA)
        .with_kid(s.kid())
        .mint(&claims(NOW + 600));
    for _ in 0..100 {
        assert_eq!(
            v.verify(bad.as_bytes(), NOW).unwrap_err(),
            TokenError::BadSignature
        );
    }
    assert_eq!(
        v.stats().verifications,
        1,
        "a flood of one bad token costs one verification"
    );
    assert_eq!(v.cache().len(), 0, "no cache entry for a failed token");
    // Remembered for FAILURE_TTL_S only.
    v.verify(bad.as_bytes(), NOW + regstorm::auth::FAILURE_TTL_S)
        .unwrap_err();
    assert_eq!(v.stats().verifications, 2);
}

#[test]
fn failure_memory_forgets_on_key_change_and_ignores_clock_failures() {
    let a = signer(Alg::EdDSA);
    let b = signer(Alg::EdDSA);
    let mut v = verifier_for(vec![a.public_key().clone()], 10);
    let tb = b.mint(&claims(NOW + 600));
    assert_eq!(
        v.verify(tb.as_bytes(), NOW).unwrap_err(),
        TokenError::UnknownKid
    );
    v.set_keys(Arc::new(KeySet::new(vec![
        a.public_key().clone(),
        b.public_key().clone(),
    ])));
    assert!(
        v.verify(tb.as_bytes(), NOW).is_ok(),
        "the new key is used at once"
    );
    let early = a.mint(&TokenClaims {
        nbf: Some(NOW + 100),
        ..claims(NOW + 600)
    });
    assert_eq!(
        v.verify(early.as_bytes(), NOW).unwrap_err(),
        TokenError::NotYetValid
    );
    assert!(
        v.verify(early.as_bytes(), NOW + 100).is_ok(),
        "nbf failures are not remembered"
    );
}

#[test]
fn policy_change_empties_the_cache() {
    let (s, mut v) = eddsa_setup();
    let token = s.mint(&claims(NOW + 600));
    v.verify(token.as_bytes(), NOW).unwrap();
    v.set_policy(Policy {
        audience: Some("other".into()),
        ..policy()
    });
    assert_eq!(
        v.verify(token.as_bytes(), NOW).unwrap_err(),
        TokenError::WrongAudience
    );
}

#[test]
fn claims_check_is_exact_about_types() {
    let p = policy();
    let ok = r#"{"sub":"1010","exp":1800000600,"iss":"https://cucm.example.com/ssosp/oauth","aud":"ccmsipline","lines":["1010"]}"#;
    assert!(Claims::check(ok.as_bytes(), &p, NOW).is_ok());
    let bad_lines = ok.replace(r#"["1010"]"#, r#""1010""#);
    assert_eq!(
        Claims::check(bad_lines.as_bytes(), &p, NOW),
        Err(TokenError::BadClaims)
    );
    let long_sub = ok.replace(
        r#""sub":"1010""#,
        &format!(r#""sub":"{}""#, "x".repeat(200)),
    );
    assert_eq!(
        Claims::check(long_sub.as_bytes(), &p, NOW),
        Err(TokenError::BadClaims)
    );
}

// ---------------------------------------------------------------------------------------------
// Round trip through the binary: what `token` mints verifies under what `keys` wrote.

fn regstorm(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_regstorm"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn keys_then_token_round_trip_for_each_mintable_algorithm() {
    let dir = std::env::temp_dir().join(format!("regstorm-auth-{}", std::process::id()));
    for alg in ["EdDSA", "ES256"] {
        let out = dir.join(alg);
        let o = regstorm(&["keys", "--out", out.to_str().unwrap(), "--alg", alg]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for f in [
            "ca.pem",
            "server.pem",
            "server.key",
            "expressway.pem",
            "expressway.key",
            "signing.key",
            "jwks.json",
            "registrar.toml",
        ] {
            assert!(out.join(f).is_file(), "{alg}: {f} written");
        }
        // The registrar.toml it wrote is a valid configuration whose key set loads.
        let config = regstorm::config::Config::load(&out.join("registrar.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.load_keys().unwrap().len(), 1);
        assert_eq!(config.listeners.len(), 3);
        let key = out.join("signing.key");
        let o = regstorm(&[
            "token",
            "--key",
            key.to_str().unwrap(),
            "--sub",
            "1010",
            "--lines",
            "1010,1011",
            "--dev",
            "CSFrado",
            "--ttl",
            "600",
            "--aud",
            "ccmsipline",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let token = String::from_utf8(o.stdout).unwrap();
        let keys = KeySet::load(Some(&out.join("jwks.json")), &[]).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let policy = Policy {
            issuer: None,
            audience: Some("ccmsipline".into()),
            leeway_s: 30,
        };
        let mut v = Verifier::new(Arc::new(keys), policy, 10);
        let t = v
            .verify(token.trim().as_bytes(), now)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(t.claims.lines().count(), 2);
        assert!(decode(token.trim().as_bytes()).unwrap().alg.as_str() == alg);
    }
    // RS256 from a supplied key, verified under that key's public half.
    let rsa = data("rsa2048.pem");
    let o = regstorm(&[
        "token",
        "--key",
        rsa.to_str().unwrap(),
        "--sub",
        "1010",
        "--kid",
        "rsa-1",
    ]);
    assert!(o.status.success());
    let token = String::from_utf8(o.stdout).unwrap();
    let public = data("rsa2048.pub.pem");
    let mut keys = KeySet::default();
    keys.add(
        KeySet::pem_key(&std::fs::read(&public).unwrap(), "rsa-1", "rsa2048.pub.pem").unwrap(),
        "x",
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut v = Verifier::new(Arc::new(keys), Policy::default(), 10);
    assert!(v.verify(token.trim().as_bytes(), now).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_usage_exits_2_naming_the_flag_or_file() {
    let o = regstorm(&["token", "--key", "/nonexistent/key.pem", "--sub", "1010"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--key /nonexistent/key.pem"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let not_a_key = data("README.md");
    let o = regstorm(&[
        "token",
        "--key",
        not_a_key.to_str().unwrap(),
        "--sub",
        "1010",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("README.md"));
    let o = regstorm(&["keys", "--out", "/tmp/x", "--alg", "HS256"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--alg") && err.trim().lines().count() == 1,
        "{err}"
    );
    let o = regstorm(&["token", "--sub", "1010"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--key") && err.trim().lines().count() == 1,
        "{err}"
    );
    let o = regstorm(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("regstorm "));
    let o = regstorm(&[
        "token",
        "--key",
        rsa_path().as_str(),
        "--sub",
        "1",
        "--ttl",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--ttl"));
}

fn rsa_path() -> String {
    data("rsa2048.pem").display().to_string()
}

// ---------------------------------------------------------------------------------------------
// Regressions from review (one test per bug, named after it).

#[test]
fn regression_cached_kidless_token_fails_once_a_second_key_arrives() {
    let a = signer(Alg::EdDSA);
    let mut v = verifier_for(vec![a.public_key().clone()], 10);
    let bare = forge(
        &a,
        r#"{"alg":"EdDSA"}"#,
        &payload(&format!(r#","exp":{}"#, NOW + 600)),
    );
    assert!(v.verify(bare.as_bytes(), NOW).is_ok());
    let b = signer(Alg::EdDSA);
    v.set_keys(Arc::new(KeySet::new(vec![
        a.public_key().clone(),
        b.public_key().clone(),
    ])));
    assert_eq!(
        v.verify(bare.as_bytes(), NOW).unwrap_err(),
        TokenError::KidRequired
    );
}

#[test]
fn regression_renamed_kid_is_seen_by_the_cache() {
    let a = signer(Alg::EdDSA);
    let mut v = verifier_for(vec![a.public_key().clone()], 10);
    let token = a.mint(&claims(NOW + 600));
    assert!(v.verify(token.as_bytes(), NOW).is_ok());
    v.set_keys(Arc::new(KeySet::new(vec![a
        .public_key()
        .renamed("renamed")])));
    assert_eq!(
        v.verify(token.as_bytes(), NOW).unwrap_err(),
        TokenError::UnknownKid
    );
    // Re-pointing the kid at new material while the old key stays under another name.
    let mut v = verifier_for(vec![a.public_key().clone()], 10);
    assert!(v.verify(token.as_bytes(), NOW).is_ok());
    let fresh = signer(Alg::EdDSA).public_key().renamed(a.kid());
    v.set_keys(Arc::new(KeySet::new(vec![
        fresh,
        a.public_key().renamed("old"),
    ])));
    assert_eq!(
        v.verify(token.as_bytes(), NOW).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn regression_lower_leeway_applies_to_cached_tokens() {
    let s = signer(Alg::EdDSA);
    let mut v = Verifier::new(
        Arc::new(KeySet::new(vec![s.public_key().clone()])),
        Policy {
            leeway_s: 300,
            ..policy()
        },
        10,
    );
    v.set_policy(Policy {
        leeway_s: 0,
        ..policy()
    });
    let token = s.mint(&claims(NOW + 10));
    assert!(v.verify(token.as_bytes(), NOW).is_ok());
    assert_eq!(
        v.verify(token.as_bytes(), NOW + 110).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn regression_json_arrays_and_null_members_are_not_a_jws() {
    let (s, mut v) = eddsa_setup();
    let arr = forge(
        &s,
        &format!(r#"["EdDSA","{}"]"#, s.kid()),
        &payload(&format!(r#","exp":{}"#, NOW + 600)),
    );
    assert_eq!(refused(&mut v, &arr), TokenError::BadHeader);
    let claims_arr = forge(
        &s,
        &header_of(&s),
        &format!(r#"["1010",{},null,null,null,null,null,null]"#, NOW + 600),
    );
    assert_eq!(refused(&mut v, &claims_arr), TokenError::BadClaims);
    let crit_null = forge(
        &s,
        &format!(r#"{{"alg":"EdDSA","kid":"{}","crit":null}}"#, s.kid()),
        &payload(&format!(r#","exp":{}"#, NOW + 600)),
    );
    assert_eq!(refused(&mut v, &crit_null), TokenError::Critical);
    let kid_null = forge(
        &s,
        r#"{"alg":"EdDSA","kid":null}"#,
        &payload(&format!(r#","exp":{}"#, NOW + 600)),
    );
    assert_eq!(refused(&mut v, &kid_null), TokenError::BadHeader);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// The hand-written claims writer (the load engine rebuilds every token's text with it)
    /// writes the same bytes as serde_json, escapes and absent members included, so a token
    /// signed over one is verified over the other.
    #[test]
    fn claims_json_is_byte_for_byte_what_serde_json_writes(
        sub in "\\PC{0,12}|[\\x00-\\x1f\"\\\\a-z]{0,12}",
        exp in proptest::prelude::any::<u64>(),
        iat in proptest::prelude::any::<u64>(),
        nbf in proptest::option::of(proptest::prelude::any::<u64>()),
        iss in proptest::option::of("\\PC{0,8}|[\\x00-\\x1f\"\\\\]{0,4}"),
        aud in proptest::option::of("[ -~]{0,8}"),
        lines in proptest::collection::vec("[0-9\\x7f\\x00\"]{0,5}", 0..4),
        dev in proptest::option::of("CSF[0-9]{1,10}|\\PC{0,6}"),
    ) {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let claims = TokenClaims {
            sub: &sub,
            exp,
            iat,
            nbf,
            iss: iss.as_deref(),
            aud: aud.as_deref(),
            lines: &lines,
            dev: dev.as_deref(),
        };
        proptest::prop_assert_eq!(claims.to_json(), serde_json::to_vec(&claims).unwrap());
    }
}

/// A minted token's payload is the claims' JSON whether it fits the writer's stack buffer or
/// not (512 bytes: 32 lines of 20 digits take the heap path), and it verifies.
#[test]
fn minted_payload_is_the_claims_json_short_or_long() {
    let (s, mut v) = eddsa_setup();
    let many: Vec<String> = (0..32).map(|k| format!("{:020}", k)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for lines in [&["1010"][..], &many[..]] {
        let c = TokenClaims {
            lines,
            ..claims(NOW + 3600)
        };
        let token = s.mint(&c);
        let payload = B64.decode(token.split('.').nth(1).unwrap()).unwrap();
        assert_eq!(payload, serde_json::to_vec(&c).unwrap());
        assert_eq!(
            payload.len() > 512,
            lines.len() == 32,
            "{} bytes",
            payload.len()
        );
        let got = v.verify(token.as_bytes(), NOW).map(|t| t.exp);
        assert_eq!(got, Ok(NOW + 3600), "{} lines", lines.len());
    }
}
