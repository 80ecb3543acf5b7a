//! The agent's settings: command-line flags for the essentials, the `[agent]` table of the configuration
//! file for the rest.

use quarry_model::Kind;
use quarry_parse::{Format, Multiline};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the agent needs to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The server's base URL (`https://` with `ca`).
    pub server: String,
    /// CA bundle that signs the server's certificate.
    pub ca: Option<PathBuf>,
    /// This node's client certificate (mTLS; `quarry certs init --node NAME` writes `agent-NAME.pem`).
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// An API token with the ingest role, when the node has no certificate.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// Where checkpoints and the disk queue live (a hostPath in the DaemonSet).
    pub state_dir: PathBuf,
    /// The kubelet's pod log directory (`/var/log/pods`).
    pub pods_root: PathBuf,
    /// The `/var/log/containers` symlinks; only links pointing outside `pods_root` are followed (docker's
    /// json-file logs), the others are the same files as under `pods_root`.
    pub containers_root: Option<PathBuf>,
    /// This node's name (the DaemonSet sets it from `spec.nodeName`).
    pub node_name: String,
    /// The cluster's name, added to every event.
    pub cluster: Option<String>,
    /// Watch the Kubernetes API for pod metadata.
    pub kubernetes: bool,
    /// The Kubernetes API server; inferred (in-cluster, then kubeconfig) when absent.
    pub kubernetes_api: Option<String>,
    /// Label keys copied to events (`*` suffix: prefix); empty: all labels.
    pub label_allow: Vec<String>,
    /// Annotation keys copied to events (`*` suffix: prefix); empty: none.
    pub annotation_allow: Vec<String>,
    /// Seconds a deleted pod's metadata is kept for its last lines.
    pub pod_grace_secs: u64,
    /// Node log files and the apiserver's audit log.
    pub files: Vec<FileConfig>,
    /// journald units.
    pub journald: JournaldConfig,
    /// Multi-line joining per container, first match wins (a pod annotation `quarry.dev/multiline` wins over
    /// these).
    pub multiline: Vec<MultilineRule>,
    /// Cap on a reassembled record; longer ones are cut and counted.
    pub max_record_bytes: usize,
    /// Read container files found at the first start from their beginning (else from their end).
    pub read_from_head: bool,
    /// Seal a batch at this many bytes of raw text.
    pub batch_bytes: usize,
    /// ... or when its oldest event is this old (milliseconds).
    pub batch_wait_ms: u64,
    /// Emit records held for multi-line joining after the stream is quiet this long (milliseconds).
    pub flush_quiet_ms: u64,
    /// Stop reading when the disk queue holds this many unacknowledged bytes (compressed).
    pub queue_max_bytes: u64,
    /// Fsync the queue at least this often (milliseconds); batches are sent once fsynced.
    pub queue_fsync_ms: u64,
    /// Largest request to the server (compressed bytes).
    pub request_max_bytes: usize,
    /// A file renamed away or deleted is read to its end; it is given up when it has not grown for this
    /// long (seconds) and what it still had is counted as lost.
    pub rotated_wait_secs: u64,
    /// Directory scan interval when inotify works (milliseconds); a 500 ms poll is used without it.
    pub scan_interval_ms: u64,
    /// Address of the metrics and health endpoint (`/metrics`, `/healthz`); empty: none.
    pub metrics_listen: String,
    /// Redaction of sensitive data.
    pub redact: quarry_redact::RedactConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server: "http://127.0.0.1:7700".into(),
            ca: None,
            cert: None,
            key: None,
            token: None,
            state_dir: "/var/lib/quarry-agent".into(),
            pods_root: "/var/log/pods".into(),
            containers_root: Some("/var/log/containers".into()),
            node_name: String::new(),
            cluster: None,
            kubernetes: true,
            kubernetes_api: None,
            label_allow: Vec::new(),
            annotation_allow: Vec::new(),
            pod_grace_secs: 300,
            files: Vec::new(),
            journald: JournaldConfig::default(),
            multiline: Vec::new(),
            max_record_bytes: quarry_parse::DEFAULT_MAX_RECORD_BYTES,
            read_from_head: true,
            batch_bytes: 1 << 20,
            batch_wait_ms: 200,
            flush_quiet_ms: 1000,
            queue_max_bytes: 512 << 20,
            queue_fsync_ms: 100,
            request_max_bytes: 4 << 20,
            rotated_wait_secs: 60,
            scan_interval_ms: 5000,
            metrics_listen: "0.0.0.0:7701".into(),
            redact: quarry_redact::RedactConfig::default(),
        }
    }
}

/// A node log file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Its path; rotated siblings (`auth.log.1`, `auth.log-20240101`) are followed by identity.
    pub path: PathBuf,
    /// What it holds.
    pub kind: Kind,
    /// Its parser (`auto` when absent).
    #[serde(default)]
    pub format: Option<String>,
    /// Multi-line joining (`java`, `python`, `go`, `auto`, or `custom:<start regex>`).
    #[serde(default)]
    pub multiline: Option<String>,
    /// Read from the beginning when first found (default: from the end, as it predates the agent).
    #[serde(default)]
    pub from_head: bool,
}

/// journald reading.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournaldConfig {
    /// Units to read, exact names (`kubelet.service`, `containerd.service`); empty: journald is not read.
    pub units: Vec<String>,
    /// A journal directory to read instead of the system journal (`journalctl --directory`), such as the
    /// host's `/var/log/journal` mounted into the agent's pod.
    pub directory: Option<PathBuf>,
    /// The `journalctl` binary (default: `journalctl` on the `PATH`).
    pub journalctl: Option<PathBuf>,
    /// Where to begin when there is no saved cursor (the very first start).
    pub read_from: JournalStart,
}

/// Where journal reading begins when there is no saved cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalStart {
    /// The first entry of the current boot (the newest boot in `directory`); older boots are not read.
    #[default]
    Boot,
    /// The oldest entry the journal still holds.
    Head,
    /// Only entries written from now on.
    Tail,
}

/// Multi-line joining for matching containers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineRule {
    /// Namespace (any when absent).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Pod name prefix (any when absent).
    #[serde(default)]
    pub pod_prefix: Option<String>,
    /// Container name (any when absent).
    #[serde(default)]
    pub container: Option<String>,
    /// `java`, `python`, `go`, `auto`, or `custom:<start regex>`.
    pub mode: String,
}

/// Settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of range or unreadable.
    #[error("invalid agent setting {key}: {reason}")]
    Invalid {
        /// The setting.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.to_string(),
    }
}

impl AgentConfig {
    /// Checks the settings, with an error naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_name.is_empty() {
            return Err(invalid(
                "node_name",
                "empty: pass --node-name or set NODE_NAME (the DaemonSet sets it from spec.nodeName)",
            ));
        }
        if self.max_record_bytes == 0 {
            return Err(invalid("max_record_bytes", "must be at least 1"));
        }
        if self.batch_bytes == 0 || self.request_max_bytes == 0 {
            return Err(invalid("batch_bytes", "must be at least 1"));
        }
        for (i, f) in self.files.iter().enumerate() {
            if let Some(fmt) = &f.format {
                fmt.parse::<Format>()
                    .map_err(|e| invalid(format!("files[{i}].format"), e))?;
            }
            if let Some(m) = &f.multiline {
                m.parse::<Multiline>()
                    .map_err(|e| invalid(format!("files[{i}].multiline"), e))?;
            }
        }
        for (i, u) in self.journald.units.iter().enumerate() {
            if u.trim().is_empty() || u.starts_with('-') || u.contains(['\0', '\n']) {
                return Err(invalid(
                    format!("journald.units[{i}]"),
                    format!("{u:?} is not a unit name"),
                ));
            }
        }
        for (i, r) in self.multiline.iter().enumerate() {
            r.mode
                .parse::<Multiline>()
                .map_err(|e| invalid(format!("multiline[{i}].mode"), e))?;
        }
        Ok(())
    }

    /// Batch age limit.
    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }

    /// Quiet time before held records are flushed.
    pub fn flush_quiet(&self) -> Duration {
        Duration::from_millis(self.flush_quiet_ms)
    }

    /// How long a rotated file is waited for.
    pub fn rotated_wait(&self) -> Duration {
        Duration::from_secs(self.rotated_wait_secs)
    }
}
