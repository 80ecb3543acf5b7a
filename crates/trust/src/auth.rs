//! Who may do what: roles, API tokens and revoked agent certificates.
//!
//! **Roles.** Every caller is a [`Principal`] with one [`Role`] and a [`Scope`]:
//! - `admin`: everything, every namespace, the access audit included;
//! - `analyst`: queries, hunts and alerts, within its namespaces (all when none are given), never the
//!   access audit;
//! - `auditor`: queries over the access audit (`@source = "access"`) and nothing else;
//! - `ingest`: sends batches (what agents' certificates and shippers' tokens get), nothing else.
//!
//! **API tokens** (`quarry token create|list|revoke`) are `qry_<id>_<secret>` with 256 random bits of
//! secret. Only their SHA-256 is stored, in `<data dir>/auth/tokens.json` (written atomically, mode 0600,
//! changes serialised by a lock file so the CLI and a running server can both change it). A slow password
//! hash would add nothing: the secret is random, not chosen by a person. Tokens expire (90 days unless
//! told otherwise) and can be revoked; the server reads the file again when it changes.
//!
//! **Revoked agent certificates** live in `<data dir>/auth/revoked.json`: by serial number, or by node
//! (every certificate naming the node issued before the revocation, so a re-issued one works).

use crate::x509::CertInfo;
use quarry_model::{Kind, Scope};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Queries, hunts and alerts within a namespace scope.
    Analyst,
    /// Reads the access audit.
    Auditor,
    /// Sends log batches.
    Ingest,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Ingest => "ingest",
        }
    }

    /// True when the role may do `action`.
    pub fn permits(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Analyst => matches!(action, Query | Hunt | ReadAlerts | UpdateAlerts | Monitor),
            Role::Auditor => matches!(action, Query | Monitor),
            Role::Ingest => matches!(action, Ingest),
        }
    }

    /// What the role sees given its grant: `namespaces` (`None`: every namespace) and whether
    /// cluster-scoped events are visible (always when every namespace is granted).
    pub fn scope(self, namespaces: Option<Vec<String>>, cluster: bool) -> Scope {
        let all_but_access: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::Access)
            .collect();
        match self {
            Role::Admin => Scope::all(),
            Role::Analyst => Scope {
                cluster: cluster || namespaces.is_none(),
                namespaces,
                kinds: Some(all_but_access),
            },
            Role::Auditor => Scope {
                kinds: Some(vec![Kind::Access]),
                ..Scope::all()
            },
            Role::Ingest => Scope {
                namespaces: Some(Vec::new()),
                cluster: false,
                kinds: Some(Vec::new()),
            },
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "analyst" => Ok(Role::Analyst),
            "auditor" => Ok(Role::Auditor),
            "ingest" => Ok(Role::Ingest),
            _ => Err(format!(
                "unknown role {s:?}: expected admin, analyst, auditor or ingest"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request does, for [`Role::permits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send log batches; wait for them to be searchable.
    Ingest,
    /// Run queries.
    Query,
    /// Run retro-hunts.
    Hunt,
    /// List and read alerts.
    ReadAlerts,
    /// Acknowledge, close or reopen alerts.
    UpdateAlerts,
    /// Read store statistics and metrics.
    Monitor,
    /// Manage tokens and configuration.
    Admin,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// An API token (its id).
    Token(String),
    /// An OIDC bearer token (its issuer).
    Oidc(String),
    /// A client certificate (its serial).
    Certificate(String),
}

impl Method {
    /// A short name: `token`, `oidc` or `mtls`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Token(_) => "token",
            Method::Oidc(_) => "oidc",
            Method::Certificate(_) => "mtls",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who: `token:<name>`, the OIDC subject's name, or `node:<name>`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// What it may see.
    pub scope: Scope,
    /// How it authenticated.
    pub method: Method,
}

impl Principal {
    /// Why the principal may not do `action` on `route`, or `None` when it may: its role must permit
    /// it, and the store-wide counters ([`Action::Monitor`]: stats and metrics, which count every
    /// namespace) are not shown to a principal limited to some namespaces.
    pub fn refusal(&self, action: Action, route: &str) -> Option<String> {
        let (name, role) = (&self.name, self.role);
        if !role.permits(action) {
            return Some(format!("{name} (role {role}) may not use {route}"));
        }
        match &self.scope.namespaces {
            Some(ns) if action == Action::Monitor => Some(format!(
                "{name} (role {role}, namespaces {}) may not use {route}: its counters cover every namespace",
                ns.join(",")
            )),
            _ => None,
        }
    }
}

/// Authentication and token-store failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what Quarry wrote.
    #[error("{path}: not a valid Quarry file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One API token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id (also inside the token).
    pub id: String,
    /// A name for people (`ci-importer`, `alice`).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Namespaces granted (`None`: every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Whether cluster-scoped events are visible when namespaces are given.
    #[serde(default)]
    pub cluster: bool,
    /// Created, UTC ns.
    pub created_ns: i64,
    /// Expires, UTC ns.
    pub expires_ns: i64,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
    /// Revoked, UTC ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ns: Option<i64>,
}

impl TokenRecord {
    /// The principal the token stands for.
    pub fn principal(&self) -> Principal {
        Principal {
            name: format!("token:{}", self.name),
            role: self.role,
            scope: self.role.scope(self.namespaces.clone(), self.cluster),
            method: Method::Token(self.id.clone()),
        }
    }

    /// `active`, `expired` or `revoked` at `now_ns`.
    pub fn status(&self, now_ns: i64) -> &'static str {
        if self.revoked_ns.is_some() {
            "revoked"
        } else if now_ns >= self.expires_ns {
            "expired"
        } else {
            "active"
        }
    }
}

/// The contents of `auth/tokens.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    /// Every token ever created (revoked and expired ones stay, for the record).
    pub tokens: Vec<TokenRecord>,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// A name for people.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Namespaces granted (`None`: every namespace).
    pub namespaces: Option<Vec<String>>,
    /// Cluster-scoped events visible with namespaces.
    pub cluster: bool,
    /// Lifetime in nanoseconds.
    pub lifetime_ns: i64,
}

/// The token files of a data directory.
#[derive(Debug, Clone)]
pub struct AuthDir {
    dir: PathBuf,
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Constant-time equality of two strings of equal length (hash comparisons).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl AuthDir {
    /// The `auth` directory of a data directory.
    pub fn of(data_dir: &Path) -> AuthDir {
        AuthDir {
            dir: data_dir.join("auth"),
        }
    }

    /// `auth/tokens.json`.
    pub fn tokens_path(&self) -> PathBuf {
        self.dir.join("tokens.json")
    }

    /// `auth/revoked.json`.
    pub fn revoked_path(&self) -> PathBuf {
        self.dir.join("revoked.json")
    }

    /// Runs `f` on the parsed file at `path` under the directory's lock and writes back what it returns.
    fn update<T, R>(
        &self,
        path: &Path,
        f: impl FnOnce(&mut T) -> Result<R, AuthError>,
    ) -> Result<R, AuthError>
    where
        T: Default + Serialize + for<'de> Deserialize<'de>,
    {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let lock_path = self.dir.join(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        let mut value: T = read_json(path)?;
        let out = f(&mut value)?;
        let text =
            serde_json::to_vec_pretty(&value).map_err(|e| AuthError::Invalid(e.to_string()))?;
        write_private(path, &text)?;
        Ok(out)
    }

    /// Creates a token; returns its text (shown once, never stored) and its record.
    pub fn create_token(
        &self,
        t: &NewToken,
        now_ns: i64,
    ) -> Result<(String, TokenRecord), AuthError> {
        if t.lifetime_ns <= 0 {
            return Err(AuthError::Invalid(
                "a token's lifetime must be positive".into(),
            ));
        }
        if let Some(ns) = &t.namespaces {
            for n in ns {
                check_namespace(n)?;
            }
        }
        let rng = SystemRandom::new();
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rng.fill(&mut id)
            .and_then(|_| rng.fill(&mut secret))
            .map_err(|_| AuthError::Invalid("the system random generator failed".into()))?;
        use base64::Engine;
        let id = hex(&id);
        let token = format!(
            "qry_{id}_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let record = TokenRecord {
            id: id.clone(),
            name: t.name.clone(),
            role: t.role,
            namespaces: t.namespaces.clone(),
            cluster: t.cluster,
            created_ns: now_ns,
            expires_ns: now_ns.saturating_add(t.lifetime_ns),
            sha256: sha256_hex(token.as_bytes()),
            revoked_ns: None,
        };
        let stored = record.clone();
        self.update(&self.tokens_path(), |f: &mut TokenFile| {
            f.tokens.push(stored);
            Ok(())
        })?;
        Ok((token, record))
    }

    /// Every token record.
    pub fn tokens(&self) -> Result<TokenFile, AuthError> {
        read_json(&self.tokens_path())
    }

    /// Revokes a token by id; returns its record.
    pub fn revoke_token(&self, id: &str, now_ns: i64) -> Result<TokenRecord, AuthError> {
        self.update(&self.tokens_path(), |f: &mut TokenFile| {
            let r = f
                .tokens
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| AuthError::Invalid(format!("no token with id {id:?}")))?;
            r.revoked_ns.get_or_insert(now_ns);
            Ok(r.clone())
        })
    }

    /// Revokes client certificates: one by serial, or every one naming `node` issued up to now.
    pub fn revoke_certificate(&self, rev: Revocation) -> Result<(), AuthError> {
        if let Some(node) = &rev.node {
            crate::certs::check_node_name(node).map_err(|e| AuthError::Invalid(e.to_string()))?;
        }
        self.update(&self.revoked_path(), |f: &mut RevokedFile| {
            f.revoked.push(rev);
            Ok(())
        })
    }

    /// The revocation list.
    pub fn revoked(&self) -> Result<RevokedFile, AuthError> {
        read_json(&self.revoked_path())
    }
}

/// Namespace names are DNS labels (RFC 1123), as Kubernetes requires.
pub fn check_namespace(n: &str) -> Result<(), AuthError> {
    if quarry_model::is_namespace_name(n) {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "{n:?} is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)"
        )))
    }
}

impl TokenFile {
    /// The record of a presented token, if it is one of ours, active at `now_ns`.
    pub fn authenticate(&self, token: &str, now_ns: i64) -> Result<&TokenRecord, AuthError> {
        let id = token
            .strip_prefix("qry_")
            .and_then(|t| t.split('_').next())
            .ok_or_else(|| AuthError::Unauthenticated("not a Quarry API token".into()))?;
        let digest = sha256_hex(token.as_bytes());
        let r = self
            .tokens
            .iter()
            .find(|r| r.id == id && same(&r.sha256, &digest))
            .ok_or_else(|| AuthError::Unauthenticated("unknown API token".into()))?;
        match r.status(now_ns) {
            "active" => Ok(r),
            s => Err(AuthError::Unauthenticated(format!(
                "API token {} is {s}",
                r.id
            ))),
        }
    }
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// A certificate's serial (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// A node: its certificates issued before `revoked_ns` are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When, UTC ns.
    pub revoked_ns: i64,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// The contents of `auth/revoked.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedFile {
    /// Revocations, oldest first.
    pub revoked: Vec<Revocation>,
}

impl RevokedFile {
    /// The revocation that applies to a certificate, if any.
    pub fn find(&self, cert: &CertInfo) -> Option<&Revocation> {
        self.revoked.iter().find(|r| {
            r.serial.as_deref() == Some(cert.serial.as_str())
                || (r.node.is_some()
                    && r.node.as_deref() == cert.node()
                    && cert.not_before.saturating_mul(1_000_000_000) <= r.revoked_ns)
        })
    }
}

/// Reads a JSON file; a missing file is the default value.
pub fn read_json<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> Result<T, AuthError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| AuthError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(AuthError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Writes a file atomically (temporary file, fsync, rename, directory fsync) with mode 0600.
fn write_private(path: &Path, data: &[u8]) -> Result<(), AuthError> {
    let tmp = path.with_extension("tmp");
    let mut opts = File::options();
    opts.create(true).truncate(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    fn new(role: Role, ns: Option<&[&str]>) -> NewToken {
        NewToken {
            name: "t".into(),
            role,
            namespaces: ns.map(|v| v.iter().map(|s| s.to_string()).collect()),
            cluster: false,
            lifetime_ns: DAY,
        }
    }

    #[test]
    fn tokens_authenticate_expire_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthDir::of(dir.path());
        let (tok, rec) = auth
            .create_token(&new(Role::Analyst, Some(&["a", "b"])), 0)
            .unwrap();
        assert!(!fs::read_to_string(auth.tokens_path())
            .unwrap()
            .contains(&tok));
        let file = auth.tokens().unwrap();
        let p = file.authenticate(&tok, 1).unwrap().principal();
        assert_eq!(p.role, Role::Analyst);
        assert!(p.scope.allows(Kind::Container, ["a"]));
        assert!(!p.scope.allows(Kind::Container, ["c"]));
        assert!(!p.scope.allows(Kind::Access, []));
        assert!(file.authenticate(&tok, DAY).is_err(), "expired");
        let mut forged = tok.clone();
        forged.pop();
        forged.push('x');
        assert!(file.authenticate(&forged, 1).is_err());
        assert!(file.authenticate("Bearer nonsense", 1).is_err());
        auth.revoke_token(&rec.id, 2).unwrap();
        assert!(auth.tokens().unwrap().authenticate(&tok, 3).is_err());
        assert!(auth.revoke_token("nope", 3).is_err());
        assert!(auth
            .create_token(&new(Role::Analyst, Some(&["Bad_NS"])), 0)
            .is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(auth.tokens_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn roles_permit_and_scope() {
        assert!(Role::Admin.permits(Action::Admin));
        assert!(!Role::Analyst.permits(Action::Ingest));
        assert!(!Role::Auditor.permits(Action::Hunt));
        assert!(!Role::Ingest.permits(Action::Query));
        assert!(Role::Auditor.scope(None, false).allows(Kind::Access, []));
        assert!(!Role::Auditor.scope(None, false).allows(Kind::Audit, []));
        assert!(Role::Analyst.scope(None, false).allows(Kind::VpcFlow, []));
        assert!(!Role::Analyst
            .scope(Some(vec!["a".into()]), false)
            .allows(Kind::VpcFlow, []));
        assert!(Role::Analyst
            .scope(Some(vec!["a".into()]), true)
            .allows(Kind::VpcFlow, []));
        let analyst = |namespaces: Option<Vec<String>>| Principal {
            name: "token:alice".into(),
            role: Role::Analyst,
            scope: Role::Analyst.scope(namespaces, false),
            method: Method::Token("t".into()),
        };
        let (all, some) = (analyst(None), analyst(Some(vec!["a".into()])));
        assert_eq!(all.refusal(Action::Monitor, "GET /metrics"), None);
        assert_eq!(some.refusal(Action::Query, "POST /api/v1/query"), None);
        let why = some.refusal(Action::Monitor, "GET /metrics").unwrap();
        assert!(
            why.contains("namespaces a") && why.contains("every namespace"),
            "{why}"
        );
        let why = all.refusal(Action::Ingest, "POST /api/v1/ingest").unwrap();
        assert_eq!(
            why,
            "token:alice (role analyst) may not use POST /api/v1/ingest"
        );
    }

    #[test]
    fn revocation_by_serial_and_by_node() {
        let cert = CertInfo {
            serial: "0a".into(),
            not_before: 100,
            common_name: Some("node-1".into()),
            dns_names: vec![],
        };
        let mut f = RevokedFile::default();
        assert!(f.find(&cert).is_none());
        f.revoked.push(Revocation {
            serial: None,
            node: Some("node-1".into()),
            revoked_ns: 50_000_000_000,
            reason: String::new(),
        });
        assert!(f.find(&cert).is_none(), "issued after the revocation");
        f.revoked.push(Revocation {
            serial: Some("0a".into()),
            node: None,
            revoked_ns: 0,
            reason: String::new(),
        });
        assert!(f.find(&cert).is_some());
    }
}
