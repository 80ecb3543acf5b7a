//! Authentication, authorisation and the access audit of the HTTP API.
//!
//! Every route but `GET /healthz` needs credentials, checked in this order:
//! 1. `Authorization: Bearer qry_...`: an API token from `<data dir>/auth/tokens.json` (read again when the
//!    file changes, so `quarry token create|revoke` take effect at once);
//! 2. `Authorization: Bearer <JWT>`: an OIDC token, when the server was started with an OIDC issuer;
//! 3. a client certificate verified in the TLS handshake (mTLS): the agent of the node it names, with
//!    the `ingest` role, unless `<data dir>/auth/revoked.json` revokes it (checked again on every
//!    request, so a revocation also ends connections that are already open).
//!
//! No credentials is a 401; a role that may not use the route is a 403. Both are recorded in the access
//! audit, as are the first request of each caller (its "login"), every query, hunt and alert action and
//! every token change (see [`AccessLog`]).

use crate::listen::Peer;
use crate::{error, AppState, HttpError};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method as HttpMethod, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use quarry_model::{Event, Kind, Source};
use quarry_store::wal::BatchKey;
use quarry_store::{Store, StoreError};
use quarry_trust::auth::{
    read_json, Action, AuthDir, AuthError, Method, Principal, RevokedFile, Role, TokenFile,
};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Checks an OIDC bearer token; returns the principal it stands for or why it is refused.
pub type OidcCheck = Arc<dyn Fn(&str) -> Result<Principal, String> + Send + Sync>;

/// A file read again when its modification time or size changes.
struct Cached<T> {
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    value: Arc<T>,
}

impl<T: Default + for<'de> serde::Deserialize<'de>> Cached<T> {
    fn new(path: PathBuf) -> Self {
        Cached {
            path,
            stamp: None,
            value: Arc::new(T::default()),
        }
    }

    /// The current contents and, when they changed since the last call, the previous ones.
    fn get(&mut self) -> Result<(Arc<T>, Option<Arc<T>>), AuthError> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp == self.stamp {
            return Ok((self.value.clone(), None));
        }
        let fresh = Arc::new(read_json::<T>(&self.path)?);
        let old = std::mem::replace(&mut self.value, fresh);
        self.stamp = stamp;
        Ok((self.value.clone(), Some(old)))
    }
}

/// How the server authenticates callers.
pub struct Auth {
    tokens: Mutex<Cached<TokenFile>>,
    revoked: Mutex<Cached<RevokedFile>>,
    oidc: Option<OidcCheck>,
    logged_in: Mutex<HashSet<String>>,
    denials: Mutex<Denials>,
}

/// Denied requests per remote address and status, so that a client hammering the API without
/// credentials writes at most one access record per address, status and second; the rest are counted
/// into the next record.
#[derive(Default)]
struct Denials {
    /// (Address, status) -> (second of its last record, denials since then not recorded).
    by_addr: std::collections::HashMap<(std::net::IpAddr, u16), (u64, u64)>,
    /// Denials not recorded one by one, in all.
    folded: u64,
}

/// Addresses remembered at most (a flood from very many addresses forgets the oldest seconds).
const MAX_DENIAL_ADDRS: usize = 10_000;

impl Denials {
    /// Whether this denial gets its own record, and how many earlier ones it stands for.
    fn admit(&mut self, addr: (std::net::IpAddr, u16), second: u64) -> Option<u64> {
        if self.by_addr.len() >= MAX_DENIAL_ADDRS && !self.by_addr.contains_key(&addr) {
            self.by_addr.retain(|_, (s, _)| *s == second);
        }
        let e = self.by_addr.entry(addr).or_insert((u64::MAX, 0));
        if e.0 == second {
            e.1 += 1;
            self.folded += 1;
            None
        } else {
            let earlier = std::mem::take(&mut e.1);
            e.0 = second;
            Some(earlier)
        }
    }
}

impl Auth {
    /// Tokens and revocations of `data_dir`, and optionally OIDC; an error when either file cannot be
    /// read.
    pub fn new(data_dir: &Path, oidc: Option<OidcCheck>) -> Result<Auth, String> {
        let dir = AuthDir::of(data_dir);
        let auth = Auth {
            tokens: Mutex::new(Cached::new(dir.tokens_path())),
            revoked: Mutex::new(Cached::new(dir.revoked_path())),
            oidc,
            logged_in: Mutex::new(HashSet::new()),
            denials: Mutex::new(Denials::default()),
        };
        // Read both now: token changes are what happens after the start, and an unreadable
        // revocation list is refused at start rather than ignored.
        auth.tokens().map_err(|e| e.to_string())?;
        auth.revoked.lock().get().map_err(|e| e.to_string())?;
        Ok(auth)
    }

    /// The revocation list as it is now (the TLS handshake checks it too).
    pub fn revoked(&self) -> Arc<RevokedFile> {
        match self.revoked.lock().get() {
            Ok((v, _)) => v,
            Err(e) => {
                // An unreadable list must not let revoked certificates in: keep the last one read and say so.
                tracing::error!("cannot read the certificate revocation list: {e}");
                self.revoked.lock().value.clone()
            }
        }
    }

    /// The tokens, and what changed since the last look (for the access audit).
    fn tokens(&self) -> Result<(Arc<TokenFile>, Option<Arc<TokenFile>>), AuthError> {
        self.tokens.lock().get()
    }

    /// Who sent a request.
    fn principal(&self, headers: &HeaderMap, peer: &Peer) -> Result<Principal, String> {
        let now = quarry_model::time::now_nanos();
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| "the Authorization header is not text".to_string())?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or("the Authorization header must be `Bearer TOKEN`")?;
            if token.starts_with("qry_") {
                let (tokens, _) = self
                    .tokens()
                    .map_err(|e| format!("tokens unavailable: {e}"))?;
                return tokens
                    .authenticate(token, now)
                    .map(|r| r.principal())
                    .map_err(|e| e.to_string());
            }
            return match &self.oidc {
                Some(check) => check(token),
                None => {
                    Err("not a Quarry API token, and this server accepts no OIDC tokens".into())
                }
            };
        }
        if let Some(cert) = &peer.cert {
            let node = cert.node().ok_or("the client certificate names no node")?;
            if let Some(r) = self.revoked().find(cert) {
                return Err(format!(
                    "the certificate of node {node} (serial {}) is revoked: {}",
                    cert.serial, r.reason
                ));
            }
            return Ok(Principal {
                name: format!("node:{node}"),
                role: Role::Ingest,
                scope: Role::Ingest.scope(None, false),
                method: Method::Certificate(cert.serial.clone()),
            });
        }
        Err("credentials required: send `Authorization: Bearer TOKEN` (quarry token create) or a client certificate".into())
    }

    /// Denials folded into later records (not written one by one).
    pub fn folded_denials(&self) -> u64 {
        self.denials.lock().folded
    }

    /// Writes the record of a denied request unless its address had one this second (see [`Denials`]).
    async fn record_denial(
        &self,
        access: &AccessLog,
        mut rec: AccessRecord,
        addr: SocketAddr,
    ) -> Result<(), HttpError> {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let Some(earlier) = self.denials.lock().admit((addr.ip(), rec.status), second) else {
            return Ok(());
        };
        if earlier > 0 {
            let d = rec.detail.get_or_insert_with(String::new);
            d.push_str(&format!(
                " (and {earlier} earlier denials from this address, folded into this record)"
            ));
        }
        access.record(rec).await
    }

    /// True the first time a caller is seen since the server started.
    fn first_login(&self, p: &Principal) -> bool {
        self.logged_in
            .lock()
            .insert(format!("{}|{}", p.name, p.method.as_str()))
    }
}

/// What an authenticated request carries to its handler.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where.
    pub remote: SocketAddr,
}

/// The action a route performs; `None` for the public health probe.
fn action_of(method: &HttpMethod, path: &str) -> Option<Action> {
    Some(match (method, path) {
        (_, "/healthz") => return None,
        (_, "/api/v1/ingest" | "/api/v1/ingest/streams" | "/api/v1/commit") => Action::Ingest,
        (_, "/api/v1/query") => Action::Query,
        (_, "/api/v1/hunt") => Action::Hunt,
        (&HttpMethod::POST, p) if p.starts_with("/api/v1/alerts/") => Action::UpdateAlerts,
        (_, p) if p == "/api/v1/alerts" || p.starts_with("/api/v1/alerts/") => Action::ReadAlerts,
        _ => Action::Monitor,
    })
}

/// The authentication and authorisation layer of every route.
pub(crate) async fn authenticate(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(action) = action_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let route = format!("{} {}", req.method(), req.uri().path());
    st.note_token_changes().await;
    let principal = match st.auth.principal(req.headers(), &peer) {
        Ok(p) => p,
        Err(why) => {
            let rec = AccessRecord::new("denied", &route, peer.addr, None)
                .status(401)
                .detail(&why);
            if let Err(e) = st.auth.record_denial(&st.access, rec, peer.addr).await {
                return e.into_response();
            }
            let mut r = error(StatusCode::UNAUTHORIZED, why).into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"quarry\""),
            );
            return r;
        }
    };
    if let Some(why) = principal.refusal(action, &route) {
        let rec = AccessRecord::new("denied", &route, peer.addr, Some(&principal))
            .status(403)
            .detail(&why);
        if let Err(e) = st.auth.record_denial(&st.access, rec, peer.addr).await {
            return e.into_response();
        }
        return error(StatusCode::FORBIDDEN, why).into_response();
    }
    if st.auth.first_login(&principal) {
        let rec = AccessRecord::new("login", &route, peer.addr, Some(&principal));
        if let Err(e) = st.access.record(rec).await {
            return e.into_response();
        }
    }
    req.extensions_mut().insert(Caller {
        principal,
        remote: peer.addr,
    });
    next.run(req).await
}

impl AppState {
    /// Records token creations and revocations made since the last look (by `quarry token` or any
    /// other writer of the tokens file).
    async fn note_token_changes(&self) {
        let (now, before) = match self.auth.tokens() {
            Ok((now, Some(before))) => (now, before),
            Ok(_) => return,
            Err(e) => {
                tracing::error!("cannot read the API tokens: {e}");
                return;
            }
        };
        for t in &now.tokens {
            let old = before.tokens.iter().find(|o| o.id == t.id);
            let what = match (old, t.revoked_ns) {
                (None, _) => "token.create",
                (Some(o), Some(_)) if o.revoked_ns.is_none() => "token.revoke",
                _ => continue,
            };
            let ns = t
                .namespaces
                .as_ref()
                .map(|n| n.join(","))
                .unwrap_or_else(|| "*".into());
            let rec = AccessRecord {
                actor: "tokens file".into(),
                target: Some(t.id.clone()),
                detail: Some(format!(
                    "name={} role={} namespaces={ns} cluster={}",
                    t.name, t.role, t.cluster
                )),
                ..AccessRecord::new(what, "auth/tokens.json", unspecified(), None)
            };
            if let Err(e) = self.access.record(rec).await {
                tracing::error!("cannot record a token change in the access audit: {e:?}");
            }
        }
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// One entry of the access audit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccessRecord {
    /// Who (`token:alice`, `node:ip-10-0-1-5`, an OIDC user, `anonymous`).
    pub actor: String,
    /// Their role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// How they authenticated (`token`, `oidc`, `mtls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Remote address.
    pub remote: String,
    /// What: `login`, `denied`, `query`, `hunt`, `alerts.list`, `alert.read`, `alert.update`,
    /// `token.create`, `token.revoke`, `server.start`, ...
    pub action: String,
    /// The route or file.
    pub route: String,
    /// HTTP status answered.
    pub status: u16,
    /// How many results were returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<u64>,
    /// The query text, hunt rules or filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// What was acted on (an alert id, a token id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Anything else (why access was denied, the scope, a time range).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AccessRecord {
    /// A record of `action` on `route` by `principal` (or an anonymous caller), answered 200.
    pub fn new(
        action: &str,
        route: &str,
        remote: SocketAddr,
        principal: Option<&Principal>,
    ) -> AccessRecord {
        AccessRecord {
            actor: principal.map_or_else(|| "anonymous".into(), |p| p.name.clone()),
            role: principal.map(|p| p.role.as_str().to_string()),
            auth: principal.map(|p| p.method.as_str().to_string()),
            remote: remote.to_string(),
            action: action.into(),
            route: route.into(),
            status: 200,
            results: None,
            query: None,
            target: None,
            detail: None,
        }
    }

    /// A record of `action` by the caller of a request.
    pub fn by(caller: &Caller, action: &str, route: &str) -> AccessRecord {
        AccessRecord::new(action, route, caller.remote, Some(&caller.principal))
    }

    /// Sets the status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, d: &str) -> Self {
        self.detail = Some(d.to_string());
        self
    }
}

/// The access audit: an append-only stream of [`AccessRecord`]s stored as events of kind `access`, so the
/// store's WAL, encryption and integrity chain cover it and auditors search it with the query language
/// (`filter @source = "access"`). Clients can never send events of that kind.
#[derive(Clone)]
pub struct AccessLog {
    store: Store,
}

impl AccessLog {
    /// The access audit of a store.
    pub fn new(store: Store) -> AccessLog {
        AccessLog { store }
    }

    /// Writes a record durably; an error means the request must not be answered with data.
    pub async fn record(&self, rec: AccessRecord) -> Result<(), HttpError> {
        let store = self.store.clone();
        crate::blocking(move || write_access(&store, &rec))
            .await?
            .map_err(|e| {
                tracing::error!("cannot write the access audit: {e}");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the access audit cannot be written, so nothing is served: {e}"),
                )
            })
    }
}

/// Stores one access record (blocking: waits for the WAL's fsync).
pub fn write_access(store: &Store, rec: &AccessRecord) -> Result<(), StoreError> {
    let now = quarry_model::time::now_nanos();
    let raw = serde_json::to_string(rec).unwrap_or_default();
    let mut ev: Event = quarry_parse::reparse("json", &raw, None, now);
    ev.ts = now;
    store
        .ingest(
            BatchKey::default(),
            &Source::of_kind(Kind::Access),
            vec![ev],
        )
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_fold_per_address_and_second() {
        let mut d = Denials::default();
        let ip = |s: &str| (s.parse::<std::net::IpAddr>().unwrap(), 401);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert_eq!(d.admit(a, 7), Some(0));
        assert_eq!(d.admit(a, 7), None);
        assert_eq!(d.admit(a, 7), None);
        assert_eq!(d.admit(b, 7), Some(0));
        assert_eq!(
            d.admit(a, 8),
            Some(2),
            "the next record counts the folded ones"
        );
        assert_eq!(d.folded, 2);
    }
}
