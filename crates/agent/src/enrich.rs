//! What the agent adds to and takes from records: the source descriptor of each file with its Kubernetes
//! metadata (looked up once per file, never per line), the multi-line rule of its container, and
//! redaction of every record before it is queued.

use crate::config::AgentConfig;
use crate::discover::Owner;
use crate::metrics::{AgentMetrics, Loss};
use crate::tail::FileSpec;
use quarry_kube::{Metadata, PodMeta};
use quarry_model::{Event, Kind, Source};
use quarry_parse::{DecoderOptions, Format, Multiline};
use quarry_redact::{Redactor, Verdict};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Builds file specs and redacts records.
pub struct Enricher {
    cfg: Arc<AgentConfig>,
    meta: Metadata,
    redactor: Option<Redactor>,
}

impl Enricher {
    /// An enricher over a metadata cache and an optional redactor.
    pub fn new(cfg: Arc<AgentConfig>, meta: Metadata, redactor: Option<Redactor>) -> Enricher {
        Enricher {
            cfg,
            meta,
            redactor,
        }
    }

    /// The spec of a file of `owner`.
    pub fn spec(&self, owner: &Owner) -> FileSpec {
        let cfg = &self.cfg;
        let mut source = Source {
            cluster: cfg.cluster.clone(),
            node: Some(cfg.node_name.clone()),
            ..Source::default()
        };
        let mut options = DecoderOptions {
            max_record_bytes: cfg.max_record_bytes,
            ..DecoderOptions::default()
        };
        let format = match owner {
            Owner::Container {
                namespace,
                pod,
                uid,
                container,
            } => {
                source.kind = Kind::Container;
                source.namespace = Some(namespace.clone());
                source.pod = Some(pod.clone());
                source.container = Some(container.clone());
                if !uid.is_empty() {
                    source
                        .extra
                        .insert("kubernetes.pod_uid".into(), uid.clone());
                }
                let pm = self.meta.pod(namespace, pod);
                if let Some(pm) = &pm {
                    add_pod_meta(&mut source, pm, container);
                }
                options.multiline = pm
                    .as_ref()
                    .and_then(|pm| pm.multiline_for(container))
                    .and_then(|m| parse_multiline(m, "pod annotation"))
                    .or_else(|| self.configured_multiline(namespace, pod, container));
                Format::Container
            }
            Owner::NodeFile(i) => {
                let f = &cfg.files[*i];
                source.kind = f.kind;
                options.multiline = f
                    .multiline
                    .as_deref()
                    .and_then(|m| parse_multiline(m, "files.multiline"));
                f.format
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(Format::Auto)
            }
        };
        FileSpec {
            owner: owner.clone(),
            source: Arc::new(source),
            format,
            options,
        }
    }

    fn configured_multiline(&self, ns: &str, pod: &str, container: &str) -> Option<Multiline> {
        self.cfg
            .multiline
            .iter()
            .find(|r| {
                r.namespace.as_deref().is_none_or(|n| n == ns)
                    && r.pod_prefix.as_deref().is_none_or(|p| pod.starts_with(p))
                    && r.container.as_deref().is_none_or(|c| c == container)
            })
            .and_then(|r| parse_multiline(&r.mode, "multiline rule"))
    }

    /// Redacts `e`'s text; false if a rule drops the record (counted).
    pub fn redact(&self, e: &mut Event, metrics: &AgentMetrics) -> bool {
        let Some(r) = &self.redactor else {
            return true;
        };
        match r.redact(&mut e.raw) {
            Verdict::Keep => true,
            Verdict::Changed => {
                e.message = None;
                metrics.redacted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Verdict::Drop => {
                metrics.lose(Loss::Redaction, 1);
                false
            }
        }
    }

    /// Publishes the metadata cache's and the redactor's counters.
    pub fn report(&self, metrics: &AgentMetrics) {
        let st = self.meta.stats();
        metrics
            .metadata_pods
            .store(st.pods as u64, Ordering::Relaxed);
        metrics
            .metadata_connected
            .store(st.connected as u64, Ordering::Relaxed);
        if let Some(r) = &self.redactor {
            metrics.set_redactions(
                r.counts()
                    .into_iter()
                    .map(|c| (c.name, c.redacted, c.dropped))
                    .collect(),
            );
        }
    }

    /// The metadata cache's generation (changes when pods change).
    pub fn generation(&self) -> u64 {
        self.meta.generation()
    }
}

fn parse_multiline(mode: &str, origin: &str) -> Option<Multiline> {
    match mode.parse::<Multiline>() {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(mode, origin, error = %e, "ignoring an invalid multi-line rule");
            None
        }
    }
}

fn add_pod_meta(source: &mut Source, pm: &PodMeta, container: &str) {
    let x = &mut source.extra;
    x.insert("kubernetes.pod_uid".into(), pm.uid.clone());
    if let Some(image) = pm.images.get(container) {
        x.insert("kubernetes.container_image".into(), image.clone());
    }
    for (prefix, map) in [
        ("kubernetes.labels.", &pm.labels),
        ("kubernetes.annotations.", &pm.annotations),
        ("kubernetes.namespace_labels.", &pm.namespace_labels),
        ("kubernetes.node_labels.", &pm.node_labels),
    ] {
        for (k, v) in map {
            x.insert(format!("{prefix}{k}"), v.clone());
        }
    }
}
