//! `quarry`: one binary for every part of Quarry. This file only parses arguments and wires the crates
//! together; the work lives in `crates/*`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use quarry_model::Kind;
use quarry_parse::{Format, Multiline};
use quarry_query::{parse_time_range, RunOptions, Table};
use quarry_store::{Retention, Store, StoreConfig, StoreError};
use quarry_transport::{Client, QueryRequest};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod alerts;
mod certs;
mod hold;
mod hunt;
mod keys;
mod rules;
mod token;
mod verify;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "quarry",
    version,
    about = "Kubernetes security logging: collect every log, keep it tamper-evident, hunt through it",
    long_about = "Quarry keeps a cluster's container, node, audit, VPC flow and CloudTrail logs and lets you \
                  hunt through them with the CloudWatch Logs Insights query language.\n\n\
                  Start with `quarry demo`: it loads a generated cluster's last hour (with an attack in it), \
                  walks you through a hunt and leaves a server running for your own queries."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log level of Quarry's own logs (error, warn, info, debug, trace); JSON when stderr is not a terminal.
    #[arg(long, global = true, env = "QUARRY_LOG", default_value = "info")]
    log: String,
    /// A TOML file of settings, e.g. `data_dir = "/var/lib/quarry"` and `[retention] audit = "2190d"`.
    /// Its keys are the long options with `_` for `-`; environment variables (QUARRY_*) and options
    /// given on the command line win over it.
    #[arg(long, global = true, env = "QUARRY_CONFIG")]
    config: Option<PathBuf>,
}

/// Settings a configuration file may hold, and the environment variable each one fills.
const CONFIG_KEYS: [(&str, &str); 19] = [
    ("data_dir", "QUARRY_DATA_DIR"),
    ("listen", "QUARRY_LISTEN"),
    ("server", "QUARRY_SERVER"),
    ("cluster", "QUARRY_CLUSTER"),
    ("commit_interval", "QUARRY_COMMIT_INTERVAL"),
    ("retention", "QUARRY_RETENTION"),
    ("retention_size", "QUARRY_RETENTION_SIZE"),
    ("retention_namespace", "QUARRY_RETENTION_NAMESPACE"),
    ("retention_interval", "QUARRY_RETENTION_INTERVAL"),
    ("writer_memory_mb", "QUARRY_WRITER_MEMORY_MB"),
    ("writer_threads", "QUARRY_WRITER_THREADS"),
    ("log", "QUARRY_LOG"),
    ("state_dir", "QUARRY_STATE_DIR"),
    ("pods_root", "QUARRY_PODS_ROOT"),
    ("node_name", "NODE_NAME"),
    ("metrics_listen", "QUARRY_METRICS_LISTEN"),
    ("master_key_file", "QUARRY_MASTER_KEY_FILE"),
    ("signing_key", "QUARRY_SIGNING_KEY"),
    ("digest_interval", "QUARRY_DIGEST_INTERVAL"),
];

/// The table of agent settings in the configuration file (read by `quarry agent` itself).
const AGENT_TABLE: &str = "agent";

/// Reads the configuration file named by `--config` or `QUARRY_CONFIG` (before the arguments are
/// parsed) and sets the QUARRY_* variables it fills that are not set already, so that the order of
/// precedence is: command line, environment, file, defaults.
fn load_config() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--config") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        });
    let Some(path) = from_args.or_else(|| std::env::var("QUARRY_CONFIG").ok()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the configuration file {path}"))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{path} is not valid TOML"))?;
    for (key, value) in table {
        if key == AGENT_TABLE {
            continue;
        }
        let Some((_, var)) = CONFIG_KEYS
            .iter()
            .find(|(k, _)| *k == key.replace('-', "_"))
        else {
            let known: Vec<&str> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
            bail!(
                "{path}: unknown setting {key:?}; known settings: {}, and the [{AGENT_TABLE}] table",
                known.join(", ")
            );
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Table(t) => t
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, text);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server: ingest API, store and query API on local disk.
    Server(ServerArgs),
    /// Load log files and folders (plain, .gz, .zst) into a store or a running server.
    Import(ImportArgs),
    /// Run a query (CloudWatch Logs Insights syntax) and print the result.
    Query(QueryArgs),
    /// Generate a small cluster's last hour with an attack in it, load it, hunt, and serve it.
    Demo(DemoArgs),
    /// Run the node agent (a DaemonSet): tail the node's container and node logs, add Kubernetes metadata,
    /// redact secrets and ship everything to the server, forgetting a line only once the server has it
    /// on disk. Settings beyond these options go in the configuration file's [agent] table (see the README).
    Agent(AgentArgs),
    /// Work with Sigma detection rules: test them on events, lint them, list them.
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// List the alerts detection raised, show one, acknowledge, close or reopen it.
    Alerts(alerts::AlertsArgs),
    /// Retro-hunt: run Sigma rules over stored events, through the index.
    ///
    /// Each rule becomes an index query that every event it can match passes; the rules then decide on
    /// the events the index leaves, exactly as live detection does, and correlations run in event time.
    /// Example: quarry hunt --data-dir /var/lib/quarry --rules ./my-rules --since 90d
    Hunt(hunt::HuntArgs),
    /// Certificates for TLS and mTLS: a CA, the server's, and one per agent node; revoke an agent's.
    #[command(subcommand)]
    Certs(certs::CertsCmd),
    /// API tokens: create (with a role and namespaces), list, revoke.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Encryption at rest: generate a master key, rotate it (no data is rewritten).
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Legal holds: time ranges of kinds that retention keeps until released.
    #[command(subcommand)]
    Hold(hold::HoldCmd),
    /// Prove a data directory unaltered: walk its signed digest chain and check every file against it;
    /// reports modified, missing, reordered or inserted data and time gaps, and exits non-zero on any.
    Verify(verify::VerifyArgs),
}

#[derive(Args)]
struct AgentArgs {
    /// The server's base URL, e.g. https://quarry.logging.svc:7700.
    #[arg(long, env = "QUARRY_SERVER")]
    server: String,
    /// CA bundle (PEM) that signs the server's certificate.
    #[arg(long, env = "QUARRY_CA")]
    ca: Option<PathBuf>,
    /// This node's client certificate (PEM; `quarry certs init --node NAME` writes agent-NAME.pem): the
    /// server takes it as proof of which node sends.
    #[arg(long, env = "QUARRY_AGENT_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "QUARRY_AGENT_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// An API token with the ingest role, for nodes without a certificate.
    #[arg(long, env = "QUARRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Directory for checkpoints and the disk queue (keep it across restarts: a hostPath).
    #[arg(long, env = "QUARRY_STATE_DIR")]
    state_dir: PathBuf,
    /// The kubelet's pod log directory [default: /var/log/pods].
    #[arg(long, env = "QUARRY_PODS_ROOT")]
    pods_root: Option<PathBuf>,
    /// The /var/log/containers link directory (links leading outside the pods root are followed)
    /// [default: /var/log/containers, none when --pods-root is given].
    #[arg(long, env = "QUARRY_CONTAINERS_ROOT")]
    containers_root: Option<PathBuf>,
    /// This node's name [default: the host name]; the DaemonSet passes spec.nodeName.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Cluster name added to every event.
    #[arg(long, env = "QUARRY_CLUSTER")]
    cluster: Option<String>,
    /// Do not watch the Kubernetes API: metadata comes from log paths only.
    #[arg(long)]
    no_kubernetes: bool,
    /// Kubernetes API URL [default: in-cluster configuration, then kubeconfig].
    #[arg(long, env = "QUARRY_KUBERNETES_API")]
    kubernetes_api: Option<String>,
    /// Address of /metrics and /healthz [default: 0.0.0.0:7701]; empty for none.
    #[arg(long, env = "QUARRY_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// A node file to follow, as KIND:PATH, e.g. syslog:/var/log/auth.log or
    /// audit:/var/log/kubernetes/audit/audit.log (repeatable; read from its end when first found).
    #[arg(long = "file", value_name = "KIND:PATH")]
    files: Vec<String>,
    /// Load and check the configuration (file, environment and options, exactly as the agent would),
    /// print a short summary and exit: 0 when the agent would start with it, non-zero with the error
    /// when not. Touches neither the state directory nor the network.
    #[arg(long)]
    check_config: bool,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Data directory of the store (created if missing).
    #[arg(long, env = "QUARRY_DATA_DIR")]
    data_dir: PathBuf,
    /// How often new events are committed and become searchable.
    #[arg(long, env = "QUARRY_COMMIT_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    commit_interval: Duration,
    /// Keep each kind for this long, e.g. `audit=2190d,container=30d` (kinds: container, audit, vpcflow,
    /// cloudtrail, syslog, json, text). Whole days are deleted once past the age. Default: keep forever.
    #[arg(long, env = "QUARRY_RETENTION", value_parser = parse_retention_age)]
    retention: Option<PerKind<i64>>,
    /// Keep at most this much disk per kind, oldest days deleted first, e.g. `container=50GB,vpcflow=20GB`.
    #[arg(long, env = "QUARRY_RETENTION_SIZE", value_parser = parse_retention_size)]
    retention_size: Option<PerKind<u64>>,
    /// Keep the events of these namespaces this long, longer or shorter than their kind's rules, e.g.
    /// `payments=2190d,dev=7d`. Logs whose source is in such a namespace (container logs) are stored in
    /// partitions of the namespace's own, deleted once its age has passed. Events that only name the
    /// namespace (audit events) stay with their kind: their days are kept until the age has passed,
    /// never deleted sooner than the kind.
    #[arg(long, env = "QUARRY_RETENTION_NAMESPACE", value_parser = parse_namespace_ages)]
    retention_namespace: Option<NamespaceAges>,
    /// How often the retention rules and legal holds are applied.
    #[arg(long, env = "QUARRY_RETENTION_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    retention_interval: Duration,
    /// Memory budget of each partition's index writer, in MiB.
    #[arg(long, env = "QUARRY_WRITER_MEMORY_MB", default_value_t = 128)]
    writer_memory_mb: usize,
    /// Indexing threads per partition writer.
    #[arg(long, env = "QUARRY_WRITER_THREADS", default_value_t = 1)]
    writer_threads: usize,
    /// Do not fsync the WAL before acknowledging (loses acknowledged data on a power cut; only for
    /// measuring what fsync costs).
    #[arg(long, hide = true)]
    no_fsync: bool,
    #[command(flatten)]
    master: keys::MasterKeyArgs,
    #[command(flatten)]
    integrity: IntegrityArgs,
}

/// The signed digest chain (tamper evidence).
#[derive(Args, Clone)]
pub(crate) struct IntegrityArgs {
    /// The ed25519 key that signs the digest chain (PKCS#8; made with the chain when missing)
    /// [default: DATA_DIR/keys/signing.pk8]. Keep a copy of its public key (signing.pub) where the server
    /// cannot write, for `quarry verify --public-key`.
    #[arg(long, env = "QUARRY_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// How often a signed digest is written, also when nothing changed (verify reports longer silences
    /// as time gaps).
    #[arg(long, env = "QUARRY_DIGEST_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    digest_interval: Duration,
}

impl IntegrityArgs {
    fn config(&self) -> quarry_store::integrity::IntegrityConfig {
        quarry_store::integrity::IntegrityConfig {
            cadence: self.digest_interval,
            signing_key: self.signing_key.clone(),
            public_key: None,
        }
    }
}

/// Records in a data directory's digest chain that a command changed `files` (relative paths): sealed at
/// once when no server runs, else noted for the server's next digest. Errors are warnings: the change is
/// made, and verify will report it as unrecorded.
pub(crate) fn record_change(dir: &std::path::Path, what: &str, detail: String, files: &[&str]) {
    let cfg = quarry_store::integrity::IntegrityConfig {
        signing_key: std::env::var_os("QUARRY_SIGNING_KEY").map(PathBuf::from),
        ..Default::default()
    };
    let note = quarry_trust::chain::Note {
        what: what.into(),
        detail,
        files: files.iter().map(|f| f.to_string()).collect(),
        time_ns: 0,
    };
    match quarry_store::integrity::record_change(dir, &cfg, note) {
        Ok(quarry_store::integrity::Recorded::Deferred(_)) => {
            eprintln!(
                "a server holds {}: it records this change in its next digest",
                dir.display()
            )
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot record this change in the integrity chain: {e}"),
    }
}

impl StoreArgs {
    fn config(&self) -> Result<StoreConfig> {
        let mut cfg = StoreConfig::new(&self.data_dir);
        cfg.encryption = self.master.encryption()?;
        cfg.integrity = Some(self.integrity.config());
        cfg.commit_interval = self.commit_interval;
        cfg.retention_interval = self.retention_interval;
        cfg.fsync = !self.no_fsync;
        cfg.writer.memory = self.writer_memory_mb.max(16) << 20;
        cfg.writer.threads = self.writer_threads.max(1);
        cfg.retention = Retention {
            max_age_ns: self
                .retention
                .iter()
                .flat_map(|r| r.0.iter().copied())
                .collect(),
            max_bytes: self
                .retention_size
                .iter()
                .flat_map(|r| r.0.iter().copied())
                .collect(),
            namespace_age_ns: self
                .retention_namespace
                .iter()
                .flat_map(|r| r.0.iter().cloned())
                .collect(),
        };
        Ok(cfg)
    }
}

#[derive(Args)]
struct DetectArgs {
    /// Sigma rule files or folders to run on every event besides the built-in pack (repeatable).
    #[arg(long = "rules", env = "QUARRY_RULES", value_delimiter = ',')]
    rules: Vec<PathBuf>,
    /// Do not load the built-in rule pack.
    #[arg(long)]
    no_builtin_rules: bool,
    /// Run no detection at all (no rules, no alerts).
    #[arg(long, conflicts_with_all = ["rules", "no_builtin_rules", "alert_sinks", "intel"])]
    no_detection: bool,
    /// Deliver new alerts to KIND=TARGET (repeatable): webhook=URL, slack=URL, alertmanager=URL,
    /// cef=HOST:PORT (syslog over TCP). Failed deliveries are retried, then written to
    /// DATA_DIR/alerts/deadletter.jsonl.
    #[arg(long = "alert-sink", env = "QUARRY_ALERT_SINKS", value_delimiter = ',')]
    alert_sinks: Vec<quarry_detect::deliver::Sink>,
    /// Pause before the first retry of a failed delivery (doubling after each try).
    #[arg(long, hide = true, default_value = "1s", value_parser = parse_duration)]
    alert_retry: Duration,
    /// Threat-intelligence indicators to match on every event (repeatable): CSV (type,value,...) or
    /// one-indicator-per-line files, STIX 2.1 bundles, or folders of them. IPs and CIDRs are checked
    /// against audit sourceIPs, CloudTrail sourceIPAddress, VPC flow addresses and addresses in node logs;
    /// domains and hashes against message text.
    #[arg(long = "intel", env = "QUARRY_INTEL", value_delimiter = ',')]
    intel: Vec<PathBuf>,
    /// Do not learn behaviour baselines (first exec in a namespace, first secrets access, new image,
    /// new source address, new verb on a resource).
    #[arg(long)]
    no_baselines: bool,
    /// How long (in event time, from the first audit event) baselines only learn before reporting.
    #[arg(long, default_value = "7d", value_parser = parse_window_arg)]
    baseline_learn: i64,
}

fn parse_window_arg(s: &str) -> Result<i64, String> {
    quarry_query::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a period such as 12h, 7d or 30d"))
}

impl DetectArgs {
    /// Live detection over the store in `data_dir`, as asked.
    fn open(&self, data_dir: &std::path::Path) -> Result<Option<Arc<quarry_detect::Live>>> {
        if self.no_detection {
            return Ok(None);
        }
        let mut set = if self.no_builtin_rules {
            quarry_detect::RuleSet::new()
        } else {
            quarry_detect::RuleSet::builtin()
        };
        for p in &self.rules {
            set.add_path(p)?;
        }
        let detector = quarry_detect::Detector::new(&set);
        for p in detector.problems() {
            tracing::warn!(problem = %p, "rule not loaded");
        }
        tracing::info!(
            rules = detector.rules().len(),
            not_loaded = detector.problems().len(),
            sinks = self.alert_sinks.len(),
            "detection on"
        );
        let intel = if self.intel.is_empty() {
            None
        } else {
            let intel = quarry_detect::intel::Intel::load(&self.intel)
                .context("cannot load threat-intelligence indicators")?;
            for p in intel.problems() {
                tracing::warn!(problem = %p, "indicator not loaded");
            }
            tracing::info!(indicators = %intel.stats(), "threat intelligence on");
            Some(Arc::new(intel))
        };
        let live = quarry_detect::Live::open(
            detector,
            &data_dir.join("alerts"),
            quarry_detect::LiveOptions {
                sinks: self.alert_sinks.clone(),
                retry_base: self.alert_retry,
                baseline: quarry_detect::BaselineConfig {
                    enabled: !self.no_baselines,
                    learn_ns: self.baseline_learn,
                    ..quarry_detect::BaselineConfig::default()
                },
                intel,
            },
        )
        .context("cannot open the alert journal")?;
        let live = Arc::new(live);
        quarry_detect::Live::start_ticker(&live);
        Ok(Some(live))
    }
}

#[derive(Args)]
struct ServerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// Address to listen on.
    #[arg(long, env = "QUARRY_LISTEN", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    #[command(flatten)]
    tls: ListenTls,
    #[command(flatten)]
    oidc: OidcArgs,
}

/// OIDC bearer tokens (people signing in through the company's identity provider).
#[derive(Args, Clone, Default)]
struct OidcArgs {
    /// Accept OIDC ID/access tokens (JWTs) from this issuer, e.g. https://login.example.com/realms/sec.
    /// Its keys come from --oidc-jwks or, without it, from the issuer's discovery document.
    #[arg(long, env = "QUARRY_OIDC_ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience tokens must name (the client id registered for Quarry).
    #[arg(long, env = "QUARRY_OIDC_AUDIENCE", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// The issuer's key set (JWKS): an https:// URL or a file [default: from discovery].
    #[arg(long, env = "QUARRY_OIDC_JWKS", requires = "oidc_issuer")]
    oidc_jwks: Option<String>,
    /// Map a group of the token's `groups` claim to a role, e.g. secops=analyst (repeatable, most
    /// privileged first). A `quarry_role` claim wins over groups; `quarry_namespaces` (a list) and
    /// `quarry_cluster` (a boolean) set the scope.
    #[arg(
        long = "oidc-group-role",
        value_name = "GROUP=ROLE",
        requires = "oidc_issuer"
    )]
    oidc_group_roles: Vec<String>,
    /// CA bundle for fetching from the issuer [default: the system's].
    #[arg(long, requires = "oidc_issuer")]
    oidc_ca: Option<PathBuf>,
    /// Allow an http:// issuer (a test issuer on loopback only).
    #[arg(long, requires = "oidc_issuer")]
    oidc_allow_http: bool,
}

impl OidcArgs {
    /// The check of OIDC bearer tokens, when an issuer is configured.
    fn check(&self) -> Result<Option<quarry_server::auth::OidcCheck>> {
        use quarry_trust::oidc::{JwksSource, OidcConfig, OidcVerifier};
        let (Some(issuer), Some(audience)) = (&self.oidc_issuer, &self.oidc_audience) else {
            return Ok(None);
        };
        let jwks = self
            .oidc_jwks
            .as_deref()
            .map_or(JwksSource::Discover, JwksSource::from_flag);
        let mut cfg = OidcConfig::new(issuer.clone(), audience.clone(), jwks);
        cfg.allow_insecure_http = self.oidc_allow_http;
        for g in &self.oidc_group_roles {
            cfg.group_roles
                .push(quarry_trust::oidc::parse_group_role(g)?);
        }
        let fetcher = quarry_transport::jwks_fetcher(self.oidc_ca.clone())?;
        let verifier = OidcVerifier::new_deferred(cfg, Some(fetcher))?;
        match verifier.refresh() {
            Ok(s) => tracing::info!(issuer = %issuer, keys = s.keys, "OIDC on"),
            Err(e) => {
                tracing::error!(issuer = %issuer, "OIDC keys not loaded yet (tokens are refused until they are): {e}")
            }
        }
        let issuer = issuer.clone();
        Ok(Some(Arc::new(move |token: &str| {
            // Verifying may fetch the key set: keep it off the async threads' hot path.
            let id = tokio::task::block_in_place(|| verifier.verify(token)).map_err(|e| {
                if !e.is_token_error() {
                    tracing::error!("OIDC: {e}");
                }
                format!("OIDC token refused: {e}")
            })?;
            Ok(quarry_trust::auth::Principal {
                // The subject is the issuer's stable id; the display name may be the user's to choose.
                name: format!("oidc:{} ({})", id.subject, id.name),
                role: id.role,
                scope: id.role.scope(id.namespaces, id.cluster),
                method: quarry_trust::auth::Method::Oidc(issuer.clone()),
            })
        })))
    }
}

/// TLS of the server's listener.
#[derive(Args, Clone, Default)]
struct ListenTls {
    /// Server certificate chain (PEM), e.g. server.pem from `quarry certs init`.
    #[arg(long, env = "QUARRY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long, env = "QUARRY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA whose client certificates identify agents (mTLS): a certificate naming node N may send N's
    /// logs. Revoke one with `quarry certs revoke`.
    #[arg(long, env = "QUARRY_CLIENT_CA", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Also accept TLS 1.2 (only TLS 1.3 by default).
    #[arg(long, requires = "tls_cert")]
    tls12: bool,
    /// Serve plain HTTP, without TLS: credentials and logs cross the network readable by anyone on
    /// the path. Only for a loopback test; logged as an error at start.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "client_ca"])]
    insecure: bool,
}

impl ListenTls {
    /// The rustls configuration, or `None` with --insecure; revocations come from `auth`.
    fn config(
        &self,
        auth: &Arc<quarry_server::auth::Auth>,
    ) -> Result<Option<Arc<rustls::ServerConfig>>> {
        if self.insecure {
            tracing::error!(
                "serving plain HTTP (--insecure): tokens and logs cross the network unencrypted; use --tls-cert and --tls-key"
            );
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            bail!(
                "the server needs --tls-cert and --tls-key (`quarry certs init --out DIR` makes them), \
                 or --insecure to serve plain HTTP"
            );
        };
        let auth = auth.clone();
        let cfg = quarry_trust::tls::server_config(&quarry_trust::tls::ServerTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.client_ca.clone(),
            tls12: self.tls12,
            revoked: Some(Arc::new(move |c| {
                auth.revoked().find(c).map(|r| r.reason.clone())
            })),
        })?;
        Ok(Some(Arc::new(cfg)))
    }
}

/// How a client command proves who it is and trusts the server.
#[derive(Args, Clone, Default)]
pub(crate) struct Credentials {
    /// CA bundle (PEM) that signs the server's certificate, for https:// servers (`quarry certs init`
    /// writes ca.pem).
    #[arg(long, env = "QUARRY_CA", global = true)]
    pub(crate) ca: Option<PathBuf>,
    /// API or OIDC token, sent as `Authorization: Bearer TOKEN` (`quarry token create` makes one).
    #[arg(long, env = "QUARRY_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
}

impl Credentials {
    /// A client of the server at `url` with these credentials.
    pub(crate) fn client(&self, url: &str) -> Result<Client> {
        Ok(Client::with_options(
            url,
            &quarry_transport::ClientOptions {
                tls: quarry_trust::tls::ClientTls {
                    ca: self.ca.clone(),
                    ..Default::default()
                },
                token: self.token.clone(),
                ..Default::default()
            },
        )?)
    }
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Where {
    /// URL of a running server, e.g. http://127.0.0.1:7700.
    #[arg(long, env = "QUARRY_SERVER")]
    pub(crate) server: Option<String>,
    /// Data directory to use directly (no server needed).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    to: Where,
    #[command(flatten)]
    credentials: Credentials,
    #[command(flatten)]
    master: keys::MasterKeyArgs,
    #[command(flatten)]
    integrity: IntegrityArgs,
    /// Parser: auto (detect per file) or one of container, cri, docker, audit, vpcflow, cloudtrail, syslog,
    /// journald (`journalctl -o json`), klog, json, logfmt, text.
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Store every file as this kind (default: from the path and the detected format).
    #[arg(long)]
    kind: Option<Kind>,
    /// Cluster name to record with every event.
    #[arg(long, env = "QUARRY_CLUSTER")]
    cluster: Option<String>,
    /// Join stack traces in container and text logs: java, python, go, auto or custom:<regex>.
    #[arg(long)]
    multiline: Option<Multiline>,
    /// Files and folders to import (folders are walked recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// With --data-dir: detection runs on the imported events as a server's would, raising alerts into
    /// the data directory (with --server, the server's own detection does).
    #[command(flatten)]
    detect: DetectArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON array of row objects.
    Json,
    /// CSV with a header row.
    Csv,
}

/// The time range of a query or hunt.
#[derive(Args)]
pub(crate) struct TimeRange {
    /// Only events of the last period, e.g. 15m, 1h, 7d, 90d.
    #[arg(long, conflicts_with = "from")]
    pub(crate) since: Option<String>,
    /// Start: RFC 3339, a date, epoch seconds/ms, or a duration ago (2h). Default: all time.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// End (inclusive), same forms as --from. Default: no end.
    #[arg(long)]
    pub(crate) to: Option<String>,
}

impl TimeRange {
    /// The range as a request sends it.
    pub(crate) fn span(&self) -> quarry_transport::TimeSpan {
        quarry_transport::TimeSpan {
            since: self.since.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }

    /// The range in UTC ns, relative to `now`.
    pub(crate) fn resolve(&self, now: i64) -> Result<(i64, i64)> {
        Ok(parse_time_range(
            self.since.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
            now,
        )?)
    }
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    on: Where,
    #[command(flatten)]
    credentials: Credentials,
    #[command(flatten)]
    master: keys::MasterKeyArgs,
    #[command(flatten)]
    range: TimeRange,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Search Quarry's access audit (who logged in, searched, hunted, changed alerts or tokens) instead
    /// of the logs, e.g. 'filter action = "query" | fields @timestamp, actor, query, results'.
    #[arg(long)]
    access_audit: bool,
    /// The query, e.g. 'filter action="REJECT" | stats count(*) by srcAddr'.
    query: String,
}

#[derive(Args)]
struct DemoArgs {
    /// Times more background data (scale 1 is about 45 MB; 128 is about 5 GB).
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Seed of the generator: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Exit after the hunt instead of serving the data.
    #[arg(long)]
    no_serve: bool,
    /// Address the server listens on after the hunt.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Keep the data here instead of a temporary directory (deleted at exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    detect: DetectArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|e| format!("{s:?}: {e}"));
    }
    quarry_query::parse_duration(s)
        .map(|ns| Duration::from_nanos(ns.max(0) as u64))
        .ok_or_else(|| format!("{s:?} is not a duration such as 500ms, 2s, 5m, 1h, 30d"))
}

/// A value per source kind, as `audit=2190d,container=30d` gives it.
#[derive(Clone, Debug)]
struct PerKind<T>(Vec<(Kind, T)>);

fn kind_pairs<T>(
    s: &str,
    value: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<PerKind<T>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected KIND={what}"))?;
            let kind: Kind = k.trim().parse().map_err(|e| format!("{e}"))?;
            let v = value(v.trim()).ok_or_else(|| format!("{pair:?}: {v:?} is not {what}"))?;
            Ok((kind, v))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(PerKind)
}

fn parse_retention_age(s: &str) -> Result<PerKind<i64>, String> {
    kind_pairs(s, quarry_query::parse_duration, "a duration such as 30d")
}

/// `NAMESPACE=AGE` pairs of `--retention-namespace`.
#[derive(Clone)]
struct NamespaceAges(Vec<(String, i64)>);

fn parse_namespace_ages(s: &str) -> Result<NamespaceAges, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (ns, age) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?}: expected NAMESPACE=AGE such as payments=2190d"))?;
            quarry_trust::auth::check_namespace(ns.trim()).map_err(|e| e.to_string())?;
            let age = quarry_query::parse_duration(age.trim())
                .ok_or_else(|| format!("{p:?}: {age:?} is not a duration such as 2190d"))?;
            Ok((ns.trim().to_string(), age))
        })
        .collect::<Result<_, String>>()
        .map(NamespaceAges)
}

fn parse_retention_size(s: &str) -> Result<PerKind<u64>, String> {
    let size = |v: &str| {
        let v = v.to_ascii_uppercase();
        let (n, mult) = [
            ("TB", 1u64 << 40),
            ("GB", 1 << 30),
            ("MB", 1 << 20),
            ("KB", 1 << 10),
            ("B", 1),
        ]
        .iter()
        .find_map(|(suffix, m)| v.strip_suffix(suffix).map(|n| (n.trim().to_string(), *m)))?;
        n.parse::<u64>().ok()?.checked_mul(mult)
    };
    kind_pairs(s, size, "a size such as 50GB")
}

fn init_logs(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

fn main() {
    if let Err(e) = load_config() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
    let cli = Cli::parse();
    init_logs(&cli.log);
    let result = match cli.cmd {
        Cmd::Server(a) => server(a),
        Cmd::Import(a) => import(a),
        Cmd::Query(a) => query(a),
        Cmd::Demo(a) => demo(a),
        Cmd::Agent(a) => agent(a, cli.config.as_deref()),
        Cmd::Rules(c) => rules::run(c),
        Cmd::Alerts(a) => alerts::run(a),
        Cmd::Hunt(a) => hunt::run(a),
        Cmd::Certs(c) => certs::run(c),
        Cmd::Token(c) => token::run(c),
        Cmd::Keys(c) => keys::run_keys(c),
        Cmd::Verify(a) => verify::run(a),
        Cmd::Hold(c) => hold::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Serves `store` on `listen` until Ctrl-C or SIGTERM, then closes it.
fn serve(
    store: Store,
    live: Option<Arc<quarry_detect::Live>>,
    listen: SocketAddr,
    tls: &ListenTls,
    oidc: &OidcArgs,
    data_dir: &std::path::Path,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let auth = Arc::new(
        quarry_server::auth::Auth::new(data_dir, oidc.check()?).map_err(|e| anyhow::anyhow!(e))?,
    );
    let tls_config = tls.config(&auth)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let live_handle = live.clone();
    let state = quarry_server::AppState::new(store.clone(), live, auth);
    let start = quarry_server::auth::AccessRecord {
        actor: "server".into(),
        detail: Some(format!(
            "listen={listen} tls={} mtls={} tls12={} oidc={}",
            tls_config.is_some(),
            tls.client_ca.is_some(),
            tls.tls12,
            oidc.oidc_issuer.as_deref().unwrap_or("off")
        )),
        ..quarry_server::auth::AccessRecord::new("server.start", "", listen, None)
    };
    quarry_server::auth::write_access(&store, &start).context("cannot write the access audit")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, tls = tls_config.is_some(), "serving");
        on_ready(addr);
        quarry_server::serve(listener, tls_config, state, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    drop(rt);
    tracing::info!("shutting down: committing and closing the store");
    store.close()?;
    close_detection(live_handle);
    // Detection saves its windows and baselines as it closes, after the store's final digest.
    record_change(
        data_dir,
        "detection state saved",
        "at shutdown".into(),
        &[
            "alerts/correlation-state.json",
            &format!("alerts/{}", quarry_detect::baseline::STATE_FILE),
        ],
    );
    Ok(())
}

/// Flushes correlation windows and waits for queued alert deliveries.
fn close_detection(live: Option<Arc<quarry_detect::Live>>) {
    match live.map(Arc::try_unwrap) {
        Some(Ok(live)) => live.close(),
        Some(Err(_)) => tracing::warn!(
            "detection still in use at shutdown: correlation windows not saved, queued deliveries not awaited"
        ),
        None => {}
    }
}

fn server(a: ServerArgs) -> Result<()> {
    let live = a.detect.open(&a.store.data_dir)?;
    let mut cfg = a.store.config()?;
    if cfg.encryption.is_none() {
        tracing::warn!(
            "data at rest is not encrypted: give --master-key-file (`quarry keys generate` makes a key)"
        );
    }
    cfg.observer = live.clone().map(|l| l as Arc<dyn quarry_store::Observer>);
    let store = Store::open(cfg)?;
    let s = store.stats();
    tracing::info!(
        data_dir = %a.store.data_dir.display(),
        events = s.events_stored,
        partitions = s.partitions,
        replayed = s.wal_replayed_records,
        torn_bytes = s.wal_torn_bytes,
        "store open"
    );
    serve(
        store,
        live,
        a.listen,
        &a.tls,
        &a.oidc,
        &a.store.data_dir,
        |_| {},
    )
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{msg}} ({{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb
}

fn import(a: ImportArgs) -> Result<()> {
    let opts = quarry_import::ImportOptions {
        format: a.format,
        kind: a.kind,
        cluster: a.cluster,
        multiline: a.multiline.map(|m| m.mode),
        ..quarry_import::ImportOptions::default()
    };
    let pb = progress_bar(0, "importing");
    let mut on_progress = |p: &quarry_import::Progress| {
        pb.set_length(p.bytes_total);
        pb.set_position(p.bytes_read);
        pb.set_message(format!(
            "{} events, file {}/{}",
            p.events, p.files_done, p.files_total
        ));
    };
    let summary = match (&a.to.server, &a.to.data_dir) {
        (Some(url), _) => {
            let client = a.credentials.client(url)?;
            let s = quarry_import::import_paths(
                &a.paths,
                &opts,
                quarry_import::Target::Server(&client),
                &mut on_progress,
            )?;
            pb.set_message("waiting until the server has indexed everything");
            client.commit()?;
            s
        }
        (None, Some(dir)) => {
            let live = a.detect.open(dir)?;
            let alerts_before = live.as_ref().map(|l| l.alerts().len());
            let mut cfg = StoreConfig::new(dir);
            cfg.encryption = a.master.encryption()?;
            cfg.integrity = Some(a.integrity.config());
            cfg.observer = live.clone().map(|l| l as Arc<dyn quarry_store::Observer>);
            let store = Store::open(cfg)?;
            let s = quarry_import::import_paths(
                &a.paths,
                &opts,
                quarry_import::Target::Store(&store),
                &mut on_progress,
            )?;
            store.close()?;
            let rules = live.as_ref().map(|l| l.detector().rules().len());
            // Correlation windows still open at the end of the files fire as detection closes.
            close_detection(live);
            if let (Some(rules), Some(before)) = (rules, alerts_before) {
                let now = quarry_detect::alerts::AlertStore::open(&dir.join("alerts"))?.len();
                pb.suspend(|| {
                    println!(
                        "detection: {rules} rules raised {} new alerts, {now} in all (quarry alerts --data-dir {})",
                        now.saturating_sub(before),
                        dir.display()
                    )
                });
            }
            s
        }
        (None, None) => bail!("give --server URL or --data-dir DIR"),
    };
    pb.finish_and_clear();
    let mb = summary.bytes as f64 / 1e6;
    println!(
        "imported {} events ({:.1} MB) from {} files in {:.1} s: {:.1} MB/s, {:.0} events/s",
        summary.events,
        mb,
        summary.files,
        summary.seconds,
        mb / summary.seconds.max(1e-9),
        summary.events as f64 / summary.seconds.max(1e-9)
    );
    for (kind, c) in &summary.per_kind {
        println!(
            "  {:<10} {:>6} files {:>10} events {:>10.1} MB",
            kind.as_str(),
            c.files,
            c.events,
            c.bytes as f64 / 1e6
        );
    }
    if summary.parse_errors > 0 {
        println!("  {} events did not parse and were stored as raw text (query them with: filter ispresent(@parseError))", summary.parse_errors);
    }
    if summary.duplicate_batches > 0 {
        println!(
            "  {} batches ({} events) were already stored and were skipped",
            summary.duplicate_batches, summary.duplicate_events
        );
    }
    if summary.truncated > 0 {
        println!(
            "  {} records were longer than the record cap and were cut",
            summary.truncated
        );
    }
    for (p, why) in &summary.skipped {
        println!("  skipped {}: {why}", p.display());
    }
    Ok(())
}

fn print_table(table: &Table, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Table => print!("{}", table.to_text_table()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&table.to_json())?),
        OutputFormat::Csv => print!("{}", table.to_csv()),
    }
    Ok(())
}

fn query(a: QueryArgs) -> Result<()> {
    let table = match (&a.on.server, &a.on.data_dir) {
        (Some(url), _) => {
            let resp = a.credentials.client(url)?.query(&QueryRequest {
                query: a.query.clone(),
                span: a.range.span(),
                access_audit: a.access_audit,
            })?;
            Table::from_json(resp.columns, &resp.rows)
        }
        (None, Some(dir)) => {
            let now = quarry_model::time::now_nanos();
            let (from, to) = a.range.resolve(now)?;
            let store = open_for_reading(dir, &a.master)?;
            let out = quarry_query::run(
                &store,
                &a.query,
                &RunOptions {
                    from,
                    to,
                    now_ns: Some(now),
                    scope: Some(
                        quarry_model::Scope::all()
                            .within(&quarry_model::Scope::stream_kinds(a.access_audit)),
                    ),
                    ..RunOptions::default()
                },
            );
            store.close()?;
            out?.table
        }
        (None, None) => bail!("give --server URL or --data-dir DIR"),
    };
    print_table(&table, a.format)
}

/// The store in `dir` for reading: opened normally, or read-only (what is committed) when a server
/// holds it.
pub(crate) fn open_for_reading(
    dir: &std::path::Path,
    master: &keys::MasterKeyArgs,
) -> Result<Store> {
    if !dir.join("wal").is_dir() {
        bail!(
            "{} is not a Quarry data directory (no wal/ in it)",
            dir.display()
        );
    }
    let mut cfg = StoreConfig::new(dir);
    cfg.encryption = master.encryption()?;
    match Store::open(cfg) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked(_)) => {
            eprintln!(
                "note: a server holds {}; reading what it has committed (or use --server)",
                dir.display()
            );
            Ok(Store::open_read_only_with(dir, master.encryption()?)?)
        }
        Err(e) => Err(e.into()),
    }
}

fn demo(a: DemoArgs) -> Result<()> {
    let tmp;
    let dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("quarry-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let cfg = quarry_demo::DemoConfig {
        seed: a.seed,
        scale: a.scale.max(1),
        ..quarry_demo::DemoConfig::default()
    };
    println!(
        "Quarry demo: cluster {:?}, the hour up to now, scale {}, seed {}",
        cfg.cluster, cfg.scale, cfg.seed
    );
    println!("data directory: {}", dir.display());
    let live = a.detect.open(&dir)?;
    // Certificates, and for a temporary data directory a master key, live beside it for the demo's run.
    let certs_dir = tempfile::Builder::new()
        .prefix("quarry-demo-certs-")
        .tempdir()?;
    let mut store_cfg = StoreConfig::new(&dir);
    store_cfg.integrity = Some(quarry_store::integrity::IntegrityConfig::default());
    if a.data_dir.is_none() {
        let key = certs_dir.path().join("master.key");
        quarry_trust::keys::MasterKey::generate_file(&key)?;
        store_cfg.encryption = Some(quarry_store::crypt::EncryptionConfig::new(Arc::new(
            quarry_trust::keys::MasterKey::from_file(&key)?,
        )));
        println!("encrypted at rest with a fresh master key; signed digests every 60 s");
    }
    store_cfg.commit_interval = Duration::from_secs(1);
    store_cfg.observer = live.clone().map(|l| l as Arc<dyn quarry_store::Observer>);
    let store = Store::open(store_cfg)?;
    let pb = progress_bar(0, "generating and loading");
    pb.set_style(
        ProgressStyle::with_template("{spinner} generating and loading {bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let loaded = quarry_demo::hunt::load(&store, &cfg, workers, &mut |bytes, events| {
        pb.set_position(bytes);
        pb.set_message(format!("{events} events"));
    })?;
    pb.finish_and_clear();
    println!(
        "loaded {} events ({:.1} MB of logs from {} files) in {:.1} s",
        loaded.events,
        loaded.bytes as f64 / 1e6,
        loaded.files,
        loaded.seconds
    );
    let attack = quarry_demo::attack(&cfg);
    println!("\nSomething happened in this cluster during the last hour. Let's hunt.");
    quarry_demo::hunt::print_hunt(
        &store,
        &quarry_demo::hunt::hunt_steps(&attack),
        8,
        &mut std::io::stdout(),
    )?;
    if let Some(live) = &live {
        print_alerts(live);
    }
    if a.no_serve {
        store.close()?;
        close_detection(live);
        return Ok(());
    }
    // The demo serves as a real server does: TLS with a fresh CA, and an admin token.
    quarry_trust::certs::init(&quarry_trust::certs::InitOptions {
        out: certs_dir.path().to_path_buf(),
        server_names: Vec::new(),
        nodes: Vec::new(),
        days: 7,
        force: false,
    })?;
    let (token, _) = quarry_trust::auth::AuthDir::of(&dir).create_token(
        &quarry_trust::auth::NewToken {
            name: "demo".into(),
            role: quarry_trust::auth::Role::Admin,
            namespaces: None,
            cluster: true,
            lifetime_ns: 86_400 * 1_000_000_000,
        },
        quarry_model::time::now_nanos(),
    )?;
    let tls = ListenTls {
        tls_cert: Some(certs_dir.path().join("server.pem")),
        tls_key: Some(certs_dir.path().join("server-key.pem")),
        ..ListenTls::default()
    };
    let ca = certs_dir.path().join("ca.pem");
    serve(
        store,
        live,
        a.listen,
        &tls,
        &OidcArgs::default(),
        &dir,
        |addr| {
            let url = format!("https://{addr}");
            println!(
            "\nThe server is up at {url} with this data (TLS, tokens required). Try your own hunt:"
        );
            println!(
                "  export QUARRY_SERVER={url} QUARRY_CA={} QUARRY_TOKEN={token}",
                ca.display()
            );
            println!("  quarry alerts");
            println!("  quarry hunt --explain   # the built-in rules over the stored hour");
            println!("  quarry query 'filter verb = \"delete\" | stats count(*) by user.username'");
            println!("  curl -s --cacert $QUARRY_CA -H \"Authorization: Bearer $QUARRY_TOKEN\" $QUARRY_SERVER/api/v1/query -d '{{\"query\": \"search \\\"{}\\\" | limit 5\"}}'", attack.exfil_ip);
            println!("  quarry query 'filter @source = \"access\" | fields @timestamp, actor, action, results'   # who looked at what");
            println!(
                "Press Ctrl-C to stop (the data directory is deleted unless you gave --data-dir)."
            );
        },
    )
}

/// What live detection raised while the demo's data went in, most severe first.
fn print_alerts(live: &quarry_detect::Live) {
    let mut alerts = live
        .alerts()
        .list(&quarry_detect::alerts::AlertFilter::default());
    alerts.sort_by_key(|a| (std::cmp::Reverse(a.level), a.first_seen));
    println!(
        "\nMeanwhile, detection ran on every event as it arrived: {} rules, {} alerts.",
        live.detector().rules().len(),
        alerts.len()
    );
    for a in alerts.iter().take(20) {
        let entity = a.entity();
        println!(
            "  {} {:<8} {} ({} event{}{}{})",
            quarry_model::time::format_rfc3339_millis(a.first_seen),
            a.level.as_str(),
            a.title,
            a.count,
            if a.count == 1 { "" } else { "s" },
            if entity.is_empty() { "" } else { ", " },
            entity
        );
    }
    if alerts.len() > 20 {
        println!(
            "  ... and {} more: quarry alerts --server URL",
            alerts.len() - 20
        );
    }
}

/// `quarry agent`: settings from the [agent] table of the configuration file, then the options.
fn agent(a: AgentArgs, config: Option<&std::path::Path>) -> Result<()> {
    let check_only = a.check_config;
    let mut cfg = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let mut table: toml::Table = text
                .parse()
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            match table.remove(AGENT_TABLE) {
                Some(t) => t
                    .try_into()
                    .with_context(|| format!("{}: bad [{AGENT_TABLE}] table", path.display()))?,
                None => quarry_agent::AgentConfig::default(),
            }
        }
        None => quarry_agent::AgentConfig::default(),
    };
    cfg.server = a.server;
    cfg.ca = a.ca.or(cfg.ca);
    cfg.cert = a.cert.or(cfg.cert);
    cfg.key = a.key.or(cfg.key);
    cfg.token = a.token.or(cfg.token);
    cfg.state_dir = a.state_dir;
    if let Some(p) = a.pods_root {
        cfg.pods_root = p;
        cfg.containers_root = None;
    }
    if let Some(c) = a.containers_root {
        cfg.containers_root = Some(c);
    }
    if let Some(n) = a.node_name {
        cfg.node_name = n;
    }
    if cfg.node_name.is_empty() {
        cfg.node_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
    }
    if a.cluster.is_some() {
        cfg.cluster = a.cluster;
    }
    if a.no_kubernetes {
        cfg.kubernetes = false;
    }
    if a.kubernetes_api.is_some() {
        cfg.kubernetes_api = a.kubernetes_api;
    }
    if let Some(m) = a.metrics_listen {
        cfg.metrics_listen = m;
    }
    for f in a.files {
        let Some((kind, path)) = f.split_once(':') else {
            bail!("--file {f:?}: expected KIND:PATH, e.g. syslog:/var/log/auth.log");
        };
        let kind: Kind = kind
            .parse()
            .map_err(|e| anyhow::anyhow!("--file {f:?}: {e}"))?;
        cfg.files.push(quarry_agent::config::FileConfig {
            path: path.into(),
            kind,
            format: None,
            multiline: None,
            from_head: false,
        });
    }
    if check_only {
        return check_agent_config(&cfg, config);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(shutdown_signal());
            tracing::info!("stopping: queuing what was read and checkpointing");
            flag.store(true, Ordering::Relaxed);
        }
    });
    quarry_agent::run(cfg, stop, |addr| {
        if let Some(addr) = addr {
            tracing::info!(%addr, "agent metrics and health endpoint listening");
        }
    })?;
    Ok(())
}

/// `quarry agent --check-config`: validates the settings the agent would run with and prints them.
fn check_agent_config(
    cfg: &quarry_agent::AgentConfig,
    config: Option<&std::path::Path>,
) -> Result<()> {
    quarry_agent::validate(cfg).context("the agent would not start")?;
    let source = config.map_or_else(|| "no file".into(), |p| p.display().to_string());
    println!("configuration OK ({source})");
    println!("  server          {}", cfg.server);
    println!("  node            {}", cfg.node_name);
    println!(
        "  cluster         {}",
        cfg.cluster.as_deref().unwrap_or("-")
    );
    println!("  state_dir       {}", cfg.state_dir.display());
    println!("  pods_root       {}", cfg.pods_root.display());
    let files: Vec<String> = cfg
        .files
        .iter()
        .map(|f| format!("{}:{}", f.kind, f.path.display()))
        .collect();
    println!("  files           {}", list_or_dash(&files));
    println!("  journald units  {}", list_or_dash(&cfg.journald.units));
    println!(
        "  kubernetes      {}",
        if cfg.kubernetes { "watch" } else { "off" }
    );
    let metrics = match cfg.metrics_listen.as_str() {
        "" => "none",
        m => m,
    };
    println!("  metrics_listen  {metrics}");
    println!(
        "  redaction       {}",
        if cfg.redact.enabled { "on" } else { "off" }
    );
    Ok(())
}

/// The items joined with commas, or `-` for none.
fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}
