//! The cache proper: pod snapshots by uid and by name, namespace labels, node labels.

use crate::{PodMeta, MULTILINE_ANNOTATION};
use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which label or annotation keys to copy.
#[derive(Debug)]
pub(crate) struct KeyFilter {
    all: bool,
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl KeyFilter {
    /// Compiles an allow-list; `empty_means_all` says what an empty list allows.
    pub(crate) fn new(allow: &[String], empty_means_all: bool) -> KeyFilter {
        let mut filter = KeyFilter {
            all: allow.is_empty() && empty_means_all,
            exact: HashSet::new(),
            prefixes: Vec::new(),
        };
        for entry in allow {
            match entry.strip_suffix('*') {
                Some("") => filter.all = true,
                Some(prefix) => filter.prefixes.push(prefix.to_string()),
                None => {
                    filter.exact.insert(entry.clone());
                }
            }
        }
        filter
    }

    fn allows(&self, key: &str) -> bool {
        self.all || self.exact.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p))
    }

    /// The allowed entries of `map`.
    pub(crate) fn apply(&self, map: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
        match map {
            Some(map) => map
                .iter()
                .filter(|(k, _)| self.allows(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            None => BTreeMap::new(),
        }
    }
}

/// Multiline rules from `quarry.dev/multiline` (key `*`) and `quarry.dev/multiline.<container>`.
pub(crate) fn multiline_rules(
    annotations: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut rules = BTreeMap::new();
    for (key, value) in annotations.into_iter().flatten() {
        let Some(rest) = key.strip_prefix(MULTILINE_ANNOTATION) else {
            continue;
        };
        let container = match rest.strip_prefix('.') {
            _ if rest.is_empty() => "*",
            Some(c) if !c.is_empty() => c,
            _ => continue,
        };
        rules.insert(container.to_string(), value.trim().to_string());
    }
    rules
}

/// The pod's own part of a snapshot (namespace and node labels left empty); None without name or namespace.
pub(crate) fn pod_meta(
    pod: &Pod,
    labels: &KeyFilter,
    annotations: &KeyFilter,
    deleted: bool,
) -> Option<PodMeta> {
    let meta = &pod.metadata;
    let mut images = BTreeMap::new();
    if let Some(spec) = &pod.spec {
        let all = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in all {
            if let Some(image) = &c.image {
                images.insert(c.name.clone(), image.clone());
            }
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            if let Some(image) = &c.image {
                images.insert(c.name.clone(), image.clone());
            }
        }
    }
    Some(PodMeta {
        namespace: meta.namespace.clone().filter(|s| !s.is_empty())?,
        name: meta.name.clone().filter(|s| !s.is_empty())?,
        uid: meta.uid.clone().unwrap_or_default(),
        labels: labels.apply(meta.labels.as_ref()),
        annotations: annotations.apply(meta.annotations.as_ref()),
        images,
        namespace_labels: BTreeMap::new(),
        node_labels: BTreeMap::new(),
        multiline: multiline_rules(meta.annotations.as_ref()),
        deleted,
    })
}

/// One cached pod.
#[derive(Debug)]
struct PodEntry {
    meta: Arc<PodMeta>,
    /// When it was seen deleted; evicted `grace` later.
    deleted_at: Option<Instant>,
}

/// All the cached metadata; guarded by the `RwLock` in `Shared`.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    /// By uid (or `namespace/name` for a pod without uid).
    pods: HashMap<String, PodEntry>,
    /// Namespace, then name, to the key in `pods` of the newest pod of that name.
    by_name: HashMap<String, HashMap<String, String>>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    node_labels: BTreeMap<String, String>,
    /// Keys listed since the pod watch's last (re)list started.
    pods_listed: Option<HashSet<String>>,
    /// Names listed since the namespace watch's last (re)list started.
    namespaces_listed: Option<HashSet<String>>,
}

fn key_of(meta: &PodMeta) -> String {
    if meta.uid.is_empty() {
        format!("{}/{}", meta.namespace, meta.name)
    } else {
        meta.uid.clone()
    }
}

impl Cache {
    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        let key = self.by_name.get(namespace)?.get(name)?;
        self.pods.get(key).map(|e| e.meta.clone())
    }

    pub(crate) fn pod_by_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        if uid.is_empty() {
            return None;
        }
        self.pods.get(uid).map(|e| e.meta.clone())
    }

    /// (live pods, namespaces, deleted pods kept).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let deleted = self
            .pods
            .values()
            .filter(|e| e.deleted_at.is_some())
            .count();
        (self.pods.len() - deleted, self.namespaces.len(), deleted)
    }

    fn compose(&self, mut meta: PodMeta) -> PodMeta {
        meta.namespace_labels = self
            .namespaces
            .get(&meta.namespace)
            .cloned()
            .unwrap_or_default();
        meta.node_labels = self.node_labels.clone();
        meta
    }

    /// Adds or replaces a pod (deleted or not); true when anything changed.
    pub(crate) fn put_pod(&mut self, meta: PodMeta, now: Instant) -> bool {
        let meta = self.compose(meta);
        let key = key_of(&meta);
        if let Some(listed) = &mut self.pods_listed {
            listed.insert(key.clone());
        }
        let mut changed = false;
        // A live pod of the same name with another uid (a StatefulSet's, say) takes the name over; the
        // old one stays resolvable by uid, as deleted, for its grace period. A deleted pod never takes
        // a name from another.
        let names = self.by_name.entry(meta.namespace.clone()).or_default();
        let replaced = match names.get_mut(&meta.name) {
            Some(old) if *old == key => None,
            Some(_) if meta.deleted => None,
            Some(old) => Some(std::mem::replace(old, key.clone())),
            None => {
                names.insert(meta.name.clone(), key.clone());
                changed = true;
                None
            }
        };
        if let Some(old) = replaced {
            changed = true;
            self.mark_deleted(&old, now);
        }
        match self.pods.get_mut(&key) {
            Some(entry) if *entry.meta == meta => {}
            Some(entry) => {
                entry.deleted_at = match (meta.deleted, entry.deleted_at) {
                    (false, _) => None,
                    (true, at) => Some(at.unwrap_or(now)),
                };
                entry.meta = Arc::new(meta);
                changed = true;
            }
            None => {
                let deleted_at = meta.deleted.then_some(now);
                self.pods.insert(
                    key,
                    PodEntry {
                        meta: Arc::new(meta),
                        deleted_at,
                    },
                );
                changed = true;
            }
        }
        changed
    }

    fn mark_deleted(&mut self, key: &str, now: Instant) -> bool {
        match self.pods.get_mut(key) {
            Some(entry) if entry.deleted_at.is_none() => {
                let mut meta = (*entry.meta).clone();
                meta.deleted = true;
                entry.meta = Arc::new(meta);
                entry.deleted_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// The pod watch starts a (re)list.
    pub(crate) fn pods_relist_started(&mut self) {
        self.pods_listed = Some(HashSet::new());
    }

    /// The pod watch's (re)list is complete: live pods it did not list were deleted meanwhile.
    pub(crate) fn pods_relist_done(&mut self, now: Instant) -> bool {
        let Some(listed) = self.pods_listed.take() else {
            return false;
        };
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(k, e)| e.deleted_at.is_none() && !listed.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        let mut changed = false;
        for key in gone {
            changed |= self.mark_deleted(&key, now);
        }
        changed
    }

    /// Drops pods deleted more than `grace` ago; true when any was.
    pub(crate) fn evict(&mut self, now: Instant, grace: Duration) -> bool {
        let expired: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| {
                e.deleted_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= grace)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            if let Some(entry) = self.pods.remove(key) {
                let meta = &entry.meta;
                if let Some(names) = self.by_name.get_mut(&meta.namespace) {
                    if names.get(&meta.name) == Some(key) {
                        names.remove(&meta.name);
                    }
                    if names.is_empty() {
                        self.by_name.remove(&meta.namespace);
                    }
                }
            }
        }
        !expired.is_empty()
    }

    /// Rebuilds the snapshots matching `affected` from the current namespace and node labels.
    fn recompose(&mut self, affected: impl Fn(&PodMeta) -> bool) {
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| affected(&e.meta))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(entry) = self.pods.get(&key) {
                let meta = self.compose((*entry.meta).clone());
                if let Some(entry) = self.pods.get_mut(&key) {
                    entry.meta = Arc::new(meta);
                }
            }
        }
    }

    /// Sets a namespace's labels; true when they changed.
    pub(crate) fn put_namespace(&mut self, name: String, labels: BTreeMap<String, String>) -> bool {
        if let Some(listed) = &mut self.namespaces_listed {
            listed.insert(name.clone());
        }
        if self.namespaces.get(&name) == Some(&labels) {
            return false;
        }
        self.namespaces.insert(name.clone(), labels);
        self.recompose(|m| m.namespace == name);
        true
    }

    /// Forgets a deleted namespace; its pods keep the labels they had.
    pub(crate) fn remove_namespace(&mut self, name: &str) -> bool {
        self.namespaces.remove(name).is_some()
    }

    /// The namespace watch starts a (re)list.
    pub(crate) fn namespaces_relist_started(&mut self) {
        self.namespaces_listed = Some(HashSet::new());
    }

    /// The namespace watch's (re)list is complete: namespaces it did not list are gone.
    pub(crate) fn namespaces_relist_done(&mut self) -> bool {
        let Some(listed) = self.namespaces_listed.take() else {
            return false;
        };
        let before = self.namespaces.len();
        self.namespaces.retain(|name, _| listed.contains(name));
        before != self.namespaces.len()
    }

    /// Sets the node's labels; true when they changed.
    pub(crate) fn put_node_labels(&mut self, labels: BTreeMap<String, String>) -> bool {
        if self.node_labels == labels {
            return false;
        }
        self.node_labels = labels;
        self.recompose(|_| true);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, EphemeralContainer, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn multiline_annotations() {
        let ann = map(&[
            ("quarry.dev/multiline", " java "),
            ("quarry.dev/multiline.app", "go"),
            ("quarry.dev/multiline.", "ignored: no container"),
            ("quarry.dev/multilinex", "ignored: another key"),
            ("quarry.dev/multiline.side.car", "python"),
            ("other.dev/multiline", "ignored"),
        ]);
        assert_eq!(
            multiline_rules(Some(&ann)),
            map(&[("*", "java"), ("app", "go"), ("side.car", "python")])
        );
        assert!(multiline_rules(None).is_empty());
    }

    #[test]
    fn allow_lists() {
        let all = KeyFilter::new(&[], true);
        let none = KeyFilter::new(&[], false);
        let some = KeyFilter::new(&strings(&["app", "team.io/*"]), false);
        let star = KeyFilter::new(&strings(&["*"]), false);
        let labels = map(&[
            ("app", "a"),
            ("application", "b"),
            ("team.io/owner", "c"),
            ("x", "d"),
        ]);
        assert_eq!(all.apply(Some(&labels)), labels);
        assert!(none.apply(Some(&labels)).is_empty());
        assert_eq!(star.apply(Some(&labels)), labels);
        assert_eq!(
            some.apply(Some(&labels)),
            map(&[("app", "a"), ("team.io/owner", "c")])
        );
    }

    fn pod(ns: &str, name: &str, uid: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                uid: Some(uid.into()),
                labels: Some(map(&[("app", name)])),
                annotations: Some(map(&[("secret", "s"), ("quarry.dev/multiline", "java")])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("img:1".into()),
                    ..Container::default()
                }],
                init_containers: Some(vec![Container {
                    name: "init".into(),
                    image: Some("init:1".into()),
                    ..Container::default()
                }]),
                ephemeral_containers: Some(vec![EphemeralContainer {
                    name: "debug".into(),
                    image: Some("busybox".into()),
                    ..EphemeralContainer::default()
                }]),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn meta(p: &Pod, deleted: bool) -> PodMeta {
        let all = KeyFilter::new(&[], true);
        let none = KeyFilter::new(&[], false);
        pod_meta(p, &all, &none, deleted).unwrap()
    }

    #[test]
    fn snapshot_fields() {
        let m = meta(&pod("ns", "p", "u1"), false);
        assert_eq!(m.labels, map(&[("app", "p")]));
        assert!(m.annotations.is_empty());
        assert_eq!(m.multiline, map(&[("*", "java")]));
        assert_eq!(
            m.images,
            map(&[("debug", "busybox"), ("init", "init:1"), ("main", "img:1")])
        );
        let mut nameless = pod("ns", "p", "u1");
        nameless.metadata.name = None;
        assert!(pod_meta(
            &nameless,
            &KeyFilter::new(&[], true),
            &KeyFilter::new(&[], true),
            false
        )
        .is_none());
    }

    #[test]
    fn lifecycle() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(60);
        let mut c = Cache::default();
        assert!(c.put_namespace("ns".into(), map(&[("team", "a")])));
        assert!(c.put_pod(meta(&pod("ns", "p", "u1"), false), t0));
        assert!(
            !c.put_pod(meta(&pod("ns", "p", "u1"), false), t0),
            "unchanged"
        );
        assert_eq!(
            c.pod("ns", "p").unwrap().namespace_labels,
            map(&[("team", "a")])
        );
        assert!(c.put_node_labels(map(&[("zone", "z1")])));
        assert_eq!(
            c.pod_by_uid("u1").unwrap().node_labels,
            map(&[("zone", "z1")])
        );
        assert!(c.put_namespace("ns".into(), map(&[("team", "b")])));
        assert_eq!(
            c.pod("ns", "p").unwrap().namespace_labels,
            map(&[("team", "b")])
        );

        // Recreated under the same name: the old uid stays resolvable, as deleted.
        assert!(c.put_pod(meta(&pod("ns", "p", "u2"), false), t0));
        assert_eq!(c.pod("ns", "p").unwrap().uid, "u2");
        assert!(c.pod_by_uid("u1").unwrap().deleted);
        assert_eq!(c.counts(), (1, 1, 1));
        // A late deletion of the old pod does not take the name back.
        c.put_pod(meta(&pod("ns", "p", "u1"), true), t0);
        assert_eq!(c.pod("ns", "p").unwrap().uid, "u2");

        assert!(c.put_pod(
            meta(&pod("ns", "p", "u2"), true),
            t0 + Duration::from_secs(30)
        ));
        assert!(c.pod("ns", "p").unwrap().deleted);
        assert!(c.evict(t0 + grace, grace));
        assert!(c.pod_by_uid("u1").is_none());
        assert!(c.pod("ns", "p").is_some());
        assert!(c.evict(t0 + grace + Duration::from_secs(30), grace));
        assert!(c.pod("ns", "p").is_none());
        assert_eq!(c.counts(), (0, 1, 0));
    }

    #[test]
    fn relist_marks_missing_pods_deleted() {
        let t0 = Instant::now();
        let mut c = Cache::default();
        c.put_pod(meta(&pod("ns", "a", "ua"), false), t0);
        c.put_pod(meta(&pod("ns", "b", "ub"), false), t0);
        c.pods_relist_started();
        c.put_pod(meta(&pod("ns", "a", "ua"), false), t0);
        assert!(c.pods_relist_done(t0));
        assert!(!c.pod("ns", "a").unwrap().deleted);
        assert!(c.pod("ns", "b").unwrap().deleted);

        c.put_namespace("x".into(), BTreeMap::new());
        c.put_namespace("y".into(), BTreeMap::new());
        c.namespaces_relist_started();
        c.put_namespace("y".into(), BTreeMap::new());
        assert!(c.namespaces_relist_done());
        assert_eq!(c.counts().1, 1);
    }
}
