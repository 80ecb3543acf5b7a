//! OIDC bearer tokens: a JWT signed by the organisation's identity provider (Dex, Keycloak, Okta, Entra ID,
//! Google, a Kubernetes service-account issuer...) is checked against the issuer's published keys (JWKS) and
//! mapped to a Quarry role and a set of namespaces.
//!
//! # What is checked, in order
//!
//! 1. **Shape and size**: a compact JWS `header.payload.signature` (three base64url segments without padding),
//!    at most [`OidcConfig::max_token_bytes`]. Five segments (an encrypted JWE) are refused.
//! 2. **Algorithm**: only asymmetric algorithms are accepted: RS256/RS384/RS512, PS256/PS384/PS512,
//!    ES256/ES384 and EdDSA (Ed25519), further limited by [`OidcConfig::allowed_algorithms`]. `alg: none` is an
//!    unsigned token and is refused. HS256/HS384/HS512 are refused outright: an HMAC key is a shared secret and
//!    Quarry only ever holds the issuer's *public* keys; accepting HS* is the classic **algorithm confusion**
//!    attack, where the attacker signs with HMAC using the issuer's public key (which anyone can download) as
//!    the "secret". A header with `crit` is refused (no extension is understood). Key-carrying headers (`jku`,
//!    `x5u`, `jwk`, `x5c`) are ignored: keys only ever come from the configured key set, never from the token.
//! 3. **Key**: the header's `kid` picks the key. The key's type must fit the algorithm (an RSA key only checks
//!    RS*/PS*, a P-256 key only ES256, ...) and, when the key names an `alg`, it must be that algorithm: this is
//!    the second half of the algorithm-confusion defence, so that a token cannot choose how a key is used. A
//!    `kid` that is not in the key set is refused ([`OidcError::UnknownKid`]), except that a key set made of a
//!    single key without a `kid` serves every token. A token without `kid` is tried against every key that
//!    fits its algorithm.
//! 4. **Signature** (with `ring`) over the exact `header.payload` text. Only after it is valid are the claims
//!    read.
//! 5. **Claims**: `iss` must equal [`OidcConfig::issuer`] exactly (no normalisation: a trailing slash
//!    matters); `aud` (a string or an array) must contain [`OidcConfig::audience`]; `exp` is required and the
//!    token is refused from `exp + leeway` on; `nbf`, when present, must be at most `now + leeway`; `iat`, when
//!    present, must not be after `now + leeway`; `sub` is required. The **leeway** (default 60 s,
//!    [`OidcConfig::leeway`]) absorbs clock drift between the issuer and Quarry, no more: keep it short, since
//!    it also lengthens the life of a stolen token.
//! 6. **Mapping to Quarry's authorisation** ([`OidcIdentity`]): the role comes from the claim
//!    [`OidcConfig::role_claim`] (default `quarry_role`: `admin`, `analyst`, `auditor` or `ingest`), or else
//!    from the first entry of [`OidcConfig::group_roles`] whose group is in the claim
//!    [`OidcConfig::groups_claim`] (default `groups`), or else [`OidcConfig::default_role`]; without any, the
//!    token is refused ([`OidcError::NoRole`]). Namespaces come from [`OidcConfig::namespaces_claim`] (default
//!    `quarry_namespaces`, an array of namespace names, `"*"` for all); when absent, an admin gets all
//!    namespaces and anyone else none. Access to cluster-scoped events comes from
//!    [`OidcConfig::cluster_claim`] (default `quarry_cluster`, a boolean), else is granted to admins only.
//!
//! Errors ([`OidcError`]) say what failed ("token expired at ...", "wrong issuer "x" (expected "y")") and never
//! contain the token; values copied from a token (issuer, audience, kid) are cut to 100 characters and escaped,
//! so that they cannot forge log lines.
//!
//! # Key set and refresh
//!
//! [`OidcVerifier`] holds the key set ([`Jwks`]) from [`JwksSource`]:
//! - [`JwksSource::File`]: a JWKS file (e.g. a mounted ConfigMap). It is checked (one `stat`) at most every
//!   [`OidcConfig::file_check_interval`] (default 5 s) and read again when its modification time or size
//!   changed.
//! - [`JwksSource::Url`]: a JWKS URL, fetched again every [`OidcConfig::refresh_interval`] (default 1 h).
//! - [`JwksSource::Discover`]: only the issuer is known; `<issuer>/.well-known/openid-configuration` is
//!   fetched (OpenID Connect Discovery 1.0), its `issuer` must equal the configured issuer, and its `jwks_uri`
//!   is then used as the URL. Discovery is repeated after a failed key fetch.
//!
//! A token naming an unknown `kid` (the issuer rotated its keys) makes the verifier load the key set again at
//! once, then retry the token; such forced loads are **rate limited** to one per
//! [`OidcConfig::min_refresh_interval`] (default 30 s), so that a flood of tokens with made-up `kid`s cannot
//! hammer the issuer. Concurrent requests share one load. A load that fails, or that yields no usable key,
//! keeps the previous key set (the error is kept in [`KeySetStatus::last_error`] and reported to the hook of
//! [`OidcVerifier::with_reload_hook`]). Keys that cannot be used are skipped, each with a reason
//! ([`SkippedKey`]), never a panic.
//!
//! # Fetching URLs
//!
//! This crate has no HTTP client: the caller passes a [`JwksFetcher`], a closure that GETs a URL and returns
//! the body (or an error text), so that the server can use its own client, TLS roots and proxy settings. The
//! fetcher should use a timeout (a few seconds) and cap the body size; bodies over 1 MiB are refused here
//! anyway. With reqwest (blocking, rustls):
//!
//! ```ignore
//! let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
//! let fetcher: quarry_trust::oidc::JwksFetcher = Box::new(move |url: &str| {
//!     let resp = client.get(url).send().map_err(|e| e.to_string())?;
//!     if !resp.status().is_success() {
//!         return Err(format!("HTTP {}", resp.status()));
//!     }
//!     resp.bytes().map(|b| b.to_vec()).map_err(|e| e.to_string())
//! });
//! ```
//!
//! URLs must be `https://` unless [`OidcConfig::allow_insecure_http`] is set (tests, or an issuer on
//! loopback). [`OidcVerifier::verify`] may run the fetcher (a periodic or forced refresh), so it can block for
//! the fetcher's timeout: call it from a blocking context (e.g. `tokio::task::spawn_blocking`), or call
//! [`OidcVerifier::refresh`] from a background thread so that inline refreshes are rare.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest key set (file or HTTP body) that is parsed.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// Largest number of keys kept from one key set; further keys are skipped.
pub const MAX_KEYS: usize = 64;
/// Values copied from a token into an error message are cut to this many characters.
const SHOWN_CHARS: usize = 100;

/// Base64url without padding, as JWS compact serialisation requires (RFC 7515 section 2).
const B64_TOKEN: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);
/// Base64url for JWK members: padding is tolerated (some issuers add it).
const B64_JWK: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------------------------------------
// Algorithms and keys
// ---------------------------------------------------------------------------------------------------------

/// A JWS signature algorithm Quarry accepts (RFC 7518, RFC 8037). Symmetric (HS*) and `none` are absent on
/// purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// EdDSA with Ed25519 (`EdDSA`, or the fully specified `Ed25519`).
    EdDsa,
}

impl Algorithm {
    /// Every supported algorithm (the default of [`OidcConfig::allowed_algorithms`]).
    pub const ALL: [Algorithm; 9] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
    ];

    /// The JWS name (`RS256`, ..., `EdDSA`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm for a JWS name (case-sensitive, as JWS names are), or `None` when unsupported.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "EdDSA" | "Ed25519" => Algorithm::EdDsa,
            _ => return None,
        })
    }

    /// The kind of key this algorithm needs.
    pub fn key_type(self) -> KeyType {
        match self {
            Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Ps256
            | Algorithm::Ps384
            | Algorithm::Ps512 => KeyType::Rsa,
            Algorithm::Es256 => KeyType::EcP256,
            Algorithm::Es384 => KeyType::EcP384,
            Algorithm::EdDsa => KeyType::Ed25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of a public key in the key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA (`kty: RSA`), 2048 to 8192 bits.
    Rsa,
    /// ECDSA on P-256 (`kty: EC`, `crv: P-256`).
    EcP256,
    /// ECDSA on P-384 (`kty: EC`, `crv: P-384`).
    EcP384,
    /// Ed25519 (`kty: OKP`, `crv: Ed25519`).
    Ed25519,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "RSA key",
            KeyType::EcP256 => "EC P-256 key",
            KeyType::EcP384 => "EC P-384 key",
            KeyType::Ed25519 => "Ed25519 key",
        })
    }
}

/// The public part of a key, decoded and checked.
#[derive(Clone, PartialEq, Eq)]
enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros (as ring wants them).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed point `04 || x || y`.
    Ec { curve: KeyType, point: Vec<u8> },
    /// The 32-byte public key.
    Ed25519 { x: Vec<u8> },
}

/// One usable key of a key set.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwk {
    /// The key id (`kid`), if the key has one.
    pub kid: Option<String>,
    /// The algorithm the key is bound to (`alg`), if it names one; tokens for this key must use it.
    pub alg: Option<Algorithm>,
    key: PublicKey,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("type", &self.key_type())
            .finish()
    }
}

impl Jwk {
    /// The kind of key.
    pub fn key_type(&self) -> KeyType {
        match &self.key {
            PublicKey::Rsa { .. } => KeyType::Rsa,
            PublicKey::Ec { curve, .. } => *curve,
            PublicKey::Ed25519 { .. } => KeyType::Ed25519,
        }
    }

    /// Whether a token signed with `alg` may be checked with this key (key type fits, and the key's own `alg`,
    /// if any, is the same).
    pub fn accepts(&self, alg: Algorithm) -> bool {
        alg.key_type() == self.key_type() && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks `signature` over `message` with this key and `alg`; false when invalid or when the key does not
    /// accept `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature as sig;
        if !self.accepts(alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa { n, e } => {
                let params: &sig::RsaParameters = match alg {
                    Algorithm::Rs256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::Rs384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::Rs512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::Ps256 => &sig::RSA_PSS_2048_8192_SHA256,
                    Algorithm::Ps384 => &sig::RSA_PSS_2048_8192_SHA384,
                    Algorithm::Ps512 => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                sig::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            PublicKey::Ec { curve, point } => {
                let algorithm: &'static dyn sig::VerificationAlgorithm = match curve {
                    KeyType::EcP256 => &sig::ECDSA_P256_SHA256_FIXED,
                    KeyType::EcP384 => &sig::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                sig::UnparsedPublicKey::new(algorithm, point)
                    .verify(message, signature)
                    .is_ok()
            }
            PublicKey::Ed25519 { x } => sig::UnparsedPublicKey::new(&sig::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// A key of a key set that was not kept, and why (for the operator's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position of the key in the set's `keys` array.
    pub index: usize,
    /// Its `kid`, if it had a readable one (escaped, cut to 100 characters).
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key #{} (kid {kid}): {}", self.index, self.reason),
            None => write!(f, "key #{}: {}", self.index, self.reason),
        }
    }
}

/// A parsed key set (RFC 7517 JWK Set): the usable signature keys, and the skipped ones with reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Jwk>,
    skipped: Vec<SkippedKey>,
}

impl Jwks {
    /// Parses a JWK Set document (`{"keys": [...]}`). Fails only when the document itself is unreadable (not
    /// JSON, no `keys` array, over [`MAX_JWKS_BYTES`]); each unusable key is skipped with a reason instead.
    pub fn parse(bytes: &[u8]) -> Result<Jwks, OidcError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(OidcError::KeySet(format!(
                "key set of {} bytes is over the {MAX_JWKS_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| OidcError::KeySet(format!("not JSON: {e}")))?;
        let list = doc
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                OidcError::KeySet("not a JWK Set: no \"keys\" array at the top level".into())
            })?;
        let mut set = Jwks::default();
        for (index, entry) in list.iter().enumerate() {
            let kid = entry.get("kid").and_then(Value::as_str).map(shown);
            if set.keys.len() >= MAX_KEYS {
                set.skipped.push(SkippedKey {
                    index,
                    kid,
                    reason: format!("more than {MAX_KEYS} usable keys in the set"),
                });
                continue;
            }
            match parse_jwk(entry) {
                Ok(key) => set.keys.push(key),
                Err(reason) => set.skipped.push(SkippedKey { index, kid, reason }),
            }
        }
        Ok(set)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The keys that were skipped, with reasons.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Finds the key for a token and checks its signature; see the module documentation, step 3.
    fn check_signature(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), OidcError> {
        let candidates: Vec<&Jwk> = match kid {
            Some(kid) => {
                let named: Vec<&Jwk> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .collect();
                if !named.is_empty() {
                    named
                } else if self.keys.len() == 1 && self.keys[0].kid.is_none() {
                    // A set of one key without kid serves every token.
                    vec![&self.keys[0]]
                } else {
                    return Err(OidcError::UnknownKid { kid: shown(kid) });
                }
            }
            None => self.keys.iter().collect(),
        };
        let fitting: Vec<&Jwk> = candidates
            .iter()
            .copied()
            .filter(|k| k.accepts(alg))
            .collect();
        if fitting.is_empty() {
            return Err(match (kid, candidates.first()) {
                (Some(kid), Some(key)) => OidcError::AlgorithmKeyMismatch {
                    alg: alg.name().to_string(),
                    kid: shown(kid),
                    key: match key.alg {
                        Some(a) if a.key_type() == key.key_type() => {
                            format!("{} bound to {a}", key.key_type())
                        }
                        _ => key.key_type().to_string(),
                    },
                },
                _ => OidcError::NoSuitableKey {
                    alg: alg.name().to_string(),
                },
            });
        }
        if fitting.iter().any(|k| k.verify(alg, message, signature)) {
            Ok(())
        } else {
            Err(OidcError::BadSignature)
        }
    }
}

/// Decodes one key; `Err` is the reason it is skipped.
fn parse_jwk(entry: &Value) -> Result<Jwk, String> {
    let obj = entry.as_object().ok_or("not a JSON object")?;
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"kid\" is not a string".into()),
    };
    match obj.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) => {
            return Err(format!(
                "\"use\" is {}, not \"sig\": not a signature key",
                shown(u)
            ))
        }
        Some(_) => return Err("\"use\" is not a string".into()),
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("\"key_ops\" is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("\"key_ops\" does not allow \"verify\"".into());
        }
    }
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(Algorithm::from_name(name).ok_or_else(|| {
            if name.starts_with("HS") {
                format!("algorithm {} is symmetric: never trusted", shown(name))
            } else {
                format!("unsupported algorithm {}", shown(name))
            }
        })?),
        Some(_) => return Err("\"alg\" is not a string".into()),
    };
    let kty = obj
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("no \"kty\" string")?;
    if obj.contains_key("d") && kty != "oct" {
        return Err(
            "contains private key material (\"d\"): anyone could forge tokens with it".into(),
        );
    }
    let member = |name: &str| -> Result<Vec<u8>, String> {
        let text = obj
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no \"{name}\" string"))?;
        B64_JWK
            .decode(text)
            .map_err(|e| format!("\"{name}\" is not base64url: {e}"))
    };
    let key = match kty {
        "RSA" => {
            let n = strip_zeros(member("n")?);
            let e = strip_zeros(member("e")?);
            let bits = bit_length(&n);
            if bits < 2048 {
                return Err(format!(
                    "RSA modulus of {bits} bits is under the 2048-bit minimum"
                ));
            }
            if bits > 8192 {
                return Err(format!(
                    "RSA modulus of {bits} bits is over the 8192-bit maximum"
                ));
            }
            if n.last().is_some_and(|b| b & 1 == 0) {
                return Err("RSA modulus is even".into());
            }
            let e_value = if e.len() > 5 {
                u64::MAX
            } else {
                e.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b))
            };
            if e_value < 3 || e_value & 1 == 0 || e_value > (1 << 33) - 1 {
                return Err("RSA exponent must be odd, at least 3 and under 2^33".into());
            }
            PublicKey::Rsa { n, e }
        }
        "EC" => {
            let crv = obj
                .get("crv")
                .and_then(Value::as_str)
                .ok_or("no \"crv\" string")?;
            let (curve, size, agreement) = match crv {
                "P-256" => (KeyType::EcP256, 32, &ring::agreement::ECDH_P256),
                "P-384" => (KeyType::EcP384, 48, &ring::agreement::ECDH_P384),
                other => return Err(format!("unsupported EC curve {}", shown(other))),
            };
            let x = member("x")?;
            let y = member("y")?;
            if x.len() != size || y.len() != size {
                return Err(format!(
                    "{crv} coordinates must be {size} bytes each, got {} and {}",
                    x.len(),
                    y.len()
                ));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if !ec_point_is_valid(agreement, &point) {
                return Err(format!("point is not on curve {crv}"));
            }
            PublicKey::Ec { curve, point }
        }
        "OKP" => {
            let crv = obj
                .get("crv")
                .and_then(Value::as_str)
                .ok_or("no \"crv\" string")?;
            if crv != "Ed25519" {
                return Err(format!(
                    "unsupported OKP curve {} (only Ed25519 signs)",
                    shown(crv)
                ));
            }
            let x = member("x")?;
            if x.len() != 32 {
                return Err(format!("Ed25519 key must be 32 bytes, got {}", x.len()));
            }
            PublicKey::Ed25519 { x }
        }
        "oct" => return Err("symmetric key (kty \"oct\"): never trusted".into()),
        other => return Err(format!("unsupported key type {}", shown(other))),
    };
    let jwk = Jwk { kid, alg, key };
    if let Some(a) = alg {
        if a.key_type() != jwk.key_type() {
            return Err(format!("\"alg\" {a} does not fit an {}", jwk.key_type()));
        }
    }
    Ok(jwk)
}

/// Full public-key validation of an EC point (on the curve, not the identity): ring checks the peer's point
/// when it computes an ECDH agreement with a throw-away key on the same curve.
fn ec_point_is_valid(algorithm: &'static ring::agreement::Algorithm, point: &[u8]) -> bool {
    let rng = ring::rand::SystemRandom::new();
    let Ok(mine) = ring::agreement::EphemeralPrivateKey::generate(algorithm, &rng) else {
        return false;
    };
    let peer = ring::agreement::UnparsedPublicKey::new(algorithm, point);
    ring::agreement::agree_ephemeral(mine, &peer, |_| ()).is_ok()
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.first() {
        None => 0,
        Some(first) => big_endian.len() * 8 - first.leading_zeros() as usize,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Roles and identity
// ---------------------------------------------------------------------------------------------------------

/// A Quarry role granted by a token: the same roles as API tokens have.
pub use crate::auth::Role as OidcRole;

/// Parses one `GROUP=ROLE` mapping (a `--oidc-group-role` flag). The split is at the last `=`, so that group
/// names such as LDAP DNs (`cn=ops,ou=groups,dc=example`) work.
pub fn parse_group_role(spec: &str) -> Result<(String, OidcRole), OidcError> {
    let (group, role) = spec.rsplit_once('=').ok_or_else(|| {
        OidcError::Config(format!("group mapping {} is not GROUP=ROLE", shown(spec)))
    })?;
    if group.is_empty() {
        return Err(OidcError::Config(format!(
            "group mapping {} has an empty group",
            shown(spec)
        )));
    }
    let role = role.parse().map_err(OidcError::Config)?;
    Ok((group.to_string(), role))
}

/// Who a valid token speaks for, and what it may do in Quarry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The `sub` claim: the issuer's stable id for the person or program.
    pub subject: String,
    /// A name for logs and the audit trail: `preferred_username`, else `email`, else `sub`.
    pub name: String,
    /// The Quarry role granted.
    pub role: OidcRole,
    /// The namespaces whose events may be read: `None` for all, `Some(list)` for those only (possibly none).
    pub namespaces: Option<Vec<String>>,
    /// Whether cluster-scoped events (not in a namespace) may be read.
    pub cluster: bool,
    /// When the token expires (its `exp`, Unix seconds; the leeway is not added).
    pub expires_at: u64,
}

// ---------------------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------------------

/// Where the issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS URL, fetched with the [`JwksFetcher`].
    Url(String),
    /// A JWKS file, read again when it changes.
    File(PathBuf),
    /// Only the issuer is known: `<issuer>/.well-known/openid-configuration` gives `jwks_uri`.
    Discover,
}

impl JwksSource {
    /// Reads a `--oidc-jwks URL|FILE` value: `http://` or `https://` is a URL, anything else a file path.
    pub fn from_flag(value: &str) -> JwksSource {
        if value.starts_with("https://") || value.starts_with("http://") {
            JwksSource::Url(value.to_string())
        } else {
            JwksSource::File(PathBuf::from(value))
        }
    }

    fn describe(&self, issuer: &str) -> String {
        match self {
            JwksSource::Url(url) => url.clone(),
            JwksSource::File(path) => path.display().to_string(),
            JwksSource::Discover => format!("discovery at {}", discovery_url(issuer)),
        }
    }
}

/// What an OIDC verifier checks and how it maps claims; [`OidcConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// The expected `iss`, compared exactly (e.g. `https://dex.example.com`).
    pub issuer: String,
    /// The audience Quarry must be in (`aud`), e.g. the OAuth client id `quarry`.
    pub audience: String,
    /// Where the keys come from.
    pub jwks: JwksSource,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 60 s).
    pub leeway: Duration,
    /// Algorithms accepted (default: all of [`Algorithm::ALL`]).
    pub allowed_algorithms: Vec<Algorithm>,
    /// Claim holding the role name (default `quarry_role`).
    pub role_claim: String,
    /// Claim holding the groups (default `groups`), used with [`OidcConfig::group_roles`].
    pub groups_claim: String,
    /// Ordered `group -> role` mapping; the first entry whose group the token has wins, so list the most
    /// privileged first. Used only when the role claim is absent.
    pub group_roles: Vec<(String, OidcRole)>,
    /// Role for a token with neither role claim nor mapped group (default none: such tokens are refused).
    pub default_role: Option<OidcRole>,
    /// Claim holding the namespaces (default `quarry_namespaces`).
    pub namespaces_claim: String,
    /// Claim holding the cluster-scope flag (default `quarry_cluster`).
    pub cluster_claim: String,
    /// How often a URL key set is fetched again (default 1 h).
    pub refresh_interval: Duration,
    /// How often a key file is checked for changes (default 5 s).
    pub file_check_interval: Duration,
    /// Least time between two loads forced by unknown `kid`s, and between retries after a failed load
    /// (default 30 s).
    pub min_refresh_interval: Duration,
    /// Accept `http://` URLs for discovery and keys (default false: `https://` only).
    pub allow_insecure_http: bool,
    /// Longest token accepted, in bytes (default 32 KiB).
    pub max_token_bytes: usize,
}

impl OidcConfig {
    /// A configuration with the defaults documented on each field.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: JwksSource,
    ) -> OidcConfig {
        OidcConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            leeway: Duration::from_secs(60),
            allowed_algorithms: Algorithm::ALL.to_vec(),
            role_claim: "quarry_role".into(),
            groups_claim: "groups".into(),
            group_roles: Vec::new(),
            default_role: None,
            namespaces_claim: "quarry_namespaces".into(),
            cluster_claim: "quarry_cluster".into(),
            refresh_interval: Duration::from_secs(3600),
            file_check_interval: Duration::from_secs(5),
            min_refresh_interval: Duration::from_secs(30),
            allow_insecure_http: false,
            max_token_bytes: 32 * 1024,
        }
    }

    /// Checks the configuration for mistakes that would make every token fail.
    pub fn validate(&self) -> Result<(), OidcError> {
        if self.issuer.is_empty() {
            return Err(OidcError::Config("the issuer is empty".into()));
        }
        if self.audience.is_empty() {
            return Err(OidcError::Config("the audience is empty".into()));
        }
        if self.allowed_algorithms.is_empty() {
            return Err(OidcError::Config("no algorithm is allowed".into()));
        }
        if self.role_claim.is_empty()
            || self.groups_claim.is_empty()
            || self.namespaces_claim.is_empty()
            || self.cluster_claim.is_empty()
        {
            return Err(OidcError::Config("a claim name is empty".into()));
        }
        match &self.jwks {
            JwksSource::Url(url) => self.check_url(url)?,
            JwksSource::Discover => self.check_url(&self.issuer)?,
            JwksSource::File(path) => {
                if path.as_os_str().is_empty() {
                    return Err(OidcError::Config("the JWKS file path is empty".into()));
                }
            }
        }
        Ok(())
    }

    fn check_url(&self, url: &str) -> Result<(), OidcError> {
        if url.starts_with("https://") || (self.allow_insecure_http && url.starts_with("http://")) {
            Ok(())
        } else if url.starts_with("http://") {
            Err(OidcError::Config(format!(
                "{} is plain http: keys must come over https (or allow insecure http for tests)",
                shown(url)
            )))
        } else {
            Err(OidcError::Config(format!(
                "{} is not an https:// URL",
                shown(url)
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/// Why a token was refused, or why the key set could not be had. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Not a well-formed compact JWS JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Longer than [`OidcConfig::max_token_bytes`].
    #[error("token of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The token's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Five segments: an encrypted token.
    #[error("encrypted tokens (JWE) are not supported")]
    Encrypted,
    /// `alg: none`.
    #[error("unsigned token (alg \"none\") refused")]
    AlgNone,
    /// HS256/HS384/HS512.
    #[error("symmetric algorithm {0} refused: only the issuer's public keys are trusted")]
    SymmetricAlgorithm(String),
    /// An algorithm this verifier does not implement.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// Supported, but not in [`OidcConfig::allowed_algorithms`].
    #[error("algorithm {0} is not allowed by the configuration")]
    AlgorithmNotAllowed(String),
    /// The header has `crit`.
    #[error("token requires header extensions this verifier does not understand (crit)")]
    CriticalHeader,
    /// The `kid` is not in the key set (even after a refresh, when one was allowed).
    #[error("unknown key id {kid}: not in the issuer's key set")]
    UnknownKid {
        /// The token's `kid` (escaped, cut).
        kid: String,
    },
    /// No key of the set can check the token's algorithm (token without `kid`, or empty set).
    #[error("no key in the issuer's key set can check algorithm {alg}")]
    NoSuitableKey {
        /// The token's algorithm.
        alg: String,
    },
    /// The key named by `kid` is of another type or bound to another algorithm (algorithm confusion).
    #[error("algorithm {alg} does not fit key {kid} ({key})")]
    AlgorithmKeyMismatch {
        /// The token's algorithm.
        alg: String,
        /// The token's `kid` (escaped, cut).
        kid: String,
        /// What the key is.
        key: String,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp + leeway <= now`.
    #[error("token expired at {} (now {}, leeway {leeway} s)", fmt_unix(*.exp), fmt_unix(*.now as i64))]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The time of the check.
        now: u64,
        /// Leeway in seconds.
        leeway: u64,
    },
    /// `nbf > now + leeway`.
    #[error("token not valid before {} (now {}, leeway {leeway} s)", fmt_unix(*.nbf), fmt_unix(*.now as i64))]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The time of the check.
        now: u64,
        /// Leeway in seconds.
        leeway: u64,
    },
    /// `iat > now + leeway`.
    #[error("token issued in the future at {} (now {}, leeway {leeway} s)", fmt_unix(*.iat), fmt_unix(*.now as i64))]
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
        /// The time of the check.
        now: u64,
        /// Leeway in seconds.
        leeway: u64,
    },
    /// A required claim is absent.
    #[error("missing claim {0:?}")]
    MissingClaim(String),
    /// A claim has the wrong type or value.
    #[error("invalid claim {claim:?}: {reason}")]
    InvalidClaim {
        /// The claim name.
        claim: String,
        /// What is wrong.
        reason: String,
    },
    /// `iss` is not the configured issuer.
    #[error("wrong issuer {got} (expected {expected:?})")]
    WrongIssuer {
        /// The token's `iss` (escaped, cut).
        got: String,
        /// The configured issuer.
        expected: String,
    },
    /// `aud` does not contain the configured audience.
    #[error("wrong audience {got} (expected {expected:?})")]
    WrongAudience {
        /// The token's `aud` (escaped, cut).
        got: String,
        /// The configured audience.
        expected: String,
    },
    /// Neither the role claim, nor a mapped group, nor a default role.
    #[error("token grants no Quarry role: {0}")]
    NoRole(String),
    /// The key set document is unusable.
    #[error("issuer key set: {0}")]
    KeySet(String),
    /// The key set could not be fetched or read.
    #[error("loading keys from {source_name}: {reason}")]
    Fetch {
        /// URL or file.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// OIDC discovery failed.
    #[error("OIDC discovery: {0}")]
    Discovery(String),
    /// The configuration is unusable.
    #[error("OIDC configuration: {0}")]
    Config(String),
}

impl OidcError {
    /// True when the token itself is at fault (answer 401); false when the verifier could not get keys or is
    /// misconfigured (a server-side problem worth logging loudly; still refuse the request).
    pub fn is_token_error(&self) -> bool {
        !matches!(
            self,
            OidcError::KeySet(_)
                | OidcError::Fetch { .. }
                | OidcError::Discovery(_)
                | OidcError::Config(_)
        )
    }
}

/// A value taken from outside (token, key set) made safe for a message: cut and escaped, in quotes.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(SHOWN_CHARS).collect();
    let mut out = format!("{cut:?}");
    if cut.len() < s.len() {
        out.push('…');
    }
    out
}

/// `2024-05-01T12:00:00Z` for Unix seconds (proleptic Gregorian, UTC).
fn fmt_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from a day count (the well-known era-based conversion).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------------------
// Token verification against a given key set (no I/O)
// ---------------------------------------------------------------------------------------------------------

/// Checks `token` against `keys` and `config` at time `now` (Unix seconds) and maps it to an identity. This is
/// all of [`OidcVerifier::verify`] but the key management; the token has no `Bearer ` prefix.
pub fn verify_with_keys(
    config: &OidcConfig,
    keys: &Jwks,
    token: &str,
    now: u64,
) -> Result<OidcIdentity, OidcError> {
    if token.len() > config.max_token_bytes {
        return Err(OidcError::TooLarge {
            len: token.len(),
            max: config.max_token_bytes,
        });
    }
    let segments: Vec<&str> = token.split('.').collect();
    match segments.len() {
        3 => {}
        5 => return Err(OidcError::Encrypted),
        n => {
            return Err(OidcError::Malformed(format!(
                "{n} dot-separated segments, expected 3"
            )))
        }
    }
    let header = decode_json_object(segments[0], "header")?;
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(OidcError::Malformed(
                "header \"alg\" is not a string".into(),
            ))
        }
        None => return Err(OidcError::Malformed("header has no \"alg\"".into())),
    };
    let alg = match Algorithm::from_name(alg_name) {
        Some(a) => a,
        None if alg_name.eq_ignore_ascii_case("none") => return Err(OidcError::AlgNone),
        None if alg_name.starts_with("HS") => {
            return Err(OidcError::SymmetricAlgorithm(shown(alg_name)))
        }
        None => return Err(OidcError::UnsupportedAlgorithm(shown(alg_name))),
    };
    if !config.allowed_algorithms.contains(&alg) {
        return Err(OidcError::AlgorithmNotAllowed(alg.name().to_string()));
    }
    if header.contains_key("crit") {
        return Err(OidcError::CriticalHeader);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(OidcError::Malformed(
                "header \"kid\" is not a string".into(),
            ))
        }
    };
    let signature = B64_TOKEN
        .decode(segments[2])
        .map_err(|e| OidcError::Malformed(format!("signature is not base64url: {e}")))?;
    let signed_len = segments[0].len() + 1 + segments[1].len();
    keys.check_signature(alg, kid, &token.as_bytes()[..signed_len], &signature)?;

    let claims = decode_json_object(segments[1], "payload")?;
    check_claims(config, &claims, now)?;
    map_identity(config, &claims)
}

fn decode_json_object(segment: &str, what: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = B64_TOKEN
        .decode(segment)
        .map_err(|e| OidcError::Malformed(format!("{what} is not base64url: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(OidcError::Malformed(format!("{what} is not a JSON object"))),
        Err(e) => Err(OidcError::Malformed(format!("{what} is not JSON: {e}"))),
    }
}

/// A NumericDate (RFC 7519 section 2): seconds, possibly fractional; fractions are dropped.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, OidcError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_i64() {
                Ok(Some(v))
            } else if n.as_u64().is_some() {
                Ok(Some(i64::MAX))
            } else {
                // Finite by construction (JSON has no NaN); `as` saturates.
                Ok(Some(n.as_f64().unwrap_or(0.0).floor() as i64))
            }
        }
        Some(_) => Err(OidcError::InvalidClaim {
            claim: name.to_string(),
            reason: "not a number of seconds".into(),
        }),
    }
}

fn check_claims(
    config: &OidcConfig,
    claims: &Map<String, Value>,
    now: u64,
) -> Result<(), OidcError> {
    match claims.get("iss") {
        None => return Err(OidcError::MissingClaim("iss".into())),
        Some(Value::String(iss)) if *iss == config.issuer => {}
        Some(Value::String(iss)) => {
            return Err(OidcError::WrongIssuer {
                got: shown(iss),
                expected: config.issuer.clone(),
            })
        }
        Some(_) => {
            return Err(OidcError::InvalidClaim {
                claim: "iss".into(),
                reason: "not a string".into(),
            })
        }
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        None => return Err(OidcError::MissingClaim("aud".into())),
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| OidcError::InvalidClaim {
                    claim: "aud".into(),
                    reason: "an array entry is not a string".into(),
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(OidcError::InvalidClaim {
                claim: "aud".into(),
                reason: "neither a string nor an array of strings".into(),
            })
        }
    };
    if !audiences.contains(&config.audience.as_str()) {
        let mut got: Vec<String> = audiences.iter().take(5).map(|a| shown(a)).collect();
        if audiences.len() > 5 {
            got.push(format!("and {} more", audiences.len() - 5));
        }
        return Err(OidcError::WrongAudience {
            got: format!("[{}]", got.join(", ")),
            expected: config.audience.clone(),
        });
    }
    let now_i = i128::from(now);
    let leeway = config.leeway.as_secs();
    let leeway_i = i128::from(leeway);
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| OidcError::MissingClaim("exp".into()))?;
    if i128::from(exp) + leeway_i <= now_i {
        return Err(OidcError::Expired { exp, now, leeway });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if i128::from(nbf) > now_i + leeway_i {
            return Err(OidcError::NotYetValid { nbf, now, leeway });
        }
    }
    if let Some(iat) = numeric_date(claims, "iat")? {
        if i128::from(iat) > now_i + leeway_i {
            return Err(OidcError::IssuedInFuture { iat, now, leeway });
        }
    }
    Ok(())
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, OidcError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(OidcError::InvalidClaim {
            claim: name.to_string(),
            reason: "not a string".into(),
        }),
    }
}

/// A claim that is a string or an array of strings.
fn string_list_claim(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, OidcError> {
    let invalid = |reason: &str| OidcError::InvalidClaim {
        claim: name.to_string(),
        reason: reason.to_string(),
    };
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid("an array entry is not a string"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid("neither a string nor an array of strings")),
    }
}

/// A Kubernetes namespace name: an RFC 1123 label (lower-case letters, digits, `-`, at most 63).
fn is_namespace_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn map_identity(
    config: &OidcConfig,
    claims: &Map<String, Value>,
) -> Result<OidcIdentity, OidcError> {
    let subject = match string_claim(claims, "sub")? {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return Err(OidcError::MissingClaim("sub".into())),
    };
    let name = ["preferred_username", "email"]
        .iter()
        .find_map(|c| {
            claims
                .get(*c)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or(&subject)
        .to_string();

    let role = if let Some(text) = string_claim(claims, &config.role_claim)? {
        text.parse::<OidcRole>()
            .map_err(|reason| OidcError::InvalidClaim {
                claim: config.role_claim.clone(),
                reason,
            })?
    } else {
        let groups = if config.group_roles.is_empty() {
            None
        } else {
            string_list_claim(claims, &config.groups_claim)?
        };
        let mapped = groups.as_ref().and_then(|groups| {
            config
                .group_roles
                .iter()
                .find(|(g, _)| groups.iter().any(|t| t == g))
                .map(|(_, r)| *r)
        });
        match mapped.or(config.default_role) {
            Some(r) => r,
            None => {
                return Err(OidcError::NoRole(if config.group_roles.is_empty() {
                    format!("no {:?} claim", config.role_claim)
                } else {
                    format!(
                        "no {:?} claim and no group in {:?} is mapped to a role",
                        config.role_claim, config.groups_claim
                    )
                }))
            }
        }
    };

    let namespaces = match string_list_claim(claims, &config.namespaces_claim)? {
        None if role == OidcRole::Admin => None,
        None => Some(Vec::new()),
        Some(list) if list.iter().any(|n| n == "*") => None,
        Some(list) => {
            if let Some(bad) = list.iter().find(|n| !is_namespace_name(n)) {
                return Err(OidcError::InvalidClaim {
                    claim: config.namespaces_claim.clone(),
                    reason: format!("{} is not a namespace name", shown(bad)),
                });
            }
            let mut list = list;
            list.sort();
            list.dedup();
            Some(list)
        }
    };

    let cluster = match claims.get(&config.cluster_claim) {
        None | Some(Value::Null) => role == OidcRole::Admin,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(OidcError::InvalidClaim {
                claim: config.cluster_claim.clone(),
                reason: "not a boolean".into(),
            })
        }
    };

    let expires_at = numeric_date(claims, "exp")?
        .map(|e| u64::try_from(e).unwrap_or(0))
        .unwrap_or(0);
    Ok(OidcIdentity {
        subject,
        name,
        role,
        namespaces,
        cluster,
        expires_at,
    })
}

// ---------------------------------------------------------------------------------------------------------
// The verifier: key set management
// ---------------------------------------------------------------------------------------------------------

/// GETs a URL and returns the body, or a short error text. Supplied by the caller; see the module
/// documentation for a reqwest example.
pub type JwksFetcher = Box<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// Why a key set load happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadReason {
    /// The first load.
    Initial,
    /// The refresh interval passed (URL).
    Periodic,
    /// The key file changed.
    FileChanged,
    /// A token named a `kid` that is not in the key set.
    UnknownKey,
    /// [`OidcVerifier::refresh`] was called.
    Manual,
}

/// What one key set load did, for the caller's log (see [`OidcVerifier::with_reload_hook`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Why it happened.
    pub reason: ReloadReason,
    /// The URL or file the keys came from.
    pub source: String,
    /// `Ok(number of usable keys)`, or the error (the previous keys stay in use).
    pub result: Result<usize, String>,
    /// Keys skipped in the loaded set, with reasons.
    pub skipped: Vec<SkippedKey>,
}

/// A snapshot of the verifier's key set, for logs and health pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetStatus {
    /// Where keys come from (the `jwks_uri` once discovered).
    pub source: String,
    /// Number of usable keys.
    pub keys: usize,
    /// Their `kid`s (keys without one are not listed).
    pub kids: Vec<String>,
    /// Keys skipped in the current set, with reasons.
    pub skipped: Vec<SkippedKey>,
    /// When the current set was loaded.
    pub loaded_at: Option<SystemTime>,
    /// The last load error, cleared by a successful load.
    pub last_error: Option<String>,
    /// Number of load attempts so far (file reads or URL fetches, discovery not counted).
    pub loads: u64,
}

/// Modification time and size of the key file, to see that it changed.
type FileStamp = (Option<SystemTime>, u64);

#[derive(Default)]
struct RefreshState {
    last_success: Option<Instant>,
    last_attempt: Option<Instant>,
    last_forced: Option<Instant>,
    last_file_check: Option<Instant>,
    file_stamp: Option<FileStamp>,
    jwks_uri: Option<String>,
    loaded_at: Option<SystemTime>,
    last_error: Option<String>,
    loads: u64,
}

type ReloadHook = Box<dyn Fn(&ReloadReport) + Send + Sync>;

/// Verifies bearer tokens of one issuer, keeping its key set up to date (see the module documentation).
/// Share it between threads (`Arc<OidcVerifier>`); every method takes `&self`.
pub struct OidcVerifier {
    config: OidcConfig,
    fetcher: Option<JwksFetcher>,
    keys: RwLock<Arc<Jwks>>,
    generation: AtomicU64,
    state: Mutex<RefreshState>,
    hook: Option<ReloadHook>,
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("config", &self.config)
            .field("keys", &self.current_keys().len())
            .finish()
    }
}

impl OidcVerifier {
    /// Checks the configuration and loads the key set now; fails when it cannot be loaded or has no usable
    /// key. `fetcher` is required for [`JwksSource::Url`] and [`JwksSource::Discover`].
    pub fn new(
        config: OidcConfig,
        fetcher: Option<JwksFetcher>,
    ) -> Result<OidcVerifier, OidcError> {
        let verifier = OidcVerifier::new_deferred(config, fetcher)?;
        {
            let mut state = verifier.lock_state();
            verifier.reload(&mut state, ReloadReason::Initial)?;
        }
        Ok(verifier)
    }

    /// Checks the configuration but loads keys only when the first token comes (so that the server can start
    /// while the issuer is down; tokens fail with [`OidcError::NoSuitableKey`] or the load error until then).
    pub fn new_deferred(
        config: OidcConfig,
        fetcher: Option<JwksFetcher>,
    ) -> Result<OidcVerifier, OidcError> {
        config.validate()?;
        if fetcher.is_none() && !matches!(config.jwks, JwksSource::File(_)) {
            return Err(OidcError::Config(
                "a JWKS URL or discovery needs a fetcher (an HTTP GET function)".into(),
            ));
        }
        Ok(OidcVerifier {
            config,
            fetcher,
            keys: RwLock::new(Arc::new(Jwks::default())),
            generation: AtomicU64::new(0),
            state: Mutex::new(RefreshState::default()),
            hook: None,
        })
    }

    /// Calls `hook` after every key set load (success or failure), e.g. to log it with the skipped keys. The
    /// hook runs while the verifier's refresh lock is held: keep it short, and do not call the verifier from it.
    pub fn with_reload_hook(
        mut self,
        hook: impl Fn(&ReloadReport) + Send + Sync + 'static,
    ) -> OidcVerifier {
        self.hook = Some(Box::new(hook));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Verifies a token (without `Bearer `) now; see [`OidcVerifier::verify_at`].
    pub fn verify(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.verify_at(token, now)
    }

    /// Verifies a token as of `now` (Unix seconds). Refreshes the key set first if due, and once more (rate
    /// limited) if the token names an unknown key; may therefore block while the fetcher runs.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<OidcIdentity, OidcError> {
        let load_error = self.refresh_if_due();
        let generation = self.generation.load(Ordering::Acquire);
        let keys = self.current_keys();
        match verify_with_keys(&self.config, &keys, token, now) {
            Err(OidcError::UnknownKid { .. }) | Err(OidcError::NoSuitableKey { .. })
                if self.refresh_for_unknown_key(generation) =>
            {
                verify_with_keys(&self.config, &self.current_keys(), token, now)
            }
            Err(OidcError::NoSuitableKey { .. }) if keys.is_empty() => {
                // No key was ever loaded: the real problem is the load.
                Err(load_error
                    .or_else(|| self.lock_state().last_error.clone().map(OidcError::KeySet))
                    .unwrap_or(OidcError::KeySet("no usable key loaded".into())))
            }
            other => other,
        }
    }

    /// Loads the key set now (not rate limited), e.g. from a background thread every few minutes.
    pub fn refresh(&self) -> Result<KeySetStatus, OidcError> {
        {
            let mut state = self.lock_state();
            self.reload(&mut state, ReloadReason::Manual)?;
        }
        Ok(self.status())
    }

    /// The current key set.
    pub fn current_keys(&self) -> Arc<Jwks> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A snapshot of the key set and its last load.
    pub fn status(&self) -> KeySetStatus {
        let keys = self.current_keys();
        let state = self.lock_state();
        KeySetStatus {
            source: state
                .jwks_uri
                .clone()
                .unwrap_or_else(|| self.config.jwks.describe(&self.config.issuer)),
            keys: keys.len(),
            kids: keys.keys().iter().filter_map(|k| k.kid.clone()).collect(),
            skipped: keys.skipped().to_vec(),
            loaded_at: state.loaded_at,
            last_error: state.last_error.clone(),
            loads: state.loads,
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, RefreshState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The periodic part: URL re-fetch after `refresh_interval`, file check after `file_check_interval`, a
    /// retry after `min_refresh_interval` while no key set was ever loaded. Returns the load error, if a load
    /// was tried and failed.
    fn refresh_if_due(&self) -> Option<OidcError> {
        let never_loaded = self.current_keys().is_empty();
        let mut state = if never_loaded {
            self.lock_state()
        } else {
            // Someone else is loading: go on with the current keys rather than wait.
            match self.state.try_lock() {
                Ok(s) => s,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        };
        let elapsed = |t: Option<Instant>| t.map(|t| t.elapsed());
        // After a failed load, wait `min_refresh_interval` before the next try.
        let backoff = state.last_error.is_some()
            && elapsed(state.last_attempt).is_some_and(|e| e < self.config.min_refresh_interval);
        if state.last_success.is_none() {
            if backoff {
                return None;
            }
            let reason = if state.last_attempt.is_none() {
                ReloadReason::Initial
            } else {
                ReloadReason::Periodic
            };
            return self.reload(&mut state, reason).err();
        }
        match &self.config.jwks {
            JwksSource::File(path) => {
                if elapsed(state.last_file_check)
                    .is_some_and(|e| e < self.config.file_check_interval)
                {
                    return None;
                }
                state.last_file_check = Some(Instant::now());
                // Compared with the last read (good or bad): a file is read again only once it changed.
                let stamp = file_stamp(path);
                if stamp.is_some() && stamp != state.file_stamp {
                    return self.reload(&mut state, ReloadReason::FileChanged).err();
                }
                None
            }
            JwksSource::Url(_) | JwksSource::Discover => {
                let due =
                    elapsed(state.last_success).is_some_and(|e| e >= self.config.refresh_interval);
                if due && !backoff {
                    return self.reload(&mut state, ReloadReason::Periodic).err();
                }
                None
            }
        }
    }

    /// After a token named an unknown key: load again unless another thread already did since `seen`, or a
    /// forced load happened (or a load failed) less than `min_refresh_interval` ago. True when the keys changed.
    fn refresh_for_unknown_key(&self, seen: u64) -> bool {
        let mut state = self.lock_state();
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < self.config.min_refresh_interval);
        if recent(state.last_forced) || (state.last_error.is_some() && recent(state.last_attempt)) {
            // Rate limit, or a load just failed: do not ask the issuer again yet.
            return false;
        }
        state.last_forced = Some(Instant::now());
        self.reload(&mut state, ReloadReason::UnknownKey).is_ok()
    }

    /// Loads the key set; on success swaps it in, on failure keeps the old one. The caller holds the state
    /// lock, so loads never overlap.
    fn reload(&self, state: &mut RefreshState, reason: ReloadReason) -> Result<(), OidcError> {
        let now = Instant::now();
        state.last_attempt = Some(now);
        state.loads += 1;
        let mut source = self.config.jwks.describe(&self.config.issuer);
        let loaded = self.load(state, &mut source).and_then(|jwks| {
            if jwks.is_empty() {
                let reasons: Vec<String> = jwks.skipped().iter().map(|s| s.to_string()).collect();
                Err(OidcError::KeySet(if reasons.is_empty() {
                    "the key set has no keys".into()
                } else {
                    format!("no usable key: {}", reasons.join("; "))
                }))
            } else {
                Ok(jwks)
            }
        });
        let report = match loaded {
            Ok(jwks) => {
                let report = ReloadReport {
                    reason,
                    source,
                    result: Ok(jwks.len()),
                    skipped: jwks.skipped().to_vec(),
                };
                *self
                    .keys
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(jwks);
                self.generation.fetch_add(1, Ordering::AcqRel);
                state.last_success = Some(now);
                state.loaded_at = Some(SystemTime::now());
                state.last_error = None;
                if let Some(hook) = &self.hook {
                    hook(&report);
                }
                return Ok(());
            }
            Err(e) => {
                state.last_error = Some(e.to_string());
                if matches!(self.config.jwks, JwksSource::Discover) {
                    // The jwks_uri may have moved: discover again next time.
                    state.jwks_uri = None;
                }
                (
                    ReloadReport {
                        reason,
                        source,
                        result: Err(e.to_string()),
                        skipped: Vec::new(),
                    },
                    e,
                )
            }
        };
        if let Some(hook) = &self.hook {
            hook(&report.0);
        }
        Err(report.1)
    }

    /// Reads the key set from its source (recording the file's stamp); `source` is set to the URL or file
    /// actually used.
    fn load(&self, state: &mut RefreshState, source: &mut String) -> Result<Jwks, OidcError> {
        match &self.config.jwks {
            JwksSource::File(path) => {
                let fetch_error = |reason: String| OidcError::Fetch {
                    source_name: path.display().to_string(),
                    reason,
                };
                state.file_stamp = file_stamp(path);
                let file = std::fs::File::open(path).map_err(|e| fetch_error(e.to_string()))?;
                let mut bytes = Vec::new();
                file.take(MAX_JWKS_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| fetch_error(e.to_string()))?;
                Jwks::parse(&bytes)
            }
            JwksSource::Url(url) => Jwks::parse(&self.fetch(url)?),
            JwksSource::Discover => {
                let uri = match &state.jwks_uri {
                    Some(uri) => uri.clone(),
                    None => {
                        let uri = self.discover()?;
                        state.jwks_uri = Some(uri.clone());
                        uri
                    }
                };
                *source = uri.clone();
                Jwks::parse(&self.fetch(&uri)?)
            }
        }
    }

    fn fetch(&self, url: &str) -> Result<Vec<u8>, OidcError> {
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or_else(|| OidcError::Config("no fetcher for URLs".into()))?;
        let body = fetcher(url).map_err(|reason| OidcError::Fetch {
            source_name: url.to_string(),
            reason,
        })?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(OidcError::Fetch {
                source_name: url.to_string(),
                reason: format!(
                    "body of {} bytes is over the {MAX_JWKS_BYTES}-byte limit",
                    body.len()
                ),
            });
        }
        Ok(body)
    }

    /// OpenID Connect Discovery: the provider metadata's `issuer` must be ours, and gives `jwks_uri`.
    fn discover(&self) -> Result<String, OidcError> {
        let url = discovery_url(&self.config.issuer);
        let body = self.fetch(&url)?;
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Discovery(format!("{url}: not JSON: {e}")))?;
        let issuer = doc
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Discovery(format!("{url}: no \"issuer\" string")))?;
        if issuer != self.config.issuer {
            return Err(OidcError::Discovery(format!(
                "{url} names issuer {} (expected {:?})",
                shown(issuer),
                self.config.issuer
            )));
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Discovery(format!("{url}: no \"jwks_uri\" string")))?;
        self.config
            .check_url(uri)
            .map_err(|e| OidcError::Discovery(format!("{url}: jwks_uri: {e}")))?;
        Ok(uri.to_string())
    }
}

fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().ok(), m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    const NOW: u64 = 1_700_000_000;

    struct Signer {
        pair: Ed25519KeyPair,
        kid: &'static str,
    }

    impl Signer {
        fn new(kid: &'static str) -> Signer {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
            Signer {
                pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"),
                kid,
            }
        }

        fn jwk(&self) -> Value {
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "kid": self.kid, "use": "sig", "alg": "EdDSA",
                "x": B64_TOKEN.encode(self.pair.public_key().as_ref()),
            })
        }

        fn sign(&self, header: Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                B64_TOKEN.encode(header.to_string()),
                B64_TOKEN.encode(claims.to_string())
            );
            let sig = self.pair.sign(input.as_bytes());
            format!("{input}.{}", B64_TOKEN.encode(sig.as_ref()))
        }

        fn token(&self, claims: &Value) -> String {
            self.sign(
                serde_json::json!({"alg": "EdDSA", "kid": self.kid, "typ": "JWT"}),
                claims,
            )
        }
    }

    fn config() -> OidcConfig {
        OidcConfig::new(
            "https://issuer.test",
            "quarry",
            JwksSource::File("unused".into()),
        )
    }

    fn claims() -> Value {
        serde_json::json!({
            "iss": "https://issuer.test", "aud": "quarry", "sub": "u1", "exp": NOW + 300,
            "iat": NOW - 10, "quarry_role": "analyst", "quarry_namespaces": ["prod", "dev"],
        })
    }

    fn keys(signers: &[&Signer]) -> Jwks {
        let doc = serde_json::json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()});
        Jwks::parse(doc.to_string().as_bytes()).expect("jwks")
    }

    #[test]
    fn valid_token_maps_identity() {
        let s = Signer::new("k1");
        let id =
            verify_with_keys(&config(), &keys(&[&s]), &s.token(&claims()), NOW).expect("valid");
        assert_eq!(id.subject, "u1");
        assert_eq!(id.name, "u1");
        assert_eq!(id.role, OidcRole::Analyst);
        assert_eq!(
            id.namespaces,
            Some(vec!["dev".to_string(), "prod".to_string()])
        );
        assert!(!id.cluster);
        assert_eq!(id.expires_at, NOW + 300);
    }

    #[test]
    fn time_claims_and_leeway() {
        let s = Signer::new("k1");
        let set = keys(&[&s]);
        let mut c = claims();
        c["exp"] = serde_json::json!(NOW - 30); // within the 60 s leeway
        assert!(verify_with_keys(&config(), &set, &s.token(&c), NOW).is_ok());
        c["exp"] = serde_json::json!(NOW - 60);
        let err = verify_with_keys(&config(), &set, &s.token(&c), NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token expired at 2023-11-14T22:12:20Z (now 2023-11-14T22:13:20Z, leeway 60 s)"
        );
        let mut c = claims();
        c["nbf"] = serde_json::json!(NOW + 61);
        assert!(matches!(
            verify_with_keys(&config(), &set, &s.token(&c), NOW),
            Err(OidcError::NotYetValid { .. })
        ));
        c["nbf"] = serde_json::json!(NOW as f64 + 59.5);
        assert!(verify_with_keys(&config(), &set, &s.token(&c), NOW).is_ok());
        let mut c = claims();
        c["iat"] = serde_json::json!(NOW + 3600);
        assert!(matches!(
            verify_with_keys(&config(), &set, &s.token(&c), NOW),
            Err(OidcError::IssuedInFuture { .. })
        ));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            verify_with_keys(&config(), &set, &s.token(&c), NOW),
            Err(OidcError::MissingClaim("exp".into()))
        );
        c["exp"] = serde_json::json!("tomorrow");
        assert!(matches!(
            verify_with_keys(&config(), &set, &s.token(&c), NOW),
            Err(OidcError::InvalidClaim { .. })
        ));
    }

    #[test]
    fn roles_groups_namespaces_cluster() {
        let s = Signer::new("k1");
        let set = keys(&[&s]);
        let mut cfg = config();
        let base = || {
            let mut c = claims();
            let o = c.as_object_mut().unwrap();
            o.remove("quarry_role");
            o.remove("quarry_namespaces");
            c
        };
        // No role at all.
        assert!(matches!(
            verify_with_keys(&cfg, &set, &s.token(&base()), NOW),
            Err(OidcError::NoRole(_))
        ));
        // Groups, first mapping entry wins.
        cfg.group_roles = vec![
            parse_group_role("cn=ops,ou=groups,dc=example=admin").unwrap(),
            ("devs".into(), OidcRole::Analyst),
        ];
        assert_eq!(cfg.group_roles[0].0, "cn=ops,ou=groups,dc=example");
        let mut c = base();
        c["groups"] = serde_json::json!(["devs", "cn=ops,ou=groups,dc=example"]);
        let id = verify_with_keys(&cfg, &set, &s.token(&c), NOW).unwrap();
        assert_eq!(id.role, OidcRole::Admin);
        assert_eq!(id.namespaces, None);
        assert!(id.cluster);
        c["groups"] = serde_json::json!("devs");
        let id = verify_with_keys(&cfg, &set, &s.token(&c), NOW).unwrap();
        assert_eq!(id.role, OidcRole::Analyst);
        assert_eq!(id.namespaces, Some(vec![]));
        assert!(!id.cluster);
        // Role claim beats groups; namespaces "*" = all; cluster claim honoured.
        c["quarry_role"] = serde_json::json!("auditor");
        c["quarry_namespaces"] = serde_json::json!(["*"]);
        c["quarry_cluster"] = serde_json::json!(true);
        c["preferred_username"] = serde_json::json!("alice");
        let id = verify_with_keys(&cfg, &set, &s.token(&c), NOW).unwrap();
        assert_eq!(
            (id.role, id.namespaces, id.cluster),
            (OidcRole::Auditor, None, true)
        );
        assert_eq!(id.name, "alice");
        // Bad values are refused, not ignored.
        c["quarry_role"] = serde_json::json!("root");
        assert!(matches!(
            verify_with_keys(&cfg, &set, &s.token(&c), NOW),
            Err(OidcError::InvalidClaim { .. })
        ));
        c["quarry_role"] = serde_json::json!("analyst");
        c["quarry_namespaces"] = serde_json::json!(["Prod!"]);
        assert!(matches!(
            verify_with_keys(&cfg, &set, &s.token(&c), NOW),
            Err(OidcError::InvalidClaim { .. })
        ));
        // Default role.
        cfg.group_roles.clear();
        cfg.default_role = Some(OidcRole::Ingest);
        assert_eq!(
            verify_with_keys(&cfg, &set, &s.token(&base()), NOW)
                .unwrap()
                .role,
            OidcRole::Ingest
        );
        assert!(parse_group_role("noequals").is_err());
        assert!(parse_group_role("=admin").is_err());
        assert!(parse_group_role("g=superuser").is_err());
    }

    #[test]
    fn kid_selection() {
        let a = Signer::new("a");
        let b = Signer::new("b");
        let set = keys(&[&a, &b]);
        assert!(verify_with_keys(&config(), &set, &b.token(&claims()), NOW).is_ok());
        let unknown = Signer::new("zzz");
        assert!(matches!(
            verify_with_keys(&config(), &set, &unknown.token(&claims()), NOW),
            Err(OidcError::UnknownKid { .. })
        ));
        // No kid: every fitting key is tried.
        let no_kid = b.sign(serde_json::json!({"alg": "EdDSA"}), &claims());
        assert!(verify_with_keys(&config(), &set, &no_kid, NOW).is_ok());
        // Same kid, other key: bad signature.
        let impostor = Signer::new("a");
        assert_eq!(
            verify_with_keys(&config(), &set, &impostor.token(&claims()), NOW),
            Err(OidcError::BadSignature)
        );
        // A lone key without kid serves tokens with any kid.
        let mut jwk = a.jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        let lone = Jwks::parse(serde_json::json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
        let other_kid = a.sign(serde_json::json!({"alg": "EdDSA", "kid": "x"}), &claims());
        assert!(verify_with_keys(&config(), &lone, &other_kid, NOW).is_ok());
        // Algorithm that does not fit the key named by kid.
        let confused = a.sign(serde_json::json!({"alg": "ES256", "kid": "a"}), &claims());
        assert!(matches!(
            verify_with_keys(&config(), &set, &confused, NOW),
            Err(OidcError::AlgorithmKeyMismatch { .. })
        ));
        let mut cfg = config();
        cfg.allowed_algorithms = vec![Algorithm::Rs256];
        assert_eq!(
            verify_with_keys(&cfg, &set, &a.token(&claims()), NOW),
            Err(OidcError::AlgorithmNotAllowed("EdDSA".into()))
        );
    }

    #[test]
    fn header_refusals() {
        let s = Signer::new("k1");
        let set = keys(&[&s]);
        let check = |h: Value| verify_with_keys(&config(), &set, &s.sign(h, &claims()), NOW);
        assert_eq!(
            check(serde_json::json!({"alg": "none"})),
            Err(OidcError::AlgNone)
        );
        assert_eq!(
            check(serde_json::json!({"alg": "NONE"})),
            Err(OidcError::AlgNone)
        );
        assert!(matches!(
            check(serde_json::json!({"alg": "HS256"})),
            Err(OidcError::SymmetricAlgorithm(_))
        ));
        assert!(matches!(
            check(serde_json::json!({"alg": "ES512"})),
            Err(OidcError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(
            check(serde_json::json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]})),
            Err(OidcError::CriticalHeader)
        );
        assert!(matches!(
            check(serde_json::json!({"kid": "k1"})),
            Err(OidcError::Malformed(_))
        ));
        assert!(matches!(
            check(serde_json::json!({"alg": "EdDSA", "kid": 7})),
            Err(OidcError::Malformed(_))
        ));
        assert!(matches!(
            check(serde_json::json!(["EdDSA"])),
            Err(OidcError::Malformed(_))
        ));
        assert_eq!(
            verify_with_keys(&config(), &set, "a.b.c.d.e", NOW),
            Err(OidcError::Encrypted)
        );
        let mut cfg = config();
        cfg.max_token_bytes = 10;
        assert!(matches!(
            verify_with_keys(&cfg, &set, &s.token(&claims()), NOW),
            Err(OidcError::TooLarge { .. })
        ));
    }

    #[test]
    fn errors_escape_and_cut_token_values() {
        let s = Signer::new("k1");
        let set = keys(&[&s]);
        let mut c = claims();
        c["iss"] = serde_json::json!(format!("evil\n{}", "x".repeat(500)));
        let err = verify_with_keys(&config(), &set, &s.token(&c), NOW).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("wrong issuer \"evil\\nxxx"), "{text}");
        assert!(
            text.ends_with("… (expected \"https://issuer.test\")"),
            "{text}"
        );
        assert!(!text.contains('\n') && text.len() < 200);
        c["iss"] = serde_json::json!("https://issuer.test");
        c["aud"] = serde_json::json!(["a", "b"]);
        assert_eq!(
            verify_with_keys(&config(), &set, &s.token(&c), NOW)
                .unwrap_err()
                .to_string(),
            "wrong audience [\"a\", \"b\"] (expected \"quarry\")"
        );
    }

    #[test]
    fn jwks_skips_unusable_keys_with_reasons() {
        let s = Signer::new("good");
        let doc = serde_json::json!({"keys": [
            s.jwk(),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": B64_TOKEN.encode([0xffu8; 128]), "e": "AQAB"},
            {"kty": "EC", "kid": "k256", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": B64_TOKEN.encode([1u8; 32]), "y": B64_TOKEN.encode([2u8; 32])},
            {"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": B64_TOKEN.encode([1u8; 32])},
            {"kty": "OKP", "kid": "private", "crv": "Ed25519", "x": B64_TOKEN.encode([1u8; 32]), "d": "AA"},
            {"kty": "OKP", "kid": "badb64", "crv": "Ed25519", "x": "!!!"},
            {"kty": "OKP", "kid": "mismatch", "crv": "Ed25519", "alg": "RS256", "x": B64_TOKEN.encode([1u8; 32])},
            {"kty": "OKP", "kid": "hs", "crv": "Ed25519", "alg": "HS256", "x": B64_TOKEN.encode([1u8; 32])},
            "not an object",
            {"kid": "nokty"},
        ]});
        let set = Jwks::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.keys()[0].kid.as_deref(), Some("good"));
        assert_eq!(set.skipped().len(), 12);
        let text: Vec<String> = set.skipped().iter().map(|s| s.to_string()).collect();
        assert!(text[0].contains("symmetric key"), "{text:?}");
        assert!(text[1].contains("not \"sig\""), "{text:?}");
        assert!(text[2].contains("1024 bits"), "{text:?}");
        assert!(text[3].contains("unsupported EC curve"), "{text:?}");
        assert!(text[4].contains("not on curve P-256"), "{text:?}");
        assert!(text[5].contains("only Ed25519"), "{text:?}");
        assert!(text[6].contains("private key"), "{text:?}");
        assert!(text[7].contains("base64url"), "{text:?}");
        assert!(text[8].contains("does not fit"), "{text:?}");
        assert!(text[9].contains("symmetric"), "{text:?}");
        assert!(text[10].contains("not a JSON object"), "{text:?}");
        assert!(text[11].contains("kty"), "{text:?}");
        for bad in [&b""[..], b"[]", b"{}", b"{\"keys\": 3}", b"\xff\xfe"] {
            assert!(matches!(Jwks::parse(bad), Err(OidcError::KeySet(_))));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let s = Signer::new("k1");
        let set = keys(&[&s]);
        let token = s.token(&claims());
        for cut in 0..token.len() {
            assert!(verify_with_keys(&config(), &set, &token[..cut], NOW).is_err());
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"ABCxyz019-_.=+/ \"{}:";
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let junk: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            assert!(verify_with_keys(&config(), &set, &junk, NOW).is_err());
        }
        // Every one-character change of a valid token is refused.
        let chars: Vec<char> = token.chars().collect();
        for i in 0..chars.len() {
            let mut m = chars.clone();
            m[i] = if m[i] == 'A' { 'B' } else { 'A' };
            let m: String = m.into_iter().collect();
            assert!(
                verify_with_keys(&config(), &set, &m, NOW).is_err(),
                "mutation at {i}"
            );
        }
    }

    #[test]
    fn formats_dates() {
        assert_eq!(fmt_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(fmt_unix(-1), "1969-12-31T23:59:59Z");
        assert_eq!(fmt_unix(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn config_checks() {
        let mut c = OidcConfig::new("https://i", "q", JwksSource::Url("http://i/jwks".into()));
        assert!(matches!(c.validate(), Err(OidcError::Config(_))));
        c.allow_insecure_http = true;
        assert!(c.validate().is_ok());
        assert!(matches!(
            OidcVerifier::new_deferred(c.clone(), None),
            Err(OidcError::Config(_))
        ));
        c.audience.clear();
        assert!(c.validate().is_err());
        assert_eq!(
            JwksSource::from_flag("https://x/keys"),
            JwksSource::Url("https://x/keys".into())
        );
        assert_eq!(
            JwksSource::from_flag("/etc/quarry/jwks.json"),
            JwksSource::File("/etc/quarry/jwks.json".into())
        );
    }
}
