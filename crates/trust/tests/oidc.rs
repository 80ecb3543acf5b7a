//! OIDC verification against a real issuer-side implementation: PyJWT with cryptography generates RSA,
//! EC and Ed25519 keys, publishes the JWKS and signs the tokens (tests/oidc_issuer.py). The URL and discovery
//! paths use a small Python http.server on 127.0.0.1 and a std::net fetcher.
//!
//! Without python3 these tests are skipped with a message; with python3 but without PyJWT they fail (CI
//! must install it: `pip install 'pyjwt[crypto]'`).

use quarry_trust::oidc::{
    verify_with_keys, Jwks, JwksFetcher, JwksSource, OidcConfig, OidcError, OidcIdentity, OidcRole,
    OidcVerifier, ReloadReason, ReloadReport,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "quarry";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_issuer.py")
}

/// The issuer: a folder of private keys made by PyJWT/cryptography. `None` (test skipped) without python3.
struct Issuer {
    dir: tempfile::TempDir,
}

impl Issuer {
    fn new() -> Option<Issuer> {
        if Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("SKIPPED: python3 is not installed; the OIDC interoperability tests need it");
            return None;
        }
        let check = Command::new("python3")
            .arg(script())
            .arg("check")
            .output()
            .expect("run python3");
        assert!(
            check.status.success(),
            "PyJWT with cryptography is missing (pip install 'pyjwt[crypto]'): {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("python3")
            .arg(script())
            .arg("keys")
            .arg(dir.path())
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "key generation failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Issuer { dir })
    }

    /// Runs `oidc_issuer.py sign`: returns the JWKS document and the tokens by name.
    fn sign(&self, request: Value) -> (Value, HashMap<String, String>) {
        let mut child = Command::new("python3")
            .arg(script())
            .arg("sign")
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(request.to_string().as_bytes())
            .expect("write request");
        let out = child.wait_with_output().expect("python3 output");
        assert!(
            out.status.success(),
            "signing failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from oidc_issuer.py");
        let tokens = v["tokens"]
            .as_object()
            .expect("tokens")
            .iter()
            .map(|(k, t)| (k.clone(), t.as_str().expect("token").to_string()))
            .collect();
        (v["jwks"].clone(), tokens)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims of a good analyst token, valid for 10 minutes.
fn claims(iss: &str) -> Value {
    let t = now();
    json!({
        "iss": iss, "aud": AUDIENCE, "sub": "user-42", "preferred_username": "alice",
        "iat": t, "nbf": t, "exp": t + 600,
        "quarry_role": "analyst", "quarry_namespaces": ["payments", "web"],
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("object") {
        base[k] = v.clone();
    }
    base
}

fn token(key: &str, alg: &str, claims: Value) -> Value {
    json!({"key": key, "alg": alg, "claims": claims})
}

fn config(jwks: JwksSource) -> OidcConfig {
    OidcConfig::new(ISSUER, AUDIENCE, jwks)
}

fn parse(jwks: &Value) -> Jwks {
    Jwks::parse(jwks.to_string().as_bytes()).expect("PyJWT's JWKS parses")
}

fn check(keys: &Jwks, token: &str) -> Result<OidcIdentity, OidcError> {
    verify_with_keys(
        &config(JwksSource::File("unused".into())),
        keys,
        token,
        now(),
    )
}

#[test]
fn pyjwt_tokens_of_every_algorithm_verify() {
    let Some(issuer) = Issuer::new() else { return };
    let c = claims(ISSUER);
    let (jwks, tokens) = issuer.sign(json!({
        "jwks": [
            {"key": "rsa1", "alg": "RS256"},
            {"key": "rsa2"},
            {"key": "ec256", "alg": "ES256"},
            {"key": "ec384"},
            {"key": "ed1", "alg": "EdDSA"},
        ],
        "tokens": {
            "RS256": token("rsa1", "RS256", c.clone()),
            "RS384": token("rsa2", "RS384", c.clone()),
            "RS512": token("rsa2", "RS512", c.clone()),
            "PS256": token("rsa2", "PS256", c.clone()),
            "PS384": token("rsa2", "PS384", c.clone()),
            "PS512": token("rsa2", "PS512", c.clone()),
            "ES256": token("ec256", "ES256", c.clone()),
            "ES384": token("ec384", "ES384", c.clone()),
            "EdDSA": token("ed1", "EdDSA", c.clone()),
            "no_kid": {"key": "ec384", "alg": "ES384", "claims": c.clone(), "headers": {"kid": null}},
        },
    }));
    let keys = parse(&jwks);
    assert_eq!(keys.len(), 5, "skipped: {:?}", keys.skipped());
    assert!(keys.skipped().is_empty());
    for (name, t) in &tokens {
        let id = check(&keys, t).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(id.subject, "user-42", "{name}");
        assert_eq!(id.name, "alice");
        assert_eq!(id.role, OidcRole::Analyst);
        assert_eq!(
            id.namespaces,
            Some(vec!["payments".to_string(), "web".to_string()])
        );
        assert!(!id.cluster);
        assert_eq!(id.expires_at, c["exp"].as_u64().unwrap());
    }
}

#[test]
fn pyjwt_bad_tokens_are_refused_with_clear_errors() {
    let Some(issuer) = Issuer::new() else { return };
    let c = claims(ISSUER);
    let t = now();
    let (jwks, tokens) = issuer.sign(json!({
        "jwks": [{"key": "rsa1", "alg": "RS256"}, {"key": "ec256"}, {"key": "ed1"}],
        "tokens": {
            "expired": token("rsa1", "RS256", with(c.clone(), json!({"iat": t - 7200, "nbf": t - 7200, "exp": t - 120}))),
            "expired_within_leeway": token("rsa1", "RS256", with(c.clone(), json!({"exp": t - 20}))),
            "not_yet_valid": token("ec256", "ES256", with(c.clone(), json!({"nbf": t + 600, "exp": t + 1200}))),
            "wrong_issuer": token("ed1", "EdDSA", with(c.clone(), json!({"iss": "https://evil.example"}))),
            "issuer_trailing_slash": token("ed1", "EdDSA", with(c.clone(), json!({"iss": format!("{ISSUER}/")}))),
            "wrong_audience": token("rsa1", "RS256", with(c.clone(), json!({"aud": "grafana"}))),
            "audience_array": token("rsa1", "RS256", with(c.clone(), json!({"aud": ["grafana", "quarry"]}))),
            "audience_array_without_us": token("rsa1", "RS256", with(c.clone(), json!({"aud": ["grafana", "kibana"]}))),
            "no_audience": token("rsa1", "RS256", with(c.clone(), json!({"aud": null}))),
            "good_rsa": token("rsa1", "RS256", c.clone()),
            "other_key_same_kid": {"key": "rsa2", "alg": "RS256", "claims": c.clone(), "headers": {"kid": "rsa1"}},
            "other_ec_key_same_kid": {"key": "ec256b", "alg": "ES256", "claims": c.clone(), "headers": {"kid": "ec256"}},
            "alg_none": {"alg": "none", "claims": with(c.clone(), json!({"quarry_role": "admin"})), "headers": {"kid": "rsa1"}},
            "hs256_with_rsa_public_key": {"key": "rsa1", "alg": "HS256", "claims": c.clone(), "headers": {"kid": "rsa1"}},
            "es256_on_rsa_kid": {"key": "ec256", "alg": "ES256", "claims": c.clone(), "headers": {"kid": "rsa1"}},
            "ps256_on_rs256_key": {"key": "rsa1", "alg": "PS256", "claims": c.clone()},
            "unknown_kid": {"key": "ec256", "alg": "ES256", "claims": c.clone(), "headers": {"kid": "retired-2019"}},
            "no_role": token("rsa1", "RS256", with(c.clone(), json!({"quarry_role": null}))),
        },
    }));
    let keys = parse(&jwks);
    let err = |name: &str| check(&keys, &tokens[name]).expect_err(name);

    let e = err("expired");
    assert!(matches!(e, OidcError::Expired { .. }), "{e}");
    assert!(e.to_string().starts_with("token expired at "), "{e}");
    assert!(check(&keys, &tokens["expired_within_leeway"]).is_ok());
    assert!(matches!(
        err("not_yet_valid"),
        OidcError::NotYetValid { .. }
    ));
    assert_eq!(
        err("wrong_issuer").to_string(),
        format!("wrong issuer \"https://evil.example\" (expected \"{ISSUER}\")")
    );
    assert!(matches!(
        err("issuer_trailing_slash"),
        OidcError::WrongIssuer { .. }
    ));
    assert_eq!(
        err("wrong_audience").to_string(),
        "wrong audience [\"grafana\"] (expected \"quarry\")"
    );
    assert!(check(&keys, &tokens["audience_array"]).is_ok());
    assert!(matches!(
        err("audience_array_without_us"),
        OidcError::WrongAudience { .. }
    ));
    assert!(matches!(
        err("no_audience"),
        OidcError::InvalidClaim { .. } | OidcError::MissingClaim(_)
    ));

    // Tampering: the payload of a good token, turned into an admin, with the original signature.
    let good = &tokens["good_rsa"];
    assert!(check(&keys, good).is_ok());
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    payload["quarry_role"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(payload.to_string()),
        parts[2]
    );
    assert_eq!(check(&keys, &forged), Err(OidcError::BadSignature));
    // The signature of one token on another's header and payload.
    let other: Vec<&str> = tokens["wrong_audience"].split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], parts[1], other[2]);
    assert_eq!(check(&keys, &spliced), Err(OidcError::BadSignature));

    assert_eq!(
        check(&keys, &tokens["other_key_same_kid"]),
        Err(OidcError::BadSignature)
    );
    assert_eq!(
        check(&keys, &tokens["other_ec_key_same_kid"]),
        Err(OidcError::BadSignature)
    );
    assert_eq!(err("alg_none"), OidcError::AlgNone);
    let e = err("hs256_with_rsa_public_key");
    assert!(matches!(e, OidcError::SymmetricAlgorithm(_)), "{e}");
    let e = err("es256_on_rsa_kid");
    assert_eq!(
        e.to_string(),
        "algorithm ES256 does not fit key \"rsa1\" (RSA key bound to RS256)"
    );
    assert!(matches!(
        err("ps256_on_rs256_key"),
        OidcError::AlgorithmKeyMismatch { .. }
    ));
    assert_eq!(
        err("unknown_kid").to_string(),
        "unknown key id \"retired-2019\": not in the issuer's key set"
    );
    assert!(matches!(err("no_role"), OidcError::NoRole(_)));

    // No message ever carries a token or a signature.
    for (name, t) in &tokens {
        if let Err(e) = check(&keys, t) {
            let text = e.to_string();
            for part in t.split('.').filter(|p| p.len() > 8) {
                assert!(!text.contains(part), "{name}: {text}");
            }
        }
    }
}

#[test]
fn garbage_tokens_never_panic() {
    let Some(issuer) = Issuer::new() else { return };
    let c = claims(ISSUER);
    let (jwks, tokens) = issuer.sign(json!({
        "jwks": [{"key": "rsa1"}, {"key": "ec384"}, {"key": "ed1"}],
        "tokens": {
            "rsa": token("rsa1", "RS256", c.clone()),
            "ec": token("ec384", "ES384", c.clone()),
            "ed": token("ed1", "EdDSA", c.clone()),
        },
    }));
    let keys = parse(&jwks);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for t in tokens.values() {
        assert!(check(&keys, t).is_ok());
        // Every prefix, every suffix.
        for cut in 0..t.len() {
            assert!(check(&keys, &t[..cut]).is_err());
            assert!(check(&keys, &t[cut + 1..]).is_err());
        }
        // Random single-character changes and segment shuffles.
        let chars: Vec<char> = t.chars().collect();
        let pool: Vec<char> = "AZaz09-_.=+/ é\u{0}".chars().collect();
        for _ in 0..500 {
            let mut m = chars.clone();
            let i = (next() % m.len() as u64) as usize;
            let replacement = pool[(next() % pool.len() as u64) as usize];
            if m[i] == replacement {
                continue;
            }
            m[i] = replacement;
            let m: String = m.into_iter().collect();
            assert!(check(&keys, &m).is_err(), "mutation at {i} accepted");
        }
        let parts: Vec<&str> = t.split('.').collect();
        for bad in [
            format!("{}.{}", parts[0], parts[1]),
            format!("{}..{}", parts[0], parts[2]),
            format!(".{}.{}", parts[1], parts[2]),
            format!("{}.{}.{}.", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[1], parts[0], parts[2]),
            format!("{} .{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], "A".repeat(10_000)),
            t.repeat(40),
        ] {
            assert!(check(&keys, &bad).is_err());
        }
    }
    for _ in 0..3000 {
        let len = (next() % 300) as usize;
        let junk: String = (0..len)
            .map(|_| char::from_u32((next() % 0x250) as u32).unwrap_or('?'))
            .collect();
        assert!(check(&keys, &junk).is_err());
    }
    for junk in [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "e30.e30.",
        "e30.e30.e30",
        "bnVsbA.bnVsbA.AA",
    ] {
        assert!(check(&keys, junk).is_err(), "{junk}");
    }
}

fn write_jwks(path: &Path, jwks: &Value) {
    // Write then rename, as a ConfigMap update does.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, jwks.to_string()).expect("write jwks");
    std::fs::rename(&tmp, path).expect("rename jwks");
}

#[test]
fn key_rotation_in_a_jwks_file() {
    let Some(issuer) = Issuer::new() else { return };
    let c = claims(ISSUER);
    let (old_set, tokens) = issuer.sign(json!({
        "jwks": [{"key": "rsa1", "alg": "RS256"}],
        "tokens": {
            "old": token("rsa1", "RS256", c.clone()),
            "new": token("ec256", "ES256", c.clone()),
        },
    }));
    let (both, _) = issuer
        .sign(json!({"jwks": [{"key": "rsa1", "alg": "RS256"}, {"key": "ec256", "alg": "ES256"}]}));
    let (only_new, _) = issuer.sign(json!({"jwks": [{"key": "ec256", "alg": "ES256"}]}));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    write_jwks(&path, &old_set);

    // 1. A token of a new key makes the verifier read the file again at once (file checks are hourly here).
    let mut cfg = config(JwksSource::File(path.clone()));
    cfg.file_check_interval = Duration::from_secs(3600);
    let reports: Arc<Mutex<Vec<ReloadReport>>> = Arc::default();
    let sink = reports.clone();
    let verifier = OidcVerifier::new(cfg, None)
        .expect("load")
        .with_reload_hook(move |r| sink.lock().unwrap().push(r.clone()));
    assert!(verifier.verify(&tokens["old"]).is_ok());
    assert!(matches!(
        verifier.verify(&tokens["new"]),
        Err(OidcError::UnknownKid { .. })
    ));
    assert_eq!(
        verifier.status().loads,
        2,
        "one forced read for the unknown kid"
    );
    write_jwks(&path, &both);
    // The forced read was just spent: rate limited, the new key is not seen yet.
    assert!(matches!(
        verifier.verify(&tokens["new"]),
        Err(OidcError::UnknownKid { .. })
    ));
    assert_eq!(verifier.status().loads, 2);

    // 2. A fresh verifier (nothing spent) picks up a rotation on the first token of the new key.
    let mut cfg = config(JwksSource::File(path.clone()));
    cfg.file_check_interval = Duration::from_secs(3600);
    write_jwks(&path, &old_set);
    let verifier = OidcVerifier::new(cfg, None)
        .expect("load")
        .with_reload_hook(move |r| reports.lock().unwrap().push(r.clone()));
    write_jwks(&path, &both);
    let id = verifier.verify(&tokens["new"]).expect("new key picked up");
    assert_eq!(id.subject, "user-42");
    let status = verifier.status();
    assert_eq!((status.keys, status.loads), (2, 2));
    assert_eq!(status.kids, vec!["rsa1".to_string(), "ec256".to_string()]);
    assert!(verifier.verify(&tokens["old"]).is_ok());

    // 3. With frequent file checks, a key removed from the file stops working without any token asking.
    let mut cfg = config(JwksSource::File(path.clone()));
    cfg.file_check_interval = Duration::ZERO;
    let seen: Arc<Mutex<Vec<ReloadReport>>> = Arc::default();
    let sink = seen.clone();
    let verifier = OidcVerifier::new(cfg, None)
        .expect("load")
        .with_reload_hook(move |r| sink.lock().unwrap().push(r.clone()));
    assert!(verifier.verify(&tokens["old"]).is_ok());
    let mut with_junk = only_new.clone();
    with_junk["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "oct", "kid": "shared", "k": "c2VjcmV0"}));
    write_jwks(&path, &with_junk);
    assert!(verifier.verify(&tokens["new"]).is_ok());
    let seen = seen.lock().unwrap().clone();
    let last = seen.last().expect("a reload was reported");
    assert_eq!(last.reason, ReloadReason::FileChanged);
    assert_eq!(last.result, Ok(1));
    assert_eq!(last.skipped.len(), 1);
    assert!(
        last.skipped[0].to_string().contains("symmetric key"),
        "{:?}",
        last.skipped
    );
    assert_eq!(verifier.status().skipped.len(), 1);
    // rsa1 is gone; its token is now for an unknown kid (the forced re-read finds nothing new).
    assert!(matches!(
        verifier.verify(&tokens["old"]),
        Err(OidcError::UnknownKid { .. })
    ));

    // 4. A broken file keeps the last good keys and says why.
    std::fs::write(&path, b"{\"keys\": [").unwrap();
    assert!(verifier.verify(&tokens["new"]).is_ok());
    let status = verifier.status();
    assert_eq!(status.keys, 1);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("not JSON"),
        "{status:?}"
    );
    let _ = std::fs::remove_file(&path);
    assert!(matches!(
        OidcVerifier::new(config(JwksSource::File(path)), None),
        Err(OidcError::Fetch { .. })
    ));
}

#[test]
fn unknown_kid_flood_is_rate_limited() {
    let Some(issuer) = Issuer::new() else { return };
    let c = claims(ISSUER);
    let (jwks, tokens) = issuer.sign(json!({
        "jwks": [{"key": "ed1"}],
        "tokens": {"good": token("ed1", "EdDSA", c.clone())},
    }));
    let body = Arc::new(Mutex::new(Ok::<Vec<u8>, String>(
        jwks.to_string().into_bytes(),
    )));
    let calls = Arc::new(AtomicUsize::new(0));
    let (b, n) = (body.clone(), calls.clone());
    let fetcher: JwksFetcher = Box::new(move |url: &str| {
        assert_eq!(url, "https://idp.example.test/keys");
        n.fetch_add(1, Ordering::SeqCst);
        b.lock().unwrap().clone()
    });
    let mut cfg = config(JwksSource::Url("https://idp.example.test/keys".into()));
    cfg.min_refresh_interval = Duration::from_millis(300);
    let verifier = Arc::new(OidcVerifier::new(cfg, Some(fetcher)).expect("load"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // 400 tokens with made-up kids from 4 threads: one fetch for all of them.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.encode(c.to_string());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let v = verifier.clone();
            let payload = payload.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
                        json!({"alg": "EdDSA", "kid": format!("bogus-{t}-{i}")}).to_string(),
                    );
                    let r = v.verify(&format!("{header}.{payload}.AAAA"));
                    assert!(matches!(r, Err(OidcError::UnknownKid { .. })), "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "initial load + one forced refresh"
    );
    assert!(verifier.verify(&tokens["good"]).is_ok());

    // After the interval, one more forced refresh is allowed. This one fails: the old keys stay in use.
    std::thread::sleep(Duration::from_millis(350));
    *body.lock().unwrap() = Err("connection refused".into());
    let header = b64.encode(json!({"alg": "EdDSA", "kid": "bogus-late"}).to_string());
    assert!(verifier
        .verify(&format!("{header}.{payload}.AAAA"))
        .is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(verifier.verify(&tokens["good"]).is_ok());
    let status = verifier.status();
    assert_eq!(
        status.last_error.as_deref(),
        Some("loading keys from https://idp.example.test/keys: connection refused")
    );
    assert_eq!(status.keys, 1);
    // Right after a failed load, unknown kids do not make the verifier ask again.
    for i in 0..50 {
        let header =
            b64.encode(json!({"alg": "EdDSA", "kid": format!("bogus-after-{i}")}).to_string());
        assert!(verifier
            .verify(&format!("{header}.{payload}.AAAA"))
            .is_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// The Python issuer's HTTP server on 127.0.0.1; killed and reaped when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new("python3")
            .arg(script())
            .arg("serve")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the issuer's HTTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port: u16 = line.trim().parse().expect("a port number");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn hits(&self, path: &str) -> u64 {
        let stats: Value =
            serde_json::from_slice(&http_get(&format!("{}/stats", self.base)).unwrap()).unwrap();
        stats[path].as_u64().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET for loopback test servers (the server wires a real client with TLS).
fn http_get(url: &str) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// in tests"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not loopback"));
    }
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .take(2 << 20)
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("HTTP {status}"));
    }
    Ok(response[split + 4..].to_vec())
}

#[test]
fn jwks_over_http_with_discovery() {
    let Some(issuer) = Issuer::new() else { return };
    let site = tempfile::tempdir().unwrap();
    let server = Server::start(site.path());
    let base = server.base.clone();
    let c = claims(&base);
    let (first, tokens) = issuer.sign(json!({
        "jwks": [{"key": "rsa1", "alg": "RS256"}, {"key": "ec256", "alg": "ES256"}],
        "tokens": {
            "ec": token("ec256", "ES256", c.clone()),
            "ed": token("ed1", "EdDSA", c.clone()),
            "other_issuer": token("ec256", "ES256", claims(ISSUER)),
        },
    }));
    let (rotated, _) = issuer.sign(json!({
        "jwks": [{"key": "rsa1", "alg": "RS256"}, {"key": "ec256", "alg": "ES256"}, {"key": "ed1", "alg": "EdDSA"}],
    }));
    write_jwks(&site.path().join("jwks.json"), &first);

    // Discovery: only the issuer is configured.
    let mut cfg = OidcConfig::new(base.clone(), AUDIENCE, JwksSource::Discover);
    cfg.allow_insecure_http = true;
    let verifier = OidcVerifier::new(cfg.clone(), Some(Box::new(http_get))).expect("discover");
    assert_eq!(verifier.status().source, format!("{base}/jwks.json"));
    let id = verifier
        .verify(&tokens["ec"])
        .expect("ES256 over discovery");
    assert_eq!(id.name, "alice");
    assert!(matches!(
        verifier.verify(&tokens["other_issuer"]),
        Err(OidcError::WrongIssuer { .. })
    ));
    const DISCOVERY: &str = "/.well-known/openid-configuration";
    assert_eq!((server.hits(DISCOVERY), server.hits("/jwks.json")), (1, 1));

    // Rotation: the issuer publishes an Ed25519 key while the verifier runs; the first token signed with it
    // makes the verifier fetch the key set again (discovery is not repeated).
    assert_eq!(verifier.status().keys, 2);
    write_jwks(&site.path().join("jwks.json"), &rotated);
    assert!(
        verifier.verify(&tokens["ed"]).is_ok(),
        "rotated key picked up"
    );
    assert_eq!(verifier.status().keys, 3);
    assert_eq!((server.hits(DISCOVERY), server.hits("/jwks.json")), (1, 2));

    // A flood of unknown kids: no new fetch (the forced refresh was just used).
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.encode(c.to_string());
    for i in 0..200 {
        let header = b64.encode(json!({"alg": "ES256", "kid": format!("made-up-{i}")}).to_string());
        assert!(matches!(
            verifier.verify(&format!("{header}.{payload}.AAAA")),
            Err(OidcError::UnknownKid { .. })
        ));
    }
    assert_eq!((server.hits(DISCOVERY), server.hits("/jwks.json")), (1, 2));

    // A JWKS URL given directly.
    let mut cfg = OidcConfig::new(
        base.clone(),
        AUDIENCE,
        JwksSource::Url(format!("{base}/jwks.json")),
    );
    cfg.allow_insecure_http = true;
    let direct = OidcVerifier::new(cfg.clone(), Some(Box::new(http_get))).expect("url");
    assert!(direct.verify(&tokens["ed"]).is_ok());
    assert_eq!((server.hits(DISCOVERY), server.hits("/jwks.json")), (1, 3));

    // Plain http is refused unless allowed; a 404 and a lying discovery document are clear errors.
    cfg.allow_insecure_http = false;
    let e = OidcVerifier::new(cfg, Some(Box::new(http_get))).unwrap_err();
    assert!(matches!(e, OidcError::Config(_)), "{e}");
    let mut cfg = OidcConfig::new(
        base.clone(),
        AUDIENCE,
        JwksSource::Url(format!("{base}/nothing.json")),
    );
    cfg.allow_insecure_http = true;
    let e = OidcVerifier::new(cfg, Some(Box::new(http_get))).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("loading keys from {base}/nothing.json: HTTP 404")
    );
    assert!(!e.is_token_error());
    let mut cfg = OidcConfig::new(format!("{base}/wrong"), AUDIENCE, JwksSource::Discover);
    cfg.allow_insecure_http = true;
    let e = OidcVerifier::new(cfg, Some(Box::new(http_get))).unwrap_err();
    assert!(matches!(e, OidcError::Discovery(_)), "{e}");
    assert!(
        e.to_string()
            .contains("names issuer \"https://evil.example\""),
        "{e}"
    );
}
