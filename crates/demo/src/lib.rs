//! A seeded, repeatable generator of the last hour of logs of a small Amazon-EKS-like cluster, in the
//! formats these logs have on disk, with one attack woven in.
//!
//! The cluster `demo-eks` has four worker nodes per unit of scale, an nginx front end, two Spring Boot
//! services, PostgreSQL, CoreDNS, the VPC CNI and kube-proxy. [`generate`] streams, file by file and in time
//! order within each file:
//! - container logs in CRI format (`var/log/pods/<ns>_<pod>_<uid>/<container>/0.log`), with multi-line Java
//!   stack traces and 16 KiB partial (`P`) lines;
//! - the kube-apiserver audit log (`audit.k8s.io/v1` Events, one JSON object a line);
//! - each node's `/var/log/messages` and `/var/log/secure` (RFC 3164, as rsyslog writes them on AL2);
//! - VPC flow logs (default version-2 format, five-minute S3 objects with a header line).
//!
//! The attack ([`attack`] describes it) appears exactly once at every scale: an SSH brute force, anonymous
//! API probing, a stolen service-account token reading secrets, an exec, a privileged hostPath pod, a
//! cluster-admin binding and an exfiltration. Its addresses (RFC 5737) appear in no benign line.
//! `scale = N` makes N times more background data (more nodes and replicas, same hour).
//!
//! [`hunt`] loads the data into a store and runs the guided hunt that uncovers the attack.
//!
//! Dependencies: `quarry-parse`, `quarry-store` and `quarry-query` to load and hunt; `quarry-model` for the shared [`Source`]/[`Kind`] descriptors and civil-time helpers;
//! `rand` for the `Rng`/`SeedableRng` traits; `rand_chacha` for a portable seedable RNG, so the same seed
//! gives byte-identical output on every machine. JSON is written by hand for speed (`serde_json` is only a
//! test dependency, to check the output).

#![warn(missing_docs)]

mod attack;
mod audit;
mod cri;
mod fmt;
pub mod hunt;
mod node;
mod rng;
mod stream;
mod topo;
mod vpc;

pub use attack::{Attack, AttackStep};

use quarry_model::{Kind, Source};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use stream::Stream;
use topo::Topo;

/// Size at which a chunk is handed out.
const CHUNK: usize = 2 << 20;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// Seed of every random choice; the same config gives byte-identical output.
    pub seed: u64,
    /// Multiplier of the background volume (1 gives a few tens of MB).
    pub scale: u32,
    /// End of the generated hour, UTC nanoseconds.
    pub end_ns: i64,
    /// Cluster name.
    pub cluster: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seed: 42,
            scale: 1,
            end_ns: quarry_model::time::now_nanos(),
            cluster: "demo-eks".to_string(),
        }
    }
}

/// A piece of one generated file: whole, newline-terminated lines.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Where the lines come from.
    pub source: Source,
    /// Format of the lines: `cri`, `syslog`, `audit` or `vpcflow`.
    pub format: &'static str,
    /// Path of the file on a real machine or bucket, relative (`var/log/pods/...`, `nodes/<node>/var/log/secure`).
    pub path: String,
    /// The lines.
    pub data: Vec<u8>,
}

/// Counts of one kind of file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindSummary {
    /// Files.
    pub files: usize,
    /// Lines.
    pub lines: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Totals of generated data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files.
    pub files: usize,
    /// Lines.
    pub lines: u64,
    /// Bytes.
    pub bytes: u64,
    /// The same per kind of source.
    pub per_kind: BTreeMap<Kind, KindSummary>,
    last_path: String,
}

impl Summary {
    /// Counts a chunk (chunks of one file arrive one after another).
    pub fn add(&mut self, chunk: &Chunk) {
        let lines = chunk.data.iter().filter(|&&b| b == b'\n').count() as u64;
        let bytes = chunk.data.len() as u64;
        let new_file = chunk.path != self.last_path;
        let k = self.per_kind.entry(chunk.source.kind).or_default();
        k.lines += lines;
        k.bytes += bytes;
        self.lines += lines;
        self.bytes += bytes;
        if new_file {
            k.files += 1;
            self.files += 1;
            self.last_path.clone_from(&chunk.path);
        }
    }
}

enum Spec {
    Audit,
    Node(usize, node::NodeFile),
    Pod(usize, usize),
    Vpc(i64, i64),
}

struct Gen {
    topo: Arc<Topo>,
    specs: Vec<Spec>,
    next: usize,
    cur: Option<(Source, &'static str, String, Box<dyn Stream>)>,
    audit: Vec<(i64, audit::Rec)>,
    secure: Vec<(i64, stream::SysLine)>,
    flows: Arc<Vec<vpc::Flow>>,
}

impl Gen {
    fn open(&mut self, spec: usize) -> (Source, &'static str, String, Box<dyn Stream>) {
        let t = Arc::clone(&self.topo);
        let cluster = Some(t.cluster.clone());
        match self.specs[spec] {
            Spec::Audit => (
                Source {
                    kind: Kind::Audit,
                    cluster,
                    ..Source::default()
                },
                "audit",
                "var/log/audit/kube-apiserver-audit.log".to_string(),
                Box::new(audit::AuditStream::new(t, std::mem::take(&mut self.audit))),
            ),
            Spec::Node(n, file) => {
                let node = &t.nodes[n];
                let attack = if file == node::NodeFile::Secure && t.pods[t.victim].node == n {
                    std::mem::take(&mut self.secure)
                } else {
                    Vec::new()
                };
                (
                    Source {
                        kind: Kind::Syslog,
                        cluster,
                        node: Some(node.name.clone()),
                        ..Source::default()
                    },
                    "syslog",
                    node::path(node, file),
                    Box::new(node::NodeStream::new(Arc::clone(&t), n, file, attack)),
                )
            }
            Spec::Pod(p, c) => {
                let pod = &t.pods[p];
                (
                    Source {
                        kind: Kind::Container,
                        cluster,
                        node: Some(t.nodes[pod.node].name.clone()),
                        namespace: Some(pod.ns.to_string()),
                        pod: Some(pod.name.clone()),
                        container: Some(pod.containers[c].to_string()),
                        ..Source::default()
                    },
                    "cri",
                    cri::path(pod, pod.containers[c]),
                    Box::new(cri::CriStream::new(Arc::clone(&t), p, c)),
                )
            }
            Spec::Vpc(s, e) => (
                Source::of_kind(Kind::VpcFlow),
                "vpcflow",
                vpc::path(&t, s),
                Box::new(vpc::VpcStream::new(Arc::clone(&t), s, e, &self.flows)),
            ),
        }
    }
}

impl Iterator for Gen {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        loop {
            if self.cur.is_none() {
                if self.next >= self.specs.len() {
                    return None;
                }
                let s = self.next;
                self.next += 1;
                self.cur = Some(self.open(s));
            }
            let (source, format, path, stream) = self.cur.as_mut()?;
            let mut data = Vec::with_capacity(CHUNK + 64 * 1024);
            let more = stream.fill(&mut data, CHUNK);
            let chunk = Chunk {
                source: source.clone(),
                format,
                path: path.clone(),
                data,
            };
            if !more {
                self.cur = None;
            }
            if !chunk.data.is_empty() {
                return Some(chunk);
            }
        }
    }
}

/// Streams the generated hour as chunks of about 2 MiB; the chunks of a file arrive together, in time order.
pub fn generate(cfg: &DemoConfig) -> impl Iterator<Item = Chunk> {
    let topo = Arc::new(Topo::new(cfg));
    let plan = attack::plan(&topo);
    let mut specs = vec![Spec::Audit];
    for n in 0..topo.nodes.len() {
        specs.push(Spec::Node(n, node::NodeFile::Messages));
        specs.push(Spec::Node(n, node::NodeFile::Secure));
    }
    for (i, p) in topo.pods.iter().enumerate() {
        for c in 0..p.containers.len() {
            specs.push(Spec::Pod(i, c));
        }
    }
    for (s, e) in vpc::files(&topo) {
        specs.push(Spec::Vpc(s, e));
    }
    Gen {
        topo,
        specs,
        next: 0,
        cur: None,
        audit: plan.audit,
        secure: plan.secure,
        flows: Arc::new(plan.flows),
    }
}

/// The facts of the attack in the data [`generate`] makes for `cfg`.
pub fn attack(cfg: &DemoConfig) -> Attack {
    attack::plan(&Topo::new(cfg)).facts
}

/// Writes the generated hour as files under `dir` (replacing files of the same names) and counts them.
pub fn write_tree(cfg: &DemoConfig, dir: &Path) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut current: Option<(String, File)> = None;
    for chunk in generate(cfg) {
        let same = matches!(&current, Some((p, _)) if *p == chunk.path);
        if !same {
            if let Some((_, mut f)) = current.take() {
                f.flush()?;
            }
            let full = dir.join(&chunk.path);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent)?;
            }
            let first = seen.insert(chunk.path.clone());
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .append(!first)
                .truncate(first)
                .open(&full)?;
            current = Some((chunk.path.clone(), f));
        }
        if let Some((_, f)) = current.as_mut() {
            f.write_all(&chunk.data)?;
        }
        summary.add(&chunk);
    }
    if let Some((_, mut f)) = current.take() {
        f.flush()?;
    }
    Ok(summary)
}
