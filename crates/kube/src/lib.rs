//! The node agent's Kubernetes metadata cache.
//!
//! `quarry agent` tails `/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log` and enriches every event
//! with the pod's labels, allow-listed annotations, container images, its namespace's labels and the
//! node's labels. Nothing on that hot path talks to the API: [`Metadata::start`] spawns watches on the
//! given tokio runtime that keep an in-memory cache up to date, and a lookup ([`Metadata::pod`],
//! [`Metadata::pod_by_uid`]) is a read lock plus hash lookups returning a shared [`PodMeta`] snapshot.
//!
//! Three watches feed the cache: this node's pods (field selector `spec.nodeName=<node>`), all namespaces
//! (for their labels) and this node (`metadata.name=<node>`). Initial lists ask for `resourceVersion=0`,
//! so the apiserver answers from its watch cache rather than etcd. When a namespace's or the node's labels
//! change, the affected snapshots are rebuilt, so lookups never compose anything. A deleted pod stays
//! resolvable (with `deleted: true`) for [`MetaConfig::grace`] so the last lines it wrote are still
//! enriched, then it is evicted; [`Metadata::generation`] changes with every change of the cache.
//!
//! The API is found as configured ([`MetaConfig::api_url`]), else from the in-cluster service account,
//! else from `KUBECONFIG` / `~/.kube/config`. Without API access (no configuration, connection refused,
//! 403) the cache stays empty and every lookup is `None`: the agent falls back to what the log path says.
//! One warning is logged when the API is found unavailable, the watches keep retrying in the background
//! with kube-rs's default backoff (0.8 s doubling to 30 s, with jitter), and one info line is logged when
//! the pod watch connects. [`Metadata::stats`] reports the state. kube-runtime itself also logs a warning
//! for every 403 answer it retries (target `kube_runtime::watcher`).
//!
//! Dependencies: `kube` (API client, configuration, TLS through rustls, and `runtime::watcher` for
//! list+watch with relists and backoff), `k8s-openapi` (the typed Pod, Namespace and Node objects),
//! `http` (the URI of a configured API address), `tokio` (the runtime the watches run on), `futures`
//! (driving the watch streams), `parking_lot` (the read-mostly cache lock and the readiness condition
//! variable), `tracing` (the agent's own logs) and `thiserror` (the setup error type).

mod cache;
mod watch;

use cache::{Cache, KeyFilter};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long metadata of a deleted pod stays resolvable unless configured otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5 * 60);

/// Annotation whose value is the multiline rule of all the pod's containers (key `*` in [`PodMeta::multiline`]).
pub const MULTILINE_ANNOTATION: &str = "quarry.dev/multiline";

/// What to watch and what to keep.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// The node this agent runs on; empty watches the pods of all nodes and no node.
    pub node_name: String,
    /// Where the API is: None = infer (in-cluster service account, then KUBECONFIG / ~/.kube/config).
    pub api_url: Option<String>,
    /// Label keys to copy; an entry ending in '*' is a prefix; empty = all labels.
    pub label_allow: Vec<String>,
    /// Annotation keys to copy; same rules; empty = none.
    pub annotation_allow: Vec<String>,
    /// How long a deleted pod stays resolvable.
    pub grace: Duration,
}

impl MetaConfig {
    /// A configuration for `node_name` with the defaults: inferred API, all labels, no annotations, 5 min grace.
    pub fn new(node_name: impl Into<String>) -> MetaConfig {
        MetaConfig {
            node_name: node_name.into(),
            api_url: None,
            label_allow: Vec::new(),
            annotation_allow: Vec::new(),
            grace: DEFAULT_GRACE,
        }
    }
}

/// Kubernetes metadata of one pod, an immutable snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// The pod's allow-listed labels.
    pub labels: BTreeMap<String, String>,
    /// The pod's allow-listed annotations.
    pub annotations: BTreeMap<String, String>,
    /// Container name to image, over containers, init containers and ephemeral containers.
    pub images: BTreeMap<String, String>,
    /// The allow-listed labels of the pod's namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// The allow-listed labels of the node.
    pub node_labels: BTreeMap<String, String>,
    /// Multiline rules by container name (`*` = all containers), read whatever the allow-list says.
    pub multiline: BTreeMap<String, String>,
    /// The pod was deleted and is kept for the grace period.
    pub deleted: bool,
}

impl PodMeta {
    /// The multiline rule of `container`: its own, else the pod-wide one.
    pub fn multiline_for(&self, container: &str) -> Option<&str> {
        self.multiline
            .get(container)
            .or_else(|| self.multiline.get("*"))
            .map(String::as_str)
    }
}

/// A point-in-time view of the cache and its watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaStats {
    /// The pod watch is connected to the API.
    pub connected: bool,
    /// Live pods in the cache.
    pub pods: usize,
    /// Namespaces whose labels are known.
    pub namespaces: usize,
    /// Deleted pods kept for their grace period.
    pub deleted_kept: usize,
    /// Errors the watches met (each is retried after a backoff).
    pub watch_errors: u64,
    /// Watch events applied to the cache.
    pub events: u64,
}

/// Errors met while setting up the API client (logged and retried, never returned to the caller).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("invalid Kubernetes API URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("no Kubernetes API configuration: in-cluster: {in_cluster}; kubeconfig: {kubeconfig}")]
    NoConfig {
        in_cluster: String,
        kubeconfig: String,
    },
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// Which initial lists have completed.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    pub(crate) pods: bool,
    pub(crate) namespaces: bool,
    pub(crate) node: bool,
    pub(crate) no_config: bool,
}

/// State shared by the handles and the watch tasks.
pub(crate) struct Shared {
    pub(crate) enabled: bool,
    pub(crate) node_name: String,
    pub(crate) grace: Duration,
    pub(crate) labels: KeyFilter,
    pub(crate) annotations: KeyFilter,
    pub(crate) cache: RwLock<Cache>,
    pub(crate) generation: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) watch_errors: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) ready: Mutex<Readiness>,
    pub(crate) ready_changed: Condvar,
    pub(crate) log: Mutex<watch::LogState>,
}

impl Shared {
    fn new(enabled: bool, cfg: &MetaConfig) -> Shared {
        Shared {
            enabled,
            node_name: cfg.node_name.clone(),
            grace: cfg.grace,
            labels: KeyFilter::new(&cfg.label_allow, true),
            annotations: KeyFilter::new(&cfg.annotation_allow, false),
            cache: RwLock::new(Cache::default()),
            generation: AtomicU64::new(0),
            events: AtomicU64::new(0),
            watch_errors: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            ready: Mutex::new(Readiness::default()),
            ready_changed: Condvar::new(),
            log: Mutex::new(watch::LogState::default()),
        }
    }

    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn set_ready(&self, f: impl FnOnce(&mut Readiness)) {
        let mut ready = self.ready.lock();
        f(&mut ready);
        self.ready_changed.notify_all();
    }
}

/// Aborts the watch task when the last [`Metadata`] handle is dropped.
struct TaskGuard(Option<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The metadata cache: a cheap, cloneable handle usable from any thread.
#[derive(Clone)]
pub struct Metadata {
    shared: Arc<Shared>,
    _task: Arc<TaskGuard>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("enabled", &self.shared.enabled)
            .field("node_name", &self.shared.node_name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Metadata {
    /// Starts the watches on `rt` and returns at once; problems are logged and reported in [`Metadata::stats`].
    pub fn start(cfg: MetaConfig, rt: &tokio::runtime::Handle) -> Metadata {
        let shared = Arc::new(Shared::new(true, &cfg));
        let task = rt.spawn(watch::run(shared.clone(), cfg.api_url));
        Metadata {
            shared,
            _task: Arc::new(TaskGuard(Some(task))),
        }
    }

    /// A cache that never connects (`--no-kubernetes`): every lookup is None.
    pub fn disabled() -> Metadata {
        Metadata {
            shared: Arc::new(Shared::new(false, &MetaConfig::new(""))),
            _task: Arc::new(TaskGuard(None)),
        }
    }

    /// The pod `namespace`/`name`, live or deleted within the grace period.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.shared.cache.read().pod(namespace, name)
    }

    /// The pod with this uid, live or deleted within the grace period.
    pub fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.shared.cache.read().pod_by_uid(uid)
    }

    /// Counts and connection state.
    pub fn stats(&self) -> MetaStats {
        let (pods, namespaces, deleted_kept) = self.shared.cache.read().counts();
        MetaStats {
            connected: self.shared.connected.load(Ordering::Acquire),
            pods,
            namespaces,
            deleted_kept,
            watch_errors: self.shared.watch_errors.load(Ordering::Relaxed),
            events: self.shared.events.load(Ordering::Relaxed),
        }
    }

    /// Blocks until the initial lists are loaded (true), the timeout passes or no API is configured (false).
    ///
    /// True at once when disabled. Call it from a plain thread, not from inside the runtime's tasks.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        if !self.shared.enabled {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut ready = self.shared.ready.lock();
        loop {
            if ready.pods && ready.namespaces && ready.node {
                return true;
            }
            if ready.no_config {
                return false;
            }
            if self
                .shared
                .ready_changed
                .wait_until(&mut ready, deadline)
                .timed_out()
            {
                return ready.pods && ready.namespaces && ready.node;
            }
        }
    }

    /// A counter bumped on every change of the cache, so callers can re-resolve cached lookups cheaply.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }
}

/// Parses a pod log directory name `<namespace>_<pod>_<uid>` (namespaces and pod names cannot contain '_').
pub fn parse_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let namespace = parts.next()?;
    let pod = parts.next()?;
    let uid = parts.next()?;
    if parts.next().is_some() || namespace.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some((namespace, pod, uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_dirs() {
        assert_eq!(
            parse_pod_dir(
                "kube-system_coredns-5d78c9869d-8xk2p_0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
            ),
            Some((
                "kube-system",
                "coredns-5d78c9869d-8xk2p",
                "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
            ))
        );
        // Static pods carry a config hash as uid.
        assert_eq!(
            parse_pod_dir("kube-system_etcd-node-1_9a1e4b4c2a3f8d7e6b5c4d3e2f1a0b9c"),
            Some((
                "kube-system",
                "etcd-node-1",
                "9a1e4b4c2a3f8d7e6b5c4d3e2f1a0b9c"
            ))
        );
        assert_eq!(parse_pod_dir("a.b_c.d_e"), Some(("a.b", "c.d", "e")));
        for bad in [
            "",
            "default",
            "default_pod",
            "default_pod_",
            "_pod_uid",
            "default__uid",
            "default_pod_uid_extra",
            "default_pod_uid_",
        ] {
            assert_eq!(parse_pod_dir(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn disabled_is_inert() {
        let m = Metadata::disabled();
        assert!(m.wait_ready(Duration::from_secs(10)));
        assert_eq!(m.pod("default", "x"), None);
        assert_eq!(m.pod_by_uid("u"), None);
        assert_eq!(m.stats(), MetaStats::default());
        assert_eq!(m.generation(), 0);
    }

    #[test]
    fn multiline_fallback() {
        let mut p = PodMeta::default();
        assert_eq!(p.multiline_for("app"), None);
        p.multiline.insert("*".into(), "java".into());
        p.multiline.insert("app".into(), "go".into());
        assert_eq!(p.multiline_for("app"), Some("go"));
        assert_eq!(p.multiline_for("sidecar"), Some("java"));
    }
}
