//! Quarry's wire protocol and its HTTP client.
//!
//! `POST /api/v1/ingest` takes a batch: newline-delimited JSON or raw lines in the body (optionally
//! `Content-Encoding: zstd` or `gzip`), and the [`IngestParams`] in the query string:
//! `kind`, `format`, `cluster`, `node`, `namespace`, `pod`, `container`, and for retries `batch_id`,
//! `source_id`, `seq`. The answer ([`IngestResponse`]) comes once the batch is durable.
//! `POST /api/v1/ingest/streams` takes sections of several sources in one body (what the node agent sends):
//! each is a [`StreamHeader`] line and its native records; see [`encode_stream_section`].
//! `POST /api/v1/query` takes a [`QueryRequest`] and answers a [`QueryResponse`] or an [`ApiError`].

use quarry_model::{Kind, Source};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Parameters of an ingest batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestParams {
    /// Source kind; when absent the server takes it from the detected format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Parser to use (`auto` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Unique id of this batch: a retry with the same id is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Id of the stream the batch belongs to (for example node and file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// Sequence number of the batch in its source; a batch at or below the highest stored one is a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl IngestParams {
    /// The source descriptor, given the kind finally used.
    pub fn source(&self, kind: Kind) -> Source {
        Source {
            kind,
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            container: self.container.clone(),
            extra: Default::default(),
        }
    }

    /// Parameters that describe `source`.
    pub fn for_source(source: &Source) -> Self {
        IngestParams {
            kind: Some(source.kind),
            cluster: source.cluster.clone(),
            node: source.node.clone(),
            namespace: source.namespace.clone(),
            pod: source.pod.clone(),
            container: source.container.clone(),
            ..IngestParams::default()
        }
    }
}

/// The answer to an ingest batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// Events stored.
    pub events: u64,
    /// Of which stored with a parse-error flag (kept as raw text).
    pub parse_errors: u64,
    /// True if the batch had been stored before; nothing was stored again.
    pub duplicate: bool,
    /// Format that read the batch.
    pub format: String,
    /// Kind the events were stored as.
    pub kind: Kind,
}

/// The time range of a query or hunt, as its request's `since`, `from` and `to` fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSpan {
    /// Relative start such as `1h` or `90d` (exclusive with `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End (RFC 3339), now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// The query text.
    pub query: String,
    /// Over which events.
    #[serde(flatten)]
    pub span: TimeSpan,
    /// Search Quarry's access audit (who searched, hunted, changed alerts or tokens) instead of the logs;
    /// an auditor's queries always do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub access_audit: bool,
}

/// A retro-hunt: Sigma rules run over stored events (`POST /api/v1/hunt`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HuntRequest {
    /// Rule files: where each came from (for error messages) and its YAML.
    #[serde(default)]
    pub rules: Vec<RuleText>,
    /// Also run the built-in rule pack (it runs alone when no rules are given).
    #[serde(default)]
    pub builtin: bool,
    /// Over which events.
    #[serde(flatten)]
    pub span: TimeSpan,
    /// Most matches returned (the earliest); the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hits: Option<usize>,
    /// Also list the matches of rules that only feed correlations.
    #[serde(default)]
    pub base_matches: bool,
}

/// One rule file of a [`HuntRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleText {
    /// Where it came from, e.g. its path on the client.
    pub origin: String,
    /// The file's YAML (one or more Sigma documents).
    pub yaml: String,
}

/// Query results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResponse {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Rows as objects keyed by column.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// How the query ran.
    pub stats: serde_json::Value,
}

/// An error answer of the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
    /// 1-based line of a query error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column of a query error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not reach the server or read its answer.
    #[error("cannot talk to {url}: {source}")]
    Http {
        /// The server.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// The TLS set-up is wrong (a CA or client certificate file).
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused the request.
    #[error("server answered {status}: {}", .error.error)]
    Api {
        /// HTTP status.
        status: u16,
        /// Its explanation.
        error: ApiError,
    },
}

/// A blocking client of a Quarry server.
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

/// An HTTP GET for the OIDC key set (`quarry_trust::oidc::JwksFetcher`): TLS trust from `ca`, or the
/// system's bundle (`SSL_CERT_FILE`, else `/etc/ssl/certs/ca-certificates.crt`) when none is given; 5 s
/// timeout.
pub fn jwks_fetcher(
    ca: Option<std::path::PathBuf>,
) -> Result<quarry_trust::oidc::JwksFetcher, ClientError> {
    let ca = ca.unwrap_or_else(|| {
        std::env::var_os("SSL_CERT_FILE")
            .map(Into::into)
            .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into())
    });
    let tls = quarry_trust::tls::client_config(&quarry_trust::tls::ClientTls {
        ca: Some(ca),
        ..Default::default()
    })
    .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5));
    if let Some(cfg) = tls {
        builder = builder.use_preconfigured_tls(cfg);
    }
    let http = builder.build().map_err(|source| ClientError::Http {
        url: "OIDC issuer".into(),
        source,
    })?;
    Ok(Box::new(move |url: &str| {
        let resp = http.get(url).send().map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.bytes().map(|b| b.to_vec()).map_err(|e| e.to_string())
    }))
}

/// How a client reaches the server: TLS trust, credentials and patience.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requests fail after this long.
    pub timeout: Duration,
    /// The CA bundle that signs the server's certificate, and a client certificate for mTLS.
    pub tls: quarry_trust::tls::ClientTls,
    /// An API or OIDC token sent as `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(600),
            tls: quarry_trust::tls::ClientTls::default(),
            token: None,
        }
    }
}

impl Client {
    /// A client of the server at `base` (for example `http://127.0.0.1:7700`) with no credentials.
    pub fn new(base: &str) -> Result<Client, ClientError> {
        Client::with_options(base, &ClientOptions::default())
    }

    /// A client of the server at `base`: `https://` needs a CA in `opts.tls`.
    pub fn with_options(base: &str, opts: &ClientOptions) -> Result<Client, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        let mut builder = reqwest::blocking::Client::builder().timeout(opts.timeout);
        let tls = quarry_trust::tls::client_config(&opts.tls)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        match (base.starts_with("https://"), tls) {
            (true, Some(cfg)) => builder = builder.use_preconfigured_tls(cfg).https_only(true),
            (true, None) => {
                return Err(ClientError::Tls(format!(
                    "{base} is https: give the CA that signed its certificate with --ca FILE (quarry certs init writes ca.pem)"
                )))
            }
            (false, Some(_)) => {
                return Err(ClientError::Tls(format!(
                    "a CA was given but {base} is plain http: use https://"
                )))
            }
            (false, None) => {}
        }
        if let Some(token) = &opts.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::Tls("the token is not valid header text".into()))?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        let http = builder.build().map_err(|source| ClientError::Http {
            url: base.clone(),
            source,
        })?;
        Ok(Client { base, http })
    }

    fn check(
        &self,
        resp: reqwest::blocking::Response,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().unwrap_or_default();
        let error = serde_json::from_str(&text).unwrap_or(ApiError {
            error: text,
            ..ApiError::default()
        });
        Err(ClientError::Api {
            status: status.as_u16(),
            error,
        })
    }

    fn http_err(&self, source: reqwest::Error) -> ClientError {
        ClientError::Http {
            url: self.base.clone(),
            source,
        }
    }

    /// Sends one batch (`body` is uncompressed; it is sent zstd-compressed) and waits until it is durable.
    pub fn ingest(
        &self,
        params: &IngestParams,
        body: &[u8],
    ) -> Result<IngestResponse, ClientError> {
        let compressed = zstd::bulk::compress(body, 1).unwrap_or_else(|_| body.to_vec());
        let resp = self
            .http
            .post(format!("{}/api/v1/ingest", self.base))
            .query(params)
            .header("content-encoding", "zstd")
            .header("content-type", "application/octet-stream")
            .body(compressed)
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp)?.json().map_err(|e| self.http_err(e))
    }

    /// Sends a streams batch whose body is already zstd-compressed (concatenated frames of sections made
    /// with [`encode_stream_section`]) and waits until it is durable.
    pub fn ingest_streams(
        &self,
        zstd_body: impl Into<reqwest::blocking::Body>,
    ) -> Result<StreamsResponse, ClientError> {
        let resp = self
            .http
            .post(format!("{}/api/v1/ingest/streams", self.base))
            .header("content-encoding", "zstd")
            .header("content-type", "application/x-ndjson")
            .body(zstd_body)
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp)?.json().map_err(|e| self.http_err(e))
    }

    /// Runs a query.
    pub fn query(&self, req: &QueryRequest) -> Result<QueryResponse, ClientError> {
        let resp = self
            .http
            .post(format!("{}/api/v1/query", self.base))
            .json(req)
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp)?.json().map_err(|e| self.http_err(e))
    }

    /// Runs a retro-hunt on the server; the body is the detection crate's hunt report as JSON.
    pub fn hunt(&self, req: &HuntRequest) -> Result<serde_json::Value, ClientError> {
        let resp = self
            .http
            .post(format!("{}/api/v1/hunt", self.base))
            .json(req)
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp)?.json().map_err(|e| self.http_err(e))
    }

    /// Waits until everything the server acknowledged is searchable.
    pub fn commit(&self) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(format!("{}/api/v1/commit", self.base))
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp).map(|_| ())
    }

    /// Alerts, newest first; `query` is the filter's query string (`state=open&min_level=high`).
    pub fn alerts(&self, query: &str) -> Result<Vec<serde_json::Value>, ClientError> {
        let resp = self
            .http
            .get(format!("{}/api/v1/alerts?{query}", self.base))
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp)?.json().map_err(|e| self.http_err(e))
    }

    /// One alert with all its evidence and history.
    pub fn alert(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let resp = self
            .http
            .get(format!("{}/api/v1/alerts/{id}", self.base))
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp)?.json().map_err(|e| self.http_err(e))
    }

    /// Moves an alert to `state` (open, acknowledged, closed); returns it.
    pub fn update_alert(
        &self,
        id: &str,
        state: &str,
        note: Option<&str>,
        by: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let resp = self
            .http
            .post(format!("{}/api/v1/alerts/{id}", self.base))
            .json(&serde_json::json!({"state": state, "note": note, "by": by}))
            .send()
            .map_err(|e| self.http_err(e))?;
        self.check(resp)?.json().map_err(|e| self.http_err(e))
    }

    /// True when the server answers its health probe.
    pub fn healthy(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok_and(|r| r.status().is_success())
    }
}

/// The `format` of an ingest batch of records already read by a Quarry decoder (see [`NativeRecord`]).
pub const NATIVE_FORMAT: &str = "quarry";

/// One record of a batch in the native format: an event as a Quarry decoder produced it, so that the
/// server stores exactly these records (it reads each one again with `quarry_parse::reparse`) instead of
/// splitting the text into records itself. The body is one JSON object per line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeRecord {
    /// Event time, UTC nanoseconds.
    pub ts: i64,
    /// The record's original text.
    pub raw: String,
    /// Name of the format that read it (`Event::format`).
    pub format: String,
    /// What the parser needs to read `raw` again (`Event::hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Why the record could not be parsed (`Event::parse_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
}

/// The borrowed form of [`NativeRecord`], written without copying the event.
#[derive(Serialize)]
struct NativeRecordRef<'a> {
    ts: i64,
    raw: &'a str,
    format: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parse_error: Option<&'a str>,
}

/// Appends `events` to `out` in the native format, one JSON object per line.
pub fn encode_native(events: &[quarry_model::Event], out: &mut Vec<u8>) {
    for ev in events {
        let rec = NativeRecordRef {
            ts: ev.ts,
            raw: &ev.raw,
            format: ev.format,
            hint: ev.hint.as_deref(),
            parse_error: ev.parse_error.as_deref(),
        };
        // Writing plain strings and integers into a Vec cannot fail.
        if serde_json::to_writer(&mut *out, &rec).is_ok() {
            out.push(b'\n');
        }
    }
}

/// Reads a native-format body; blank lines are ignored. The error names the 1-based line that is not a
/// record.
pub fn decode_native(body: &[u8]) -> Result<Vec<NativeRecord>, String> {
    let mut out = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec = serde_json::from_slice::<NativeRecord>(line)
            .map_err(|e| format!("line {}: not a native record: {e}", i + 1))?;
        out.push(rec);
    }
    Ok(out)
}

/// The header of one section of a streams batch (`POST /api/v1/ingest/streams`): the records that follow it
/// come from one source, and `(source_id, seq)` lets the server store a retried section once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamHeader {
    /// Where the records come from, with all its metadata.
    pub source: Source,
    /// Id of the stream (for example node and file identity).
    pub source_id: String,
    /// Position of the section in its stream; increases with every section, a lower or equal one is a retry.
    pub seq: u64,
    /// Number of native records that follow.
    pub records: usize,
}

#[derive(Serialize, Deserialize)]
struct StreamLine<T> {
    stream: T,
}

/// Appends one section (a header line and `events` as native records) to a streams batch body.
pub fn encode_stream_section(
    source: &Source,
    source_id: &str,
    seq: u64,
    events: &[quarry_model::Event],
    out: &mut Vec<u8>,
) {
    encode_stream_header(source, source_id, seq, events.len(), out);
    encode_native(events, out);
}

/// Appends the header line of a section whose `records` native records (see [`encode_native`]) the
/// caller appends next.
pub fn encode_stream_header(
    source: &Source,
    source_id: &str,
    seq: u64,
    records: usize,
    out: &mut Vec<u8>,
) {
    #[derive(Serialize)]
    struct HeaderRef<'a> {
        source: &'a Source,
        source_id: &'a str,
        seq: u64,
        records: usize,
    }
    let line = StreamLine {
        stream: HeaderRef {
            source,
            source_id,
            seq,
            records,
        },
    };
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

/// Reads a streams batch body: sections of a header line followed by its records. The error names the
/// 1-based line at fault.
pub fn decode_streams(body: &[u8]) -> Result<Vec<(StreamHeader, Vec<NativeRecord>)>, String> {
    let mut out: Vec<(StreamHeader, Vec<NativeRecord>)> = Vec::new();
    let mut want = 0usize;
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match out.last_mut() {
            Some((_, recs)) if want > 0 => {
                let rec = serde_json::from_slice::<NativeRecord>(line)
                    .map_err(|e| format!("line {}: not a native record: {e}", i + 1))?;
                recs.push(rec);
                want -= 1;
            }
            _ => {
                let h = serde_json::from_slice::<StreamLine<StreamHeader>>(line)
                    .map_err(|e| format!("line {}: not a stream header: {e}", i + 1))?
                    .stream;
                want = h.records;
                out.push((h, Vec::with_capacity(want.min(1 << 16))));
            }
        }
    }
    if want > 0 {
        return Err(format!(
            "the body ends {want} records short of its last header"
        ));
    }
    Ok(out)
}

/// The answer to a streams batch, given once every section is durable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamsResponse {
    /// Sections received.
    pub sections: u64,
    /// Events stored.
    pub events: u64,
    /// Sections that had been stored before and were skipped.
    pub duplicates: u64,
}

#[cfg(test)]
mod native_tests {
    use super::*;
    use quarry_model::Event;

    #[test]
    fn round_trip() {
        let mut a = Event::text(1_714_564_800_123_456_789, "plain \"quoted\" line\twith tab");
        a.format = "syslog";
        let mut b = Event::text(-5, "multi\nline ✓ \u{0}");
        b.format = "vpcflow";
        b.hint = Some("${version} ${srcaddr}".into());
        b.parse_error = Some("bad field 3".into());
        b.message = Some("not sent".into());
        let mut body = Vec::new();
        encode_native(&[a.clone(), b.clone()], &mut body);
        assert_eq!(body.iter().filter(|&&c| c == b'\n').count(), 2);
        let recs = decode_native(&body).unwrap();
        assert_eq!(
            recs,
            vec![
                NativeRecord {
                    ts: a.ts,
                    raw: a.raw.clone(),
                    format: "syslog".into(),
                    hint: None,
                    parse_error: None,
                },
                NativeRecord {
                    ts: -5,
                    raw: b.raw.clone(),
                    format: "vpcflow".into(),
                    hint: b.hint.clone(),
                    parse_error: b.parse_error.clone(),
                },
            ]
        );
        // CRLF and blank lines are tolerated
        let crlf = String::from_utf8(body).unwrap().replace('\n', "\r\n\r\n");
        assert_eq!(decode_native(crlf.as_bytes()).unwrap().len(), 2);
        assert_eq!(decode_native(b"").unwrap(), vec![]);
    }

    #[test]
    fn stream_sections_round_trip() {
        let src = Source {
            kind: Kind::Container,
            pod: Some("web-1".into()),
            extra: [("kubernetes.labels.app".to_string(), "web".to_string())].into(),
            ..Source::default()
        };
        let evs = vec![Event::text(1, "a"), Event::text(2, "b\nc")];
        let mut body = Vec::new();
        encode_stream_section(&src, "n1:1:2:3", 40, &evs, &mut body);
        encode_stream_section(&Source::of_kind(Kind::Syslog), "n1:9", 7, &[], &mut body);
        encode_stream_section(&src, "n1:1:2:3", 42, &evs[1..], &mut body);
        let got = decode_streams(&body).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0.source, src);
        assert_eq!((got[0].0.seq, got[0].1.len()), (40, 2));
        assert_eq!(got[1].1.len(), 0);
        assert_eq!(got[2].1[0].raw, "b\nc");
        // a short body and a record where a header belongs are errors with the line
        let cut = &body[..body.len() - 3];
        assert!(decode_streams(cut).unwrap_err().starts_with("line 6:"));
        let e = decode_streams(b"{\"ts\":1,\"raw\":\"a\",\"format\":\"text\"}").unwrap_err();
        assert!(e.starts_with("line 1: not a stream header"), "{e}");
        let mut short = Vec::new();
        encode_stream_section(&src, "s", 1, &evs, &mut short);
        short.truncate(short.iter().rposition(|&b| b == b'{').unwrap());
        assert!(decode_streams(&short)
            .unwrap_err()
            .contains("1 records short"));
    }

    #[test]
    fn errors_name_the_line() {
        let body = b"{\"ts\":1,\"raw\":\"a\",\"format\":\"text\"}\n\n{\"ts\":2,\"raw\":\"b\"}\n";
        let e = decode_native(body).unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        assert!(e.contains("format"), "{e}");
        let e =
            decode_native(b"{\"ts\":1,\"raw\":\"a\",\"format\":\"text\"}\nnot json").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = decode_native(b"{\"ts\":\"x\",\"raw\":\"a\",\"format\":\"text\"}").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
        let e = decode_native(b"\xff\xfe").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
    }
}
