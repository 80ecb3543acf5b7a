//! Quarry's HTTP server over the embedded store.
//!
//! Routes:
//! - `GET /healthz`: 200 once serving (503 when the store refuses writes after a disk failure).
//! - `POST /api/v1/ingest`: a batch of newline-delimited JSON or raw lines, optionally zstd- or
//!   gzip-compressed, with the source descriptor and retry identity in the query string (see
//!   `quarry_transport`). Answers once the batch is in the fsynced WAL.
//! - `POST /api/v1/ingest/streams`: sections of many sources in one body, each with its source descriptor
//!   and `(source_id, seq)` (what `quarry agent` sends); answers once every section is durable.
//! - `POST /api/v1/query`: a Logs Insights query over a time range; errors name line and column.
//! - `POST /api/v1/hunt`: a retro-hunt, `{"rules": [{"origin", "yaml"}], "builtin", "since" | "from",
//!   "to", "max_hits", "base_matches"}`: the rules (or the built-in pack) over stored events through the index; answers
//!   with the matches, per-rule figures and what did not load.
//! - `POST /api/v1/commit`: waits until everything acknowledged is searchable (importers call it at the end).
//! - `GET /api/v1/stats`: store counters and sizes as JSON.
//! - `GET /api/v1/alerts`: alerts raised by live detection, newest first; filters `state`, `rule_id`,
//!   `min_level`, `since` (UTC ns) in the query string.
//! - `GET /api/v1/alerts/{id}`: one alert with all its evidence and history.
//! - `POST /api/v1/alerts/{id}`: moves an alert through its lifecycle: `{"state": "acknowledged" |
//!   "closed" | "open", "note": "...", "by": "..."}`.
//! - `GET /metrics`: Prometheus text format.
//!
//! Bad requests get a 4xx with a JSON `{"error": ...}` body; nothing on the request path panics on input.
//!
//! Every route but `/healthz` needs credentials and a role that permits it ([`auth`]); queries, hunts and
//! alerts only ever show what the caller's namespace scope allows (the scope is planned into the query);
//! and every access is written to the access audit ([`auth::AccessLog`]). [`listen`] serves over TLS, or
//! plain TCP only when asked.
//!
//! Dependencies: axum/tokio (HTTP), tokio-rustls/rustls (TLS), serde_urlencoded (ingest parameters with
//! precise errors), zstd/flate2 (request bodies), parking_lot (caches of the token files), tracing
//! (request logs).

pub mod auth;
pub mod listen;

use auth::{AccessLog, AccessRecord, Auth, Caller};
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::{DefaultBodyLimit, Extension, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quarry_detect::alerts::{alert_json, AlertError, AlertFilter, AlertState};
use quarry_detect::Live;
use quarry_model::{Event, Kind, Source};
use quarry_parse::{Decoder, Format};
use quarry_query::{parse_time_range, run, RunError, RunOptions};
use quarry_store::wal::{BatchKey, WalError};
use quarry_store::{Store, StoreError};
use quarry_transport::{
    ApiError, HuntRequest, IngestParams, IngestResponse, NativeRecord, QueryRequest, QueryResponse,
    StreamHeader, StreamsResponse, TimeSpan, NATIVE_FORMAT,
};
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Largest request body accepted as sent (compressed).
pub const MAX_BODY_BYTES: usize = 256 << 20;
/// Largest request body after decompression.
pub const MAX_DECODED_BYTES: usize = 1 << 30;

/// Counters of the HTTP layer.
#[derive(Default)]
struct HttpMetrics {
    ingest_requests: AtomicU64,
    ingest_rejected: AtomicU64,
    ingest_bytes: AtomicU64,
    queries: AtomicU64,
    query_errors: AtomicU64,
    query_micros: AtomicU64,
}

/// Shared state of the handlers.
pub struct AppState {
    store: Store,
    live: Option<Arc<Live>>,
    metrics: HttpMetrics,
    started: Instant,
    auth: Arc<Auth>,
    access: AccessLog,
    tls: Arc<listen::TlsMetrics>,
}

impl AppState {
    /// State over an open store, with the tokens and revocations of `data_dir`; `live` is the store's
    /// observer (its alerts are served under /api/v1/alerts).
    pub fn new(store: Store, live: Option<Arc<Live>>, auth: Arc<Auth>) -> Arc<AppState> {
        Arc::new(AppState {
            access: AccessLog::new(store.clone()),
            store,
            live,
            metrics: HttpMetrics::default(),
            started: Instant::now(),
            auth,
            tls: Arc::default(),
        })
    }
}

/// Every route's path, as given to the router (a test checks the two agree).
pub const ROUTES: [&str; 10] = [
    "/healthz",
    "/metrics",
    "/api/v1/ingest",
    "/api/v1/ingest/streams",
    "/api/v1/query",
    "/api/v1/stats",
    "/api/v1/hunt",
    "/api/v1/commit",
    "/api/v1/alerts",
    "/api/v1/alerts/{id}",
];

/// The API's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/ingest", post(ingest))
        .route("/api/v1/ingest/streams", post(ingest_streams))
        .route("/api/v1/query", post(query))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/hunt", post(hunt))
        .route("/api/v1/commit", post(commit))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/{id}", get(get_alert).post(update_alert))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route: see the README for the API".into(),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes: over TLS with `tls`, else in plain text
/// (which the caller must have been asked for explicitly).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    match tls {
        Some(cfg) => {
            let listener = listen::TlsListener::new(listener, cfg, state.tls.clone())?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<listen::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<listen::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    }
}

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ApiError {
                error: self.1,
                ..ApiError::default()
            }),
        )
            .into_response()
    }
}

fn error(status: StatusCode, message: String) -> HttpError {
    HttpError(status, message)
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    if st.store.healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "store refuses writes after a disk error; see the server log\n",
        )
            .into_response()
    }
}

/// Runs blocking work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )
    })
}

async fn stats(State(st): State<Arc<AppState>>) -> Result<Response, HttpError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || store.stats()).await?).into_response())
}

async fn commit(State(st): State<Arc<AppState>>) -> Result<Response, HttpError> {
    let store = st.store.clone();
    let stats = blocking(move || store.commit().map(|_| store.stats()))
        .await?
        .map_err(store_error)?;
    Ok(Json(stats).into_response())
}

/// Decompresses a body by its `Content-Encoding`, within [`MAX_DECODED_BYTES`].
fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, HttpError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let limited = |r: &mut dyn Read| -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        r.take(MAX_DECODED_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot decompress the body ({encoding}): {e}"),
                )
            })?;
        if out.len() > MAX_DECODED_BYTES {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body decompresses to more than {MAX_DECODED_BYTES} bytes; send smaller batches"),
            ));
        }
        Ok(out)
    };
    match encoding.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "zstd" => {
            let mut d = zstd::stream::read::Decoder::new(body).map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot decompress the body (zstd): {e}"),
                )
            })?;
            limited(&mut d)
        }
        "gzip" | "x-gzip" => limited(&mut flate2::read::MultiGzDecoder::new(body)),
        other => Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {other:?}: use zstd, gzip or identity"),
        )),
    }
}

/// Events of a batch in Quarry's native format (records already cut by a client's parser).
fn native_events(body: &[u8]) -> Result<(Vec<Event>, Format), String> {
    Ok(native_records(quarry_transport::decode_native(body)?))
}

/// Events of native records, read again from their text, and the format of the last one.
fn native_records(records: Vec<NativeRecord>) -> (Vec<Event>, Format) {
    let mut format = Format::Text;
    let events = records
        .into_iter()
        .map(|r| {
            let mut e = quarry_parse::reparse(&r.format, &r.raw, r.hint.as_deref(), r.ts);
            e.ts = r.ts;
            e.hint = r.hint;
            if r.parse_error.is_some() {
                e.parse_error = r.parse_error;
            }
            format = r.format.parse().unwrap_or(format);
            e
        })
        .collect();
    (events, format)
}

/// Refuses sources a caller may not send: the access audit's kind (only the server writes it), and, for
/// an agent authenticated by its certificate, logs of another node (its own node is filled in when the
/// batch names none).
fn check_source(caller: &Caller, source: &mut Source) -> Result<(), HttpError> {
    if source.kind == Kind::Access {
        return Err(error(
            StatusCode::FORBIDDEN,
            "events of kind access are written only by the server (they are its access audit)"
                .into(),
        ));
    }
    // Extra metadata may not shadow the coordinates or the namespace fields the scope is judged by.
    if let Some(k) = source.extra.keys().find(|k| {
        k.as_str() == "kubernetes.cluster"
            || k.as_str() == "kubernetes.node"
            || k.as_str() == "kubernetes.pod"
            || k.as_str() == "kubernetes.container"
            || quarry_model::NAMESPACE_FIELDS.contains(&k.as_str())
    }) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "the source's extra metadata may not set {k}: give it as the source's own field"
            ),
        ));
    }
    if let quarry_trust::auth::Method::Certificate(_) = caller.principal.method {
        let node = caller
            .principal
            .name
            .strip_prefix("node:")
            .unwrap_or(&caller.principal.name);
        match &source.node {
            None => source.node = Some(node.to_string()),
            Some(n) if n == node => {}
            Some(n) => {
                return Err(error(
                    StatusCode::FORBIDDEN,
                    format!("the certificate of node {node} may not send logs of node {n}"),
                ))
            }
        }
    }
    Ok(())
}

async fn ingest(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    st.metrics.ingest_requests.fetch_add(1, Ordering::Relaxed);
    let result = ingest_batch(&st, caller, q, &headers, &body).await;
    if result.is_err() {
        st.metrics.ingest_rejected.fetch_add(1, Ordering::Relaxed);
    }
    result
}

async fn ingest_batch(
    st: &AppState,
    caller: Caller,
    q: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, HttpError> {
    let params: IngestParams =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("bad ingest parameters: {e}"),
            )
        })?;
    let format_name = params.format.clone().unwrap_or_else(|| "auto".into());
    let native = format_name == NATIVE_FORMAT;
    let format = if native {
        Format::Auto
    } else {
        format_name
            .parse::<Format>()
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{e} (or {NATIVE_FORMAT})")))?
    };
    let body = decode_body(headers, body)?;
    st.metrics
        .ingest_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let store = st.store.clone();
    let response = blocking(move || -> Result<IngestResponse, HttpError> {
        let now = quarry_model::time::now_nanos();
        let (events, used) = if native {
            native_events(&body).map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("bad {NATIVE_FORMAT} batch: {e}"),
                )
            })?
        } else {
            let mut d = Decoder::new(format);
            let mut events = Vec::new();
            d.feed(&body, now, &mut events);
            d.finish(now, &mut events);
            (events, d.format())
        };
        let kind: Kind = params.kind.unwrap_or_else(|| used.kind());
        let mut source = params.source(kind);
        check_source(&caller, &mut source)?;
        let key = BatchKey {
            batch_id: params.batch_id.clone(),
            source_id: params.source_id.clone(),
            seq: params.seq,
        };
        let done = store.ingest(key, &source, events).map_err(store_error)?;
        Ok(IngestResponse {
            events: done.events,
            parse_errors: done.parse_errors,
            duplicate: done.duplicate,
            format: used.as_str().to_string(),
            kind,
        })
    })
    .await??;
    Ok(Json(response).into_response())
}

async fn ingest_streams(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    st.metrics.ingest_requests.fetch_add(1, Ordering::Relaxed);
    let result = ingest_stream_sections(&st, &caller, &headers, &body).await;
    if result.is_err() {
        st.metrics.ingest_rejected.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// Stores the sections of a streams batch: sections of one source in order, sources side by side so the
/// WAL's group commit covers them together.
async fn ingest_stream_sections(
    st: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, HttpError> {
    let body = decode_body(headers, body)?;
    st.metrics
        .ingest_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let mut sections = quarry_transport::decode_streams(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad streams batch: {e}")))?;
    for (h, _) in &mut sections {
        check_source(caller, &mut h.source)?;
    }
    let mut response = StreamsResponse {
        sections: sections.len() as u64,
        ..StreamsResponse::default()
    };
    let mut by_source: Vec<Vec<(StreamHeader, Vec<NativeRecord>)>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (h, recs) in sections {
        let i = *index.entry(h.source_id.clone()).or_insert_with(|| {
            by_source.push(Vec::new());
            by_source.len() - 1
        });
        by_source[i].push((h, recs));
    }
    let mut tasks = Vec::with_capacity(by_source.len());
    for group in by_source {
        let store = st.store.clone();
        tasks.push(tokio::task::spawn_blocking(
            move || -> Result<(u64, u64), StoreError> {
                let (mut events, mut dups) = (0, 0);
                for (h, recs) in group {
                    let key = BatchKey {
                        batch_id: None,
                        source_id: Some(h.source_id),
                        seq: Some(h.seq),
                    };
                    let done = store.ingest(key, &h.source, native_records(recs).0)?;
                    events += done.events;
                    dups += done.duplicate as u64;
                }
                Ok((events, dups))
            },
        ));
    }
    for t in tasks {
        let (events, dups) = t
            .await
            .map_err(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("task failed: {e}"),
                )
            })?
            .map_err(store_error)?;
        response.events += events;
        response.duplicates += dups;
    }
    Ok(Json(response).into_response())
}

/// The live detection, or a 404 saying the server runs without it.
fn live(st: &AppState) -> Result<&Arc<Live>, HttpError> {
    st.live.as_ref().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "this server runs without detection (started with --no-detection)".into(),
        )
    })
}

/// True when every namespace the alert's events name is in the caller's scope (or they name none and
/// cluster-scoped events are granted). Matches naming other namespaces never fold into an alert, so this
/// holds for all of it; its evidence is checked too, for alerts from before alerts kept their namespaces.
fn alert_visible(caller: &Caller, a: &quarry_detect::alerts::Alert) -> bool {
    let scope = &caller.principal.scope;
    if scope.is_all() {
        return true;
    }
    let mut names: Vec<String> = a.namespaces.clone();
    names.extend(a.namespace.iter().cloned());
    for e in &a.evidence {
        quarry_detect::json_namespaces(e, &mut names);
    }
    scope.allows(Kind::Audit, names.iter().map(String::as_str))
}

async fn list_alerts(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Response, HttpError> {
    let mut rec = AccessRecord::by(&caller, "alerts.list", "/api/v1/alerts");
    rec.query = q.clone();
    let result = (|| {
        let filter: AlertFilter = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad alert filter: {e}")))?;
        let alerts = live(&st)?.alerts().list(&filter);
        let body: Vec<serde_json::Value> = alerts
            .iter()
            .filter(|a| alert_visible(&caller, a))
            .map(|a| alert_json(a, false))
            .collect();
        rec.results = Some(body.len() as u64);
        Ok(Json(body).into_response())
    })();
    audited(&st, rec, result).await
}

/// An alert the caller may see: 404 when there is none, 403 when it is outside the caller's scope.
fn visible_alert(
    st: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<quarry_detect::alerts::Alert, HttpError> {
    let a = live(st)?
        .alerts()
        .get(id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no alert {id:?}")))?;
    if !alert_visible(caller, &a) {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!(
                "alert {id} concerns namespaces outside the scope of {}",
                caller.principal.name
            ),
        ));
    }
    Ok(a)
}

async fn get_alert(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let mut rec = AccessRecord::by(&caller, "alert.read", "/api/v1/alerts/{id}");
    rec.target = Some(id.clone());
    let result = visible_alert(&st, &caller, &id).map(|a| {
        rec.results = Some(a.evidence.len() as u64);
        Json(alert_json(&a, true)).into_response()
    });
    audited(&st, rec, result).await
}

/// Body of `POST /api/v1/alerts/{id}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertUpdate {
    state: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

async fn update_alert(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut rec = AccessRecord::by(&caller, "alert.update", "/api/v1/alerts/{id}");
    rec.target = Some(id.clone());
    let result = change_alert(&st, &caller, id, &body, &mut rec).await;
    audited(&st, rec, result).await
}

async fn change_alert(
    st: &AppState,
    caller: &Caller,
    id: String,
    body: &[u8],
    rec: &mut AccessRecord,
) -> Result<Response, HttpError> {
    visible_alert(st, caller, &id)?;
    let live = live(st)?.clone();
    let u: AlertUpdate = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "bad alert update (expected {{\"state\": \"acknowledged\", \"note\": ...}}): {e}"
            ),
        )
    })?;
    rec.detail = Some(format!("state={}", u.state));
    let state: AlertState = u
        .state
        .parse()
        .map_err(|e: String| error(StatusCode::BAD_REQUEST, e))?;
    // The authenticated caller is who acted; a `by` in the body is kept as what they said.
    let by = match u.by {
        Some(b) if b != caller.principal.name => format!("{} (as {b})", caller.principal.name),
        _ => caller.principal.name.clone(),
    };
    let now = quarry_model::time::now_nanos();
    let updated = blocking(move || live.alerts().transition(&id, state, &by, u.note, now))
        .await?
        .map_err(|e| match e {
            AlertError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string()),
            e => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        })?;
    Ok(Json(alert_json(&updated, true)).into_response())
}

fn store_error(e: StoreError) -> HttpError {
    match e {
        StoreError::Wal(WalError::TooLarge(n)) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("batch of {n} bytes is too large for one WAL record; send smaller batches"),
        ),
        StoreError::Wal(_) | StoreError::ReadOnly | StoreError::Observer(_) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        e => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn query(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, HttpError> {
    st.metrics.queries.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let mut rec = AccessRecord::by(&caller, "query", "/api/v1/query");
    let result = run_query_request(&body, st.store.clone(), &caller, &mut rec).await;
    st.metrics
        .query_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    if result.is_err() {
        st.metrics.query_errors.fetch_add(1, Ordering::Relaxed);
    }
    audited(&st, rec, result).await
}

/// Records `rec` (with the status of `result`) in the access audit, then answers `result`; when the
/// record cannot be written, nothing is answered but the error.
async fn audited(
    st: &AppState,
    mut rec: AccessRecord,
    result: Result<Response, HttpError>,
) -> Result<Response, HttpError> {
    rec.status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.0.as_u16(),
    };
    if let Err(e) = &result {
        rec.detail.get_or_insert_with(|| e.1.clone());
    }
    st.access.record(rec).await?;
    result
}

/// What a caller's query reads: its scope narrowed to the logs, or to the access audit when asked (or
/// when that is all the caller may see).
fn scope_of(caller: &Caller, access_audit: bool) -> quarry_model::Scope {
    let s = &caller.principal.scope;
    s.within(&quarry_model::Scope::stream_kinds(
        access_audit || s.only_access_audit(),
    ))
}

async fn run_query_request(
    body: &[u8],
    store: Store,
    caller: &Caller,
    rec: &mut AccessRecord,
) -> Result<Response, HttpError> {
    let req: QueryRequest = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("bad query request: {e}; expected JSON such as {{\"query\": \"stats count(*)\", \"since\": \"1h\"}}"),
        )
    })?;
    rec.query = Some(req.query.clone());
    rec.detail = Some(span_text(&req.span));
    let now = quarry_model::time::now_nanos();
    let (from, to) = time_range(&req.span, now)?;
    let opts = RunOptions {
        from,
        to,
        now_ns: Some(now),
        scope: Some(scope_of(caller, req.access_audit)),
        ..RunOptions::default()
    };
    let out = match blocking(move || run(&store, &req.query, &opts)).await? {
        Ok(out) => out,
        Err(RunError::Query(q)) => {
            rec.detail = Some(q.to_string());
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(ApiError {
                    error: q.to_string(),
                    line: Some(q.line),
                    column: Some(q.column),
                }),
            )
                .into_response());
        }
        Err(RunError::Exec(x)) => return Err(error(StatusCode::BAD_REQUEST, x.to_string())),
        Err(RunError::Store(s)) => {
            return Err(error(StatusCode::INTERNAL_SERVER_ERROR, s.to_string()))
        }
    };
    let rows: Vec<_> = match out.table.to_json() {
        serde_json::Value::Array(rows) => rows
            .into_iter()
            .filter_map(|r| match r {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    rec.results = Some(rows.len() as u64);
    Ok(Json(QueryResponse {
        columns: out.table.columns,
        rows,
        stats: serde_json::to_value(&out.stats).unwrap_or_default(),
    })
    .into_response())
}

/// A request's time range as written, for the access audit.
fn span_text(span: &TimeSpan) -> String {
    match (&span.since, &span.from, &span.to) {
        (Some(s), _, _) => format!("since {s}"),
        (None, f, t) => format!(
            "from {} to {}",
            f.as_deref().unwrap_or("-"),
            t.as_deref().unwrap_or("now")
        ),
    }
}

/// A request's time range in UTC ns; a 400 when it does not parse.
fn time_range(span: &TimeSpan, now: i64) -> Result<(i64, i64), HttpError> {
    parse_time_range(
        span.since.as_deref(),
        span.from.as_deref(),
        span.to.as_deref(),
        now,
    )
    .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn hunt(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, HttpError> {
    st.metrics.queries.fetch_add(1, Ordering::Relaxed);
    let mut rec = AccessRecord::by(&caller, "hunt", "/api/v1/hunt");
    let result = run_hunt(&st, &body, &caller, &mut rec).await;
    if result.is_err() {
        st.metrics.query_errors.fetch_add(1, Ordering::Relaxed);
    }
    audited(&st, rec, result).await
}

async fn run_hunt(
    st: &AppState,
    body: &[u8],
    caller: &Caller,
    rec: &mut AccessRecord,
) -> Result<Response, HttpError> {
    let req: HuntRequest = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("bad hunt request: {e}; expected JSON such as {{\"builtin\": true, \"since\": \"90d\"}}"),
        )
    })?;
    let origins: Vec<&str> = req.rules.iter().map(|r| r.origin.as_str()).collect();
    rec.query = Some(
        match (req.builtin || req.rules.is_empty(), origins.is_empty()) {
            (true, true) => "built-in rules".to_string(),
            (true, false) => format!("built-in rules, {}", origins.join(", ")),
            (false, _) => origins.join(", "),
        },
    );
    rec.detail = Some(span_text(&req.span));
    let (from, to) = time_range(&req.span, quarry_model::time::now_nanos())?;
    let mut set = if req.builtin || req.rules.is_empty() {
        quarry_detect::RuleSet::builtin()
    } else {
        quarry_detect::RuleSet::new()
    };
    for r in &req.rules {
        set.add_yaml(&r.origin, &r.yaml);
    }
    let opts = quarry_detect::hunt::HuntOptions {
        from,
        to,
        max_hits: req.max_hits.unwrap_or(10_000).min(100_000),
        base_matches: req.base_matches,
        scope: Some(scope_of(caller, false)),
    };
    let store = st.store.clone();
    let report = blocking(move || {
        let detector = quarry_detect::Detector::new(&set);
        let problems: Vec<String> = detector.problems().iter().map(|p| p.to_string()).collect();
        if detector.rules().is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("no rules loaded: {}", problems.join("; ")),
            ));
        }
        let report = quarry_detect::hunt::hunt(&store, &set, &detector, &opts)
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let total = report.total_hits;
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["problems"] = problems.into();
        Ok((v, total))
    })
    .await??;
    rec.results = Some(report.1);
    Ok(Json(report.0).into_response())
}

async fn metrics(State(st): State<Arc<AppState>>) -> Result<Response, HttpError> {
    let store = st.store.clone();
    let s = blocking(move || store.stats()).await?;
    let m = &st.metrics;
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    for (name, kind, help, v) in [
        (
            "quarry_ingest_requests_total",
            "counter",
            "Ingest requests received.",
            c(&m.ingest_requests) as f64,
        ),
        (
            "quarry_ingest_rejected_total",
            "counter",
            "Ingest requests refused with an error (nothing stored).",
            c(&m.ingest_rejected) as f64,
        ),
        (
            "quarry_ingest_body_bytes_total",
            "counter",
            "Decompressed ingest body bytes received.",
            c(&m.ingest_bytes) as f64,
        ),
        (
            "quarry_ingest_batches_total",
            "counter",
            "Batches stored.",
            s.batches as f64,
        ),
        (
            "quarry_ingest_duplicate_batches_total",
            "counter",
            "Retried batches recognised and not stored again.",
            s.duplicate_batches as f64,
        ),
        (
            "quarry_ingest_events_total",
            "counter",
            "Events stored.",
            s.events_ingested as f64,
        ),
        (
            "quarry_ingest_raw_bytes_total",
            "counter",
            "Raw bytes of events stored.",
            s.raw_bytes_ingested as f64,
        ),
        (
            "quarry_ingest_parse_errors_total",
            "counter",
            "Events stored as raw text because they did not parse.",
            s.parse_errors as f64,
        ),
        (
            "quarry_wal_torn_bytes",
            "gauge",
            "Bytes cut from a torn WAL tail at the last start (never acknowledged).",
            s.wal_torn_bytes as f64,
        ),
        (
            "quarry_wal_replayed_records",
            "gauge",
            "WAL records replayed at the last start.",
            s.wal_replayed_records as f64,
        ),
        (
            "quarry_wal_bytes",
            "gauge",
            "Bytes in WAL files.",
            s.wal_bytes as f64,
        ),
        (
            "quarry_index_errors_total",
            "counter",
            "Failures adding events to an index (the events stay in the WAL).",
            s.index_errors as f64,
        ),
        (
            "quarry_commits_total",
            "counter",
            "Partition commits.",
            s.commits as f64,
        ),
        (
            "quarry_store_events",
            "gauge",
            "Events searchable in the store.",
            s.events_stored as f64,
        ),
        (
            "quarry_store_raw_bytes",
            "gauge",
            "Raw bytes of the events in the store.",
            s.raw_bytes_stored as f64,
        ),
        (
            "quarry_store_partition_bytes",
            "gauge",
            "Bytes on disk in partitions.",
            s.partition_bytes as f64,
        ),
        (
            "quarry_store_partitions",
            "gauge",
            "Partitions (kind and day).",
            s.partitions as f64,
        ),
        (
            "quarry_retention_deleted_partitions_total",
            "counter",
            "Partitions deleted by retention.",
            s.retention_partitions as f64,
        ),
        (
            "quarry_retention_deleted_events_total",
            "counter",
            "Events deleted by retention.",
            s.retention_events as f64,
        ),
        (
            "quarry_retention_namespace_kept_total",
            "counter",
            "Times a namespace's longer retention kept a partition its kind's rules would have deleted.",
            s.retention_namespace_kept as f64,
        ),
        (
            "quarry_retention_namespace_deleted_partitions_total",
            "counter",
            "Partitions of a namespace's own deleted by its rule (also in quarry_retention_deleted_partitions_total).",
            s.retention_namespace_partitions as f64,
        ),
        (
            "quarry_retention_held_partitions",
            "gauge",
            "Partitions retention would have deleted but a legal hold kept, at its last pass.",
            s.retention_held as f64,
        ),
        (
            "quarry_queries_total",
            "counter",
            "Queries run.",
            c(&m.queries) as f64,
        ),
        (
            "quarry_query_errors_total",
            "counter",
            "Queries refused or failed.",
            c(&m.query_errors) as f64,
        ),
        (
            "quarry_query_seconds_total",
            "counter",
            "Time spent running queries.",
            c(&m.query_micros) as f64 / 1e6,
        ),
    ] {
        put(name, kind, help, v);
    }
    if let Some(live) = &st.live {
        let (d, dl) = (live.metrics(), live.delivery());
        for (name, help, v) in [
            (
                "quarry_detect_events_total",
                "Events run through the detection rules.",
                c(&d.events) as f64,
            ),
            (
                "quarry_detect_matches_total",
                "Rule matches.",
                c(&d.matches) as f64,
            ),
            (
                "quarry_alerts_opened_total",
                "Alerts opened (matches folded into an open alert are not counted).",
                c(&d.alerts_opened) as f64,
            ),
            (
                "quarry_detect_seconds_total",
                "Time spent matching events against rules.",
                c(&d.detect_nanos) as f64 / 1e9,
            ),
            (
                "quarry_correlation_late_total",
                "Matches that arrived later than the allowed lateness and were left out of correlations.",
                c(&d.correlation_late) as f64,
            ),
            (
                "quarry_alert_deliveries_total",
                "Alert deliveries that succeeded (alert x sink).",
                c(&dl.delivered) as f64,
            ),
            (
                "quarry_alert_delivery_seconds_total",
                "Time from raising to delivering alerts, summed over deliveries (divide by quarry_alert_deliveries_total for the mean).",
                c(&dl.latency_ms_sum) as f64 / 1e3,
            ),
            (
                "quarry_alert_delivery_retries_total",
                "Alert delivery attempts that failed and were retried.",
                c(&dl.retries) as f64,
            ),
            (
                "quarry_alert_dead_letters_total",
                "Alert deliveries given up and written to deadletter.jsonl.",
                c(&dl.dead_lettered) as f64,
            ),
            (
                "quarry_intel_matches_total",
                "Events that matched a threat-intelligence indicator.",
                c(&d.intel_matches) as f64,
            ),
            (
                "quarry_baseline_new_total",
                "Behaviours seen for the first time after learning (each raised an alert).",
                c(&d.baseline_new) as f64,
            ),
            (
                "quarry_baseline_full_drops_total",
                "New behaviours neither learned nor reported because their baseline was full.",
                c(&d.baseline_full_drops) as f64,
            ),
            (
                "quarry_baseline_state_corrupt_total",
                "Baseline files found unreadable at start (learning started again).",
                c(&d.baseline_state_corrupt) as f64,
            ),
        ] {
            put(name, "counter", help, v);
        }
        put(
            "quarry_detect_rules",
            "gauge",
            "Rules loaded.",
            live.detector().rules().len() as f64,
        );
        let b = live.baseline_status();
        put(
            "quarry_baseline_keys",
            "gauge",
            "Behaviour keys learned.",
            b.keys as f64,
        );
        put(
            "quarry_baseline_learning",
            "gauge",
            "1 while baselines only learn (nothing is reported yet).",
            f64::from(u8::from(b.enabled && b.learning)),
        );
    }
    put(
        "quarry_access_denials_folded_total",
        "counter",
        "Denied requests not written to the access audit one by one (at most one record per address and second; the next record counts them).",
        st.auth.folded_denials() as f64,
    );
    put(
        "quarry_tls_handshakes_total",
        "counter",
        "TLS handshakes completed.",
        c(&st.tls.handshakes) as f64,
    );
    put(
        "quarry_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed: wrong CA, bad or revoked client certificates, plain text, timeouts.",
        c(&st.tls.failures) as f64,
    );
    put(
        "quarry_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        st.started.elapsed().as_secs_f64(),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_lists_every_route_of_the_router() {
        let src = include_str!("lib.rs");
        let body =
            &src[src.find("pub fn router(").unwrap()..src.find("/// Serves the API").unwrap()];
        let routed: Vec<&str> = body
            .split(".route(\"")
            .skip(1)
            .map(|r| &r[..r.find('"').unwrap()])
            .collect();
        assert_eq!(routed, super::ROUTES);
    }
}
