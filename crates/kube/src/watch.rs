//! The background work: client setup, the pod / namespace / node watches, eviction, and the log lines
//! that say whether the API is reachable.

use crate::cache::pod_meta;
use crate::{SetupError, Shared};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::config::KubeConfigOptions;
use kube::runtime::watcher::{self, DefaultBackoff, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Config};
use std::fmt::Display;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// What has been said in the logs, so each state change is logged once.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    api_warned: bool,
    namespaces_warned: bool,
    node_warned: bool,
    node_missing_warned: bool,
}

/// The watches that only add labels to the pods' snapshots.
#[derive(Debug, Clone, Copy)]
enum Side {
    Namespaces,
    Node,
}

impl Side {
    fn what(self) -> &'static str {
        match self {
            Side::Namespaces => "namespaces",
            Side::Node => "the node",
        }
    }
}

/// Connects (retrying with backoff) and then runs the watches and the eviction until aborted.
pub(crate) async fn run(shared: Arc<Shared>, api_url: Option<String>) {
    let Some(client) = connect(&shared, api_url.as_deref()).await else {
        return;
    };
    tokio::join!(
        watch_pods(&shared, client.clone()),
        watch_namespaces(&shared, client.clone()),
        watch_node(&shared, client),
        evict(&shared),
    );
}

async fn client(api_url: Option<&str>) -> Result<Client, SetupError> {
    let config = match api_url {
        Some(url) => {
            Config::new(
                url.parse()
                    .map_err(|e: http::uri::InvalidUri| SetupError::BadUrl {
                        url: url.to_string(),
                        reason: e.to_string(),
                    })?,
            )
        }
        None => match Config::incluster() {
            Ok(config) => config,
            Err(in_cluster) => Config::from_kubeconfig(&KubeConfigOptions::default())
                .await
                .map_err(|kubeconfig| SetupError::NoConfig {
                    in_cluster: in_cluster.to_string(),
                    kubeconfig: kubeconfig.to_string(),
                })?,
        },
    };
    Ok(Client::try_from(config)?)
}

/// A client, once there is a configuration to build it from; None when the configured URL is invalid.
async fn connect(shared: &Shared, api_url: Option<&str>) -> Option<Client> {
    let mut backoff = DefaultBackoff::default();
    loop {
        match client(api_url).await {
            Ok(client) => {
                shared.set_ready(|r| r.no_config = false);
                return Some(client);
            }
            Err(e) => {
                api_down(shared, &e);
                shared.set_ready(|r| r.no_config = true);
                if matches!(e, SetupError::BadUrl { .. }) {
                    return None;
                }
            }
        }
        tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))).await;
    }
}

/// Errors a watch recovers from by itself without the API being unavailable (a stale resourceVersion,
/// a stream cut short); anything else means the API cannot be listed or watched right now.
fn is_routine(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchFailed(_) | watcher::Error::NoResourceVersion => true,
        watcher::Error::InitialListFailed(_) | watcher::Error::WatchStartFailed(_) => false,
    }
}

fn api_down(shared: &Shared, err: &dyn Display) {
    shared.connected.store(false, Ordering::Release);
    let mut log = shared.log.lock();
    if log.api_warned {
        debug!(error = %err, "Kubernetes API still unavailable");
    } else {
        log.api_warned = true;
        warn!(
            error = %err,
            "Kubernetes API unavailable: pod metadata comes from log paths only; retrying in the background"
        );
    }
}

fn api_up(shared: &Shared) {
    if shared.connected.load(Ordering::Acquire) || shared.connected.swap(true, Ordering::AcqRel) {
        return;
    }
    shared.log.lock().api_warned = false;
    info!(node = %shared.node_name, "Kubernetes API connected: pod metadata enrichment is on");
}

fn side_failed(shared: &Shared, side: Side, err: &watcher::Error) {
    shared.watch_errors.fetch_add(1, Ordering::Relaxed);
    shared.set_ready(|r| match side {
        Side::Namespaces => r.namespaces = true,
        Side::Node => r.node = true,
    });
    let mut log = shared.log.lock();
    let warned = match side {
        Side::Namespaces => &mut log.namespaces_warned,
        Side::Node => &mut log.node_warned,
    };
    // While the pod watch is down its one warning says it all.
    if is_routine(err) || *warned || !shared.connected.load(Ordering::Acquire) {
        debug!(error = %err, "cannot watch {}", side.what());
    } else {
        *warned = true;
        warn!(error = %err, "cannot watch {}: their labels are missing from pod metadata; retrying", side.what());
    }
}

fn side_ok(shared: &Shared, side: Side) {
    let mut log = shared.log.lock();
    let warned = match side {
        Side::Namespaces => &mut log.namespaces_warned,
        Side::Node => &mut log.node_warned,
    };
    if *warned {
        *warned = false;
        info!("watching {} again", side.what());
    }
}

async fn watch_pods(shared: &Shared, client: Client) {
    let mut config = watcher::Config::default().any_semantic();
    if !shared.node_name.is_empty() {
        config = config.fields(&format!("spec.nodeName={}", shared.node_name));
    }
    let mut stream =
        std::pin::pin!(watcher::watcher(Api::<Pod>::all(client), config).default_backoff());
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                // `Init` comes before the list request, so it says nothing about the API.
                let answered = !matches!(event, Event::Init);
                apply_pod_event(shared, event);
                if answered {
                    api_up(shared);
                }
            }
            Err(e) => {
                shared.watch_errors.fetch_add(1, Ordering::Relaxed);
                if is_routine(&e) {
                    debug!(error = %e, "pod watch restarts");
                } else {
                    api_down(shared, &e);
                }
            }
        }
    }
}

fn apply_pod_event(shared: &Shared, event: Event<Pod>) {
    let now = Instant::now();
    let snapshot = |pod: &Pod, deleted: bool| {
        shared.events.fetch_add(1, Ordering::Relaxed);
        pod_meta(pod, &shared.labels, &shared.annotations, deleted)
    };
    let changed = match event {
        Event::Init => {
            shared.cache.write().pods_relist_started();
            false
        }
        Event::InitApply(pod) | Event::Apply(pod) => {
            snapshot(&pod, false).is_some_and(|m| shared.cache.write().put_pod(m, now))
        }
        Event::Delete(pod) => {
            snapshot(&pod, true).is_some_and(|m| shared.cache.write().put_pod(m, now))
        }
        Event::InitDone => {
            let changed = shared.cache.write().pods_relist_done(now);
            shared.set_ready(|r| r.pods = true);
            changed
        }
    };
    if changed {
        shared.bump();
    }
}

async fn watch_namespaces(shared: &Shared, client: Client) {
    let config = watcher::Config::default().any_semantic();
    let mut stream =
        std::pin::pin!(watcher::watcher(Api::<Namespace>::all(client), config).default_backoff());
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                side_failed(shared, Side::Namespaces, &e);
                continue;
            }
        };
        let changed = match event {
            Event::Init => {
                shared.cache.write().namespaces_relist_started();
                false
            }
            Event::InitApply(ns) | Event::Apply(ns) => {
                shared.events.fetch_add(1, Ordering::Relaxed);
                let labels = shared.labels.apply(ns.metadata.labels.as_ref());
                match ns.metadata.name {
                    Some(name) => shared.cache.write().put_namespace(name, labels),
                    None => false,
                }
            }
            Event::Delete(ns) => {
                shared.events.fetch_add(1, Ordering::Relaxed);
                match ns.metadata.name {
                    Some(name) => shared.cache.write().remove_namespace(&name),
                    None => false,
                }
            }
            Event::InitDone => {
                let changed = shared.cache.write().namespaces_relist_done();
                shared.set_ready(|r| r.namespaces = true);
                changed
            }
        };
        side_ok(shared, Side::Namespaces);
        if changed {
            shared.bump();
        }
    }
}

async fn watch_node(shared: &Shared, client: Client) {
    if shared.node_name.is_empty() {
        shared.set_ready(|r| r.node = true);
        return;
    }
    let config = watcher::Config::default()
        .any_semantic()
        .fields(&format!("metadata.name={}", shared.node_name));
    let mut stream =
        std::pin::pin!(watcher::watcher(Api::<Node>::all(client), config).default_backoff());
    let mut listed = false;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                side_failed(shared, Side::Node, &e);
                continue;
            }
        };
        let changed = match event {
            Event::Init => {
                listed = false;
                false
            }
            Event::InitApply(node) | Event::Apply(node) => {
                listed = true;
                shared.events.fetch_add(1, Ordering::Relaxed);
                let labels = shared.labels.apply(node.metadata.labels.as_ref());
                shared.cache.write().put_node_labels(labels)
            }
            // The node's labels stay with the pods that ran on it.
            Event::Delete(_) => {
                shared.events.fetch_add(1, Ordering::Relaxed);
                false
            }
            Event::InitDone => {
                shared.set_ready(|r| r.node = true);
                let mut log = shared.log.lock();
                if !listed && !log.node_missing_warned {
                    log.node_missing_warned = true;
                    warn!(node = %shared.node_name, "node not found in the API: pod metadata has no node labels");
                }
                false
            }
        };
        side_ok(shared, Side::Node);
        if changed {
            shared.bump();
        }
    }
}

async fn evict(shared: &Shared) {
    let period = (shared.grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.cache.write().evict(Instant::now(), shared.grace) {
            shared.bump();
        }
    }
}
