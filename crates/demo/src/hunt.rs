//! `quarry demo`: loading the generated cluster into a store, and the guided hunt that uncovers the
//! attack with the queries a hunter would type.

use crate::{generate, Attack, DemoConfig};
use quarry_parse::{Decoder, DecoderOptions, Format, Multiline, MultilineMode};
use quarry_query::{run, RunOptions};
use quarry_store::wal::BatchKey;
use quarry_store::{Store, StoreError};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::time::Instant;

/// What [`load`] stored.
#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    /// Files generated.
    pub files: usize,
    /// Raw bytes generated.
    pub bytes: u64,
    /// Events stored.
    pub events: u64,
    /// Events flagged as unparsable (none are expected).
    pub parse_errors: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// The decoder for a generated file of `format` (a `Chunk::format`), as the agent reads it: stack traces
/// in container logs are joined.
pub fn decoder_for(format: &str) -> Decoder {
    match format {
        // Join the Java services' stack traces into one event each, as the agent does.
        "cri" => Decoder::with_options(
            Format::Cri,
            DecoderOptions {
                multiline: Some(Multiline::new(MultilineMode::Auto)),
                ..DecoderOptions::default()
            },
        ),
        other => Decoder::new(other.parse().unwrap_or(Format::Auto)),
    }
}

/// Generates the demo data and stores it, decoding on `workers` threads (files are spread over them
/// so each file keeps one decoder). `progress` gets the raw bytes and events done so far.
pub fn load(
    store: &Store,
    cfg: &DemoConfig,
    workers: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<LoadSummary, StoreError> {
    let started = Instant::now();
    let workers = workers.max(1);
    let mut summary = LoadSummary::default();
    let (done_tx, done_rx) = mpsc::channel::<Result<(u64, u64, u64), StoreError>>();
    std::thread::scope(|s| -> Result<(), StoreError> {
        let mut senders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<crate::Chunk>(2);
            senders.push(tx);
            let done = done_tx.clone();
            s.spawn(move || {
                let mut decoders: HashMap<String, Decoder> = HashMap::new();
                let mut events = Vec::new();
                let mut pending: HashMap<String, crate::Chunk> = HashMap::new();
                let flush =
                    |chunk: &crate::Chunk, d: &mut Decoder, last: bool, events: &mut Vec<_>| {
                        let now = cfg.end_ns;
                        if last {
                            d.finish(now, events);
                        } else {
                            d.feed(&chunk.data, now, events);
                        }
                        let n = events.len() as u64;
                        let errors = events
                            .iter()
                            .filter(|e: &&quarry_model::Event| e.parse_error.is_some())
                            .count() as u64;
                        let r = store
                            .ingest(BatchKey::default(), &chunk.source, std::mem::take(events))
                            .map(|_| (if last { 0 } else { chunk.data.len() as u64 }, n, errors));
                        let _ = done.send(r);
                    };
                for chunk in rx {
                    let d = decoders
                        .entry(chunk.path.clone())
                        .or_insert_with(|| decoder_for(chunk.format));
                    flush(&chunk, d, false, &mut events);
                    pending.insert(
                        chunk.path.clone(),
                        crate::Chunk {
                            data: Vec::new(),
                            ..chunk
                        },
                    );
                }
                for (path, chunk) in pending {
                    if let Some(d) = decoders.get_mut(&path) {
                        flush(&chunk, d, true, &mut events);
                    }
                }
            });
        }
        drop(done_tx);
        let mut paths: HashMap<String, usize> = HashMap::new();
        for chunk in generate(cfg) {
            let next = paths.len();
            let w = *paths.entry(chunk.path.clone()).or_insert(next % workers);
            if senders[w].send(chunk).is_err() {
                break;
            }
            while let Ok(r) = done_rx.try_recv() {
                let (b, e, pe) = r?;
                summary.bytes += b;
                summary.events += e;
                summary.parse_errors += pe;
                progress(summary.bytes, summary.events);
            }
        }
        summary.files = paths.len();
        drop(senders);
        for r in done_rx.iter() {
            let (b, e, pe) = r?;
            summary.bytes += b;
            summary.events += e;
            summary.parse_errors += pe;
        }
        progress(summary.bytes, summary.events);
        Ok(())
    })?;
    store.commit()?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// One step of the guided hunt.
#[derive(Debug, Clone)]
pub struct HuntStep {
    /// What the hunter asks.
    pub title: &'static str,
    /// What the answer shows.
    pub why: String,
    /// The query.
    pub query: String,
}

/// The guided hunt: from "who is being refused?" to the exfiltration, each query using what the one
/// before revealed.
pub fn hunt_steps(a: &Attack) -> Vec<HuntStep> {
    vec![
        HuntStep {
            title: "Who is the API server refusing?",
            why: "Denied requests grouped by caller: one outside address stands out, first anonymous, then with a service account's token.".into(),
            query: "filter responseStatus.code in [401, 403] | stats count(*) as denied by sourceIPs.0, user.username | sort denied desc | limit 6".into(),
        },
        HuntStep {
            title: "Everything that address touched, in every log",
            why: format!("A word search over all sources: {} also brute-forced SSH on a node and shows up in VPC flows.", a.attacker_ip),
            query: format!("search \"{}\" | stats count(*) as events, earliest(@timestamp) as first, latest(@timestamp) as last by @source", a.attacker_ip),
        },
        HuntStep {
            title: "The SSH brute force on the node",
            why: "Failed passwords per node and source, from the nodes' auth logs.".into(),
            query: "filter appname = \"sshd\" and @message like \"Failed password\" | parse @message \"from * port\" as src | stats count(*) as failures by kubernetes.node, src | sort failures desc | limit 5".into(),
        },
        HuntStep {
            title: "What did the stolen token read?",
            why: format!("The service account {} listing and reading secrets from the outside address.", a.stolen_user),
            query: format!("filter user.username = \"{}\" and objectRef.resource = \"secrets\" | stats count(*) as calls by verb, objectRef.namespace, objectRef.name, responseStatus.code | sort calls desc | limit 10", a.stolen_user),
        },
        HuntStep {
            title: "Exec into pods",
            why: format!("A shell opened in {}/{} with the stolen token.", a.exec_namespace, a.exec_pod),
            query: "filter objectRef.subresource = \"exec\" | fields @timestamp, user.username, sourceIPs.0, objectRef.namespace, objectRef.name".into(),
        },
        HuntStep {
            title: "Privileged pods with host mounts",
            why: format!("{} in {}: privileged, mounting the node's root file system.", a.privileged_pod, a.privileged_namespace),
            query: "filter verb = \"create\" and objectRef.resource = \"pods\" and (requestObject.spec.containers.0.securityContext.privileged = true or ispresent(requestObject.spec.volumes.0.hostPath.path)) | fields @timestamp, user.username, objectRef.namespace, objectRef.name, requestObject.spec.volumes.0.hostPath.path".into(),
        },
        HuntStep {
            title: "New bindings to cluster-admin",
            why: format!("{} grants {} to the stolen service account.", a.clusterrolebinding, a.cluster_role),
            query: "filter objectRef.resource = \"clusterrolebindings\" and verb = \"create\" | fields @timestamp, user.username, sourceIPs.0, objectRef.name, requestObject.roleRef.name".into(),
        },
        HuntStep {
            title: "Where did the data go?",
            why: format!("The node {} sent {:.1} GB to {} (VPC flow logs).", a.node_ip, a.exfil_bytes as f64 / 1e9, a.exfil_ip),
            query: "filter action = \"ACCEPT\" and not isIpInSubnet(dstAddr, \"10.0.0.0/8\") | stats sum(bytes) as bytesOut by srcAddr, dstAddr | sort bytesOut desc | limit 5".into(),
        },
    ]
}

/// Runs the hunt over the store and prints each step with its answer (at most `max_rows` rows each).
pub fn print_hunt(
    store: &Store,
    steps: &[HuntStep],
    max_rows: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    for (i, step) in steps.iter().enumerate() {
        writeln!(out, "\n── {}. {} ──", i + 1, step.title)?;
        writeln!(out, "  $ quarry query '{}'", step.query)?;
        match run(store, &step.query, &RunOptions::default()) {
            Ok(mut r) => {
                let more = r.table.rows.len().saturating_sub(max_rows);
                r.table.rows.truncate(max_rows);
                for line in r.table.to_text_table_width(48).lines() {
                    writeln!(out, "  {line}")?;
                }
                if more > 0 {
                    writeln!(out, "  … and {more} more")?;
                }
                writeln!(
                    out,
                    "  {} ({} of {} events left after the index, {:.0} ms)",
                    step.why, r.stats.candidates, r.stats.events_in_range, r.stats.elapsed_ms
                )?;
            }
            Err(e) => writeln!(out, "  query failed: {e}")?,
        }
    }
    Ok(())
}
