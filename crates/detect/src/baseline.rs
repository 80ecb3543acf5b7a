//! Behaviour baselines: what each identity of a cluster normally does, learned from the Kubernetes audit
//! log, and an alert the first time something new happens (in the spirit of Amazon GuardDuty's EKS
//! `AnomalousBehavior` findings).
//!
//! Five behaviours are learned, each as a set of keys:
//!
//! | behaviour | key | alert rule | level |
//! |---|---|---|---|
//! | exec / attach into pods | user, namespace | `quarry-baseline-first-exec-in-namespace` | medium |
//! | secrets access (any verb) | user | `quarry-baseline-first-secrets-access` | medium |
//! | container images of new pods | namespace, image repository | `quarry-baseline-new-image-in-namespace` | low |
//! | source address | user, `sourceIPs.0` | `quarry-baseline-new-source-ip` | low |
//! | API actions | user, verb, resource[/subresource] | `quarry-baseline-new-user-verb-resource` | low |
//!
//! **Learning.** The baseline starts with the first audit request it counts and learns quietly for a
//! window (seven days by default) measured in *event* time, by the latest event time seen: replaying a
//! month of old logs learns from its first week and reports in the rest. (An event dated more than a day
//! ahead of the wall clock is learned but does not move that clock, so one bad timestamp cannot end the
//! window.) After the window a key not seen before raises one alert and is learned, so it never alerts
//! again. The start, the clock and the keys survive restarts (file [`STATE_FILE`] in the alert
//! directory, written atomically); a restart neither learns again nor reports again. A file that cannot
//! be read is moved aside to `baselines.bin.corrupt`, reported with a warning and counted, and learning
//! starts again.
//!
//! **What counts.** Only requests that were let through: stage `RequestReceived` (not yet decided) and
//! `Panic` are skipped, as are responses with `responseStatus.code` of 400 or more and requests whose
//! authorization decision is `forbid`. A long-running request (exec, attach, watch) is seen at
//! `ResponseStarted` and again at `ResponseComplete`; the first sighting learns or reports the key, the
//! second finds it known, so one request never alerts twice and an exec is reported when it starts, not
//! when the session ends.
//!
//! **Identities.** Everyone is learned, system identities included. Two normalisations keep a cluster's
//! own churn from alerting: every kubelet (`system:node:<name>`) is learned as one identity
//! `system:node:*`, so a new node from the autoscaler does not look like a new user; and an identity of
//! the cluster itself (`system:*`, `eks:*`, service accounts among them) calling from a private,
//! loopback or link-local address is learned as coming from "a private address" rather than from each
//! pod IP (pods get new IPs on every reschedule). The same identity from a public address is reported.
//! What to expect after learning: a new human user, service account or CRD brings a few low alerts
//! (its first source address, each new verb on each resource); a new image *repository* in a namespace
//! is reported, a new tag or digest of a known one is not.
//!
//! **Bounds.** Keys are kept as 64-bit SipHash-1-3 hashes (keyed with a random secret stored with the
//! baseline, so a chosen image name cannot be made to collide with a learned one), 10 to 20 bytes each
//! in memory and 8 on disk. Each behaviour holds at most a fifth of [`BaselineConfig::max_keys`]; once a
//! behaviour is full, new keys are neither learned nor reported: they are counted
//! ([`BaselineStatus::full_drops`]) and logged once as a warning.

use crate::alerts::Candidate;
use crate::detector::Level;
use crate::live::{event_hash, DEFAULT_SUPPRESS_NS};
use quarry_model::{Event, Kind, Source, Value};
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Default learning window: seven days.
pub const DEFAULT_LEARN_NS: i64 = 7 * 86_400 * 1_000_000_000;

/// Default bound on the keys of all behaviours together.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// Name of the baseline file in the alert directory.
pub const STATE_FILE: &str = "baselines.bin";

/// Events dated further than this ahead of the wall clock do not move the baseline's clock (one bad
/// timestamp must not end the learning window for everyone).
const MAX_FUTURE_NS: i64 = 86_400 * 1_000_000_000;

/// Readable keys kept per behaviour in the state file (to see what was learned).
const SAMPLES: usize = 32;

/// First bytes of the state file (the digit is the format version).
const MAGIC: &[u8; 8] = b"QRYBASE1";

/// Fixed key of the state file's checksum.
const CHECKSUM_KEY: (u64, u64) = (0x7175_6172_7279_6261, 0x7365_6c69_6e65_7331);

/// Settings of the behaviour baselines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineConfig {
    /// Learn and report at all.
    pub enabled: bool,
    /// Learning window in event time from the first audit event seen (ns); 0 reports from the start.
    pub learn_ns: i64,
    /// Most keys kept, all behaviours together (each behaviour gets a fifth).
    pub max_keys: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            enabled: true,
            learn_ns: DEFAULT_LEARN_NS,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// A behaviour that is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Exec or attach into pods of a namespace, per user.
    ExecInNamespace,
    /// Any access to secrets, per user.
    SecretsAccess,
    /// Container image repositories of pods created in a namespace.
    ImageInNamespace,
    /// Source addresses of a user.
    SourceIp,
    /// Verb and resource combinations of a user.
    VerbResource,
}

impl Behaviour {
    /// Every behaviour, in the order of the state file.
    pub const ALL: [Behaviour; 5] = [
        Behaviour::ExecInNamespace,
        Behaviour::SecretsAccess,
        Behaviour::ImageInNamespace,
        Behaviour::SourceIp,
        Behaviour::VerbResource,
    ];

    /// Short name (in the state file and status).
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::ExecInNamespace => "exec-in-namespace",
            Behaviour::SecretsAccess => "secrets-access",
            Behaviour::ImageInNamespace => "image-in-namespace",
            Behaviour::SourceIp => "source-ip",
            Behaviour::VerbResource => "verb-resource",
        }
    }

    /// Rule id of its alerts.
    pub fn rule_id(self) -> &'static str {
        match self {
            Behaviour::ExecInNamespace => "quarry-baseline-first-exec-in-namespace",
            Behaviour::SecretsAccess => "quarry-baseline-first-secrets-access",
            Behaviour::ImageInNamespace => "quarry-baseline-new-image-in-namespace",
            Behaviour::SourceIp => "quarry-baseline-new-source-ip",
            Behaviour::VerbResource => "quarry-baseline-new-user-verb-resource",
        }
    }

    /// Title of its alerts.
    pub fn title(self) -> &'static str {
        match self {
            Behaviour::ExecInNamespace => {
                "User ran exec/attach in pods of a namespace for the first time"
            }
            Behaviour::SecretsAccess => "User accessed secrets for the first time",
            Behaviour::ImageInNamespace => "New container image repository in a namespace",
            Behaviour::SourceIp => "User called the API from a new source address",
            Behaviour::VerbResource => "User performed an API action never seen from them",
        }
    }

    /// Severity of its alerts.
    pub fn level(self) -> Level {
        match self {
            Behaviour::ExecInNamespace | Behaviour::SecretsAccess => Level::Medium,
            _ => Level::Low,
        }
    }

    /// MITRE ATT&CK tags of an alert (`verb` refines the API-action behaviour).
    fn tags(self, verb: &str) -> Vec<String> {
        let tags: &[&str] = match self {
            Behaviour::ExecInNamespace => &["attack.execution", "attack.t1609"],
            Behaviour::SecretsAccess => &["attack.credential-access", "attack.t1552.007"],
            Behaviour::ImageInNamespace => {
                &["attack.execution", "attack.defense-evasion", "attack.t1610"]
            }
            Behaviour::SourceIp => &["attack.initial-access", "attack.t1078"],
            Behaviour::VerbResource => match verb {
                "get" | "list" | "watch" => &["attack.discovery", "attack.t1613"],
                _ => &["attack.t1078"],
            },
        };
        tags.iter().map(|t| t.to_string()).collect()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where the baselines stand (for `quarry demo`, the metrics and the API).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineStatus {
    /// Baselines are on.
    pub enabled: bool,
    /// Still learning: nothing is reported yet.
    pub learning: bool,
    /// Event time of the first audit event learned (UTC ns); `None` before any.
    pub started_ns: Option<i64>,
    /// Event time at which learning ends (UTC ns); `None` before the first event.
    pub learning_until_ns: Option<i64>,
    /// Latest event time seen (UTC ns): the baseline's clock.
    pub clock_ns: Option<i64>,
    /// Keys held, all behaviours.
    pub keys: u64,
    /// Bound on `keys`.
    pub max_keys: u64,
    /// New keys reported as alerts since start.
    pub reported: u64,
    /// New keys neither learned nor reported because their behaviour was full, since start.
    pub full_drops: u64,
    /// State files found unreadable at start (learning started again).
    pub corrupt_state: u64,
    /// Events dated more than a day ahead of the wall clock (learned, but did not move the clock).
    pub future_events: u64,
    /// The same per behaviour.
    pub behaviours: Vec<BehaviourStatus>,
}

impl BaselineStatus {
    /// The status of baselines that are switched off.
    pub fn disabled() -> BaselineStatus {
        BaselineStatus {
            enabled: false,
            learning: false,
            started_ns: None,
            learning_until_ns: None,
            clock_ns: None,
            keys: 0,
            max_keys: 0,
            reported: 0,
            full_drops: 0,
            corrupt_state: 0,
            future_events: 0,
            behaviours: Vec::new(),
        }
    }
}

/// Figures of one behaviour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviourStatus {
    /// Which.
    pub behaviour: Behaviour,
    /// Rule id of its alerts.
    pub rule_id: &'static str,
    /// Keys held.
    pub keys: u64,
    /// Bound on `keys`.
    pub max_keys: u64,
    /// New keys reported since start.
    pub reported: u64,
    /// New keys dropped because the behaviour was full, since start.
    pub full_drops: u64,
}

/// What one [`Baselines::observe`] call did.
#[derive(Debug, Default)]
pub struct Tally {
    /// The keys reported (the candidates pushed); give them to [`Baselines::forget`] if the alerts could
    /// not be recorded, so that a retried batch reports them again.
    pub reported: Vec<(Behaviour, u64)>,
    /// Keys held after the call, all behaviours.
    pub keys: u64,
    /// New keys dropped because their behaviour was full, since start.
    pub full_drops: u64,
}

/// SipHash-c-d (Aumasson and Bernstein, 2012) of `data` under `key`: a keyed hash whose output cannot be
/// steered without the key. Written out here (not `std`'s hasher) because hashes are kept on disk and
/// must never change. Keys use SipHash-1-3 (as Rust's hash tables), the state file's checksum too.
fn siphash<const C: usize, const D: usize>(key: (u64, u64), data: &[u8]) -> u64 {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        sip_compress::<C>(&mut v, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let rest = words.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    // The last word carries the length (mod 256) in its top byte.
    sip_compress::<C>(
        &mut v,
        u64::from_le_bytes(last) | ((data.len() as u64) << 56),
    );
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn sip_compress<const C: usize>(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    for _ in 0..C {
        sip_round(v);
    }
    v[0] ^= m;
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// The hash of a key: its behaviour and parts, each part ended by 0xff (which never occurs in UTF-8, so
/// parts cannot run into each other). `buf` is scratch space.
fn key_hash(seed: (u64, u64), buf: &mut Vec<u8>, b: Behaviour, parts: &[&str]) -> u64 {
    buf.clear();
    buf.push(b as u8);
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
        buf.push(0xff);
    }
    siphash::<1, 3>(seed, buf)
}

/// Keys of a batch found by [`Baselines::scan`], waiting for [`Baselines::commit`].
#[derive(Debug, Default)]
pub struct Pending {
    found: Vec<Found>,
    /// Scratch space for building keys.
    buf: Vec<u8>,
}

/// A key found in an event, before the lock.
#[derive(Debug, Clone, Copy)]
struct Found {
    event: u32,
    behaviour: Behaviour,
    hash: u64,
    /// For images: the index of the image field.
    field: u32,
}

#[derive(Default)]
struct State {
    start: Option<i64>,
    clock: i64,
    sets: [FxHashSet<u64>; 5],
    samples: [Vec<String>; 5],
    reported: [u64; 5],
    full_drops: [u64; 5],
    warned_full: [bool; 5],
    future_events: u64,
    dirty: bool,
}

impl State {
    fn learning(&self, learn_ns: i64) -> bool {
        self.start
            .is_none_or(|s| self.clock < s.saturating_add(learn_ns))
    }

    fn keys(&self) -> u64 {
        self.sets.iter().map(|s| s.len() as u64).sum()
    }
}

/// The behaviour baselines of a server (see the module documentation).
pub struct Baselines {
    cfg: BaselineConfig,
    path: Option<PathBuf>,
    /// Secret key of the key hashes (kept in the state file).
    seed: (u64, u64),
    state: Mutex<State>,
    /// Held while saving, so two saves never write the same temporary file.
    saving: Mutex<()>,
    corrupt_state: u64,
}

impl std::fmt::Debug for Baselines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baselines")
            .field("cfg", &self.cfg)
            .field("path", &self.path)
            .finish()
    }
}

impl Baselines {
    /// Empty baselines kept in memory only.
    pub fn new(cfg: BaselineConfig) -> Baselines {
        Baselines {
            cfg,
            path: None,
            seed: random_seed(),
            state: Mutex::new(State::default()),
            saving: Mutex::new(()),
            corrupt_state: 0,
        }
    }

    /// Baselines kept in `path`, read back when the file exists. A file that cannot be read is moved
    /// aside (to `<path>.corrupt`), reported with a warning and counted, and learning starts again.
    pub fn open(cfg: BaselineConfig, path: &Path) -> Baselines {
        let mut b = Baselines::new(cfg);
        b.path = Some(path.to_path_buf());
        match std::fs::read(path) {
            Ok(bytes) => match decode(&bytes) {
                Ok((seed, state)) => {
                    b.seed = seed;
                    b.state = Mutex::new(state);
                }
                Err(reason) => {
                    let aside = path.with_extension("bin.corrupt");
                    tracing::warn!(
                        file = %path.display(),
                        reason,
                        moved_to = %aside.display(),
                        "behaviour baselines cannot be read; learning starts again"
                    );
                    if let Err(e) = std::fs::rename(path, &aside) {
                        tracing::warn!(file = %path.display(), error = %e, "cannot move the unreadable baselines aside");
                    }
                    b.corrupt_state = 1;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "behaviour baselines cannot be read; learning starts again");
                b.corrupt_state = 1;
            }
        }
        b
    }

    /// The settings.
    pub fn config(&self) -> &BaselineConfig {
        &self.cfg
    }

    fn per_behaviour_cap(&self) -> usize {
        self.cfg.max_keys / Behaviour::ALL.len()
    }

    /// Learns the keys of a batch and pushes an alert candidate to `out` for each new key seen after the
    /// learning window. Only Kubernetes audit sources are read. The same as [`Baselines::scan`] on each
    /// event, then [`Baselines::commit`].
    pub fn observe(&self, source: &Source, events: &[Event], out: &mut Vec<Candidate>) -> Tally {
        let mut pending = Pending::default();
        for (i, ev) in events.iter().enumerate() {
            self.scan(source, i, ev, &mut pending);
        }
        self.commit(source, events, pending, out)
    }

    /// Finds the keys of `ev`, the `index`th event of a batch, without taking the lock (ingest threads
    /// hash side by side; call it while the event is still in the cache, next to the rules).
    pub fn scan(&self, source: &Source, index: usize, ev: &Event, pending: &mut Pending) {
        if self.cfg.enabled && source.kind == Kind::Audit {
            let Pending { found, buf } = pending;
            self.keys_of(index as u32, ev, buf, found);
        }
    }

    /// Learns the keys [`Baselines::scan`] found in `events` and pushes an alert candidate to `out` for
    /// each new one seen after the learning window.
    pub fn commit(
        &self,
        source: &Source,
        events: &[Event],
        pending: Pending,
        out: &mut Vec<Candidate>,
    ) -> Tally {
        let found = pending.found;
        if found.is_empty() {
            return Tally::default();
        }
        let future_limit = quarry_model::time::now_nanos().saturating_add(MAX_FUTURE_NS);
        let cap = self.per_behaviour_cap();
        let mut reported = Vec::new();
        let (keys, full_drops) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let was_learning = st.learning(self.cfg.learn_ns);
            let mut last_event = u32::MAX;
            for f in &found {
                let Some(ev) = events.get(f.event as usize) else {
                    continue; // not the batch that was scanned
                };
                if f.event != last_event {
                    last_event = f.event;
                    if ev.ts > future_limit {
                        st.future_events += 1;
                    } else {
                        if st.start.is_none() {
                            st.start = Some(ev.ts);
                            st.clock = ev.ts;
                            st.dirty = true;
                        }
                        if ev.ts > st.clock {
                            st.clock = ev.ts;
                            st.dirty = true;
                        }
                    }
                }
                let b = f.behaviour.index();
                if st.sets[b].contains(&f.hash) {
                    continue;
                }
                if st.sets[b].len() >= cap {
                    st.full_drops[b] += 1;
                    if !st.warned_full[b] {
                        st.warned_full[b] = true;
                        tracing::warn!(
                            behaviour = f.behaviour.name(),
                            keys = st.sets[b].len(),
                            "behaviour baseline full: new keys are no longer learned nor reported (raise the key bound)"
                        );
                    }
                    continue;
                }
                st.sets[b].insert(f.hash);
                st.dirty = true;
                if st.samples[b].len() < SAMPLES {
                    let view = AuditView::read(ev);
                    let sample = describe(f.behaviour, &view, ev, f.field, true);
                    st.samples[b].push(sample);
                }
                if !st.learning(self.cfg.learn_ns) {
                    st.reported[b] += 1;
                    reported.push(*f);
                }
            }
            if was_learning && !st.learning(self.cfg.learn_ns) {
                tracing::info!(
                    keys = st.keys(),
                    "behaviour baselines learned; new behaviour is reported from now on"
                );
            }
            (st.keys(), st.full_drops.iter().sum())
        };
        for f in &reported {
            out.push(candidate(
                f.behaviour,
                source,
                &events[f.event as usize],
                f.field,
            ));
        }
        Tally {
            reported: reported.iter().map(|f| (f.behaviour, f.hash)).collect(),
            keys,
            full_drops,
        }
    }

    /// Unlearns keys that were reported but whose alerts could not be recorded.
    pub fn forget(&self, keys: &[(Behaviour, u64)]) {
        if keys.is_empty() {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (b, h) in keys {
            if st.sets[b.index()].remove(h) {
                st.reported[b.index()] = st.reported[b.index()].saturating_sub(1);
                st.dirty = true;
            }
        }
    }

    /// The keys of one event.
    fn keys_of(&self, event: u32, ev: &Event, buf: &mut Vec<u8>, out: &mut Vec<Found>) {
        let v = AuditView::read(ev);
        if !v.counts() {
            return;
        }
        let mut push = |behaviour, parts: &[&str], field| {
            out.push(Found {
                event,
                behaviour,
                hash: key_hash(self.seed, buf, behaviour, parts),
                field,
            })
        };
        if let Some(raw_user) = v.user {
            let user = normal_user(raw_user);
            if let Some(ip) = v.ip {
                push(Behaviour::SourceIp, &[user, ip_key(raw_user, ip)], 0);
            }
            if let (Some(verb), Some(resource)) = (v.verb, v.resource) {
                let sub = v.subresource.unwrap_or("");
                push(Behaviour::VerbResource, &[user, verb, resource, sub], 0);
                if v.is_exec() {
                    let ns = v.namespace.unwrap_or("");
                    push(Behaviour::ExecInNamespace, &[user, ns], 0);
                }
                if resource == "secrets" {
                    push(Behaviour::SecretsAccess, &[user], 0);
                }
            }
        }
        if v.creates_containers() {
            let ns = v.namespace.unwrap_or("");
            for (i, (path, value)) in ev.fields.as_slice().iter().enumerate() {
                let Some(image) = value.as_str().filter(|s| !s.is_empty()) else {
                    continue;
                };
                if is_image_path(path) {
                    push(
                        Behaviour::ImageInNamespace,
                        &[ns, repository(image)],
                        i as u32,
                    );
                }
            }
        }
    }

    /// Writes the baselines to their file (atomically) if they changed since the last save. Returns
    /// whether it wrote.
    pub fn save(&self) -> std::io::Result<bool> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let _saving = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !st.dirty {
                return Ok(false);
            }
            st.dirty = false;
            encode(self.seed, &st)
        };
        if let Err(e) = quarry_store::write_atomic(path, &bytes) {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).dirty = true;
            return Err(e);
        }
        Ok(true)
    }

    /// Where the baselines stand.
    pub fn status(&self) -> BaselineStatus {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cap = self.per_behaviour_cap() as u64;
        BaselineStatus {
            enabled: self.cfg.enabled,
            learning: st.learning(self.cfg.learn_ns),
            started_ns: st.start,
            learning_until_ns: st.start.map(|s| s.saturating_add(self.cfg.learn_ns)),
            clock_ns: st.start.map(|_| st.clock),
            keys: st.keys(),
            max_keys: cap * Behaviour::ALL.len() as u64,
            reported: st.reported.iter().sum(),
            full_drops: st.full_drops.iter().sum(),
            corrupt_state: self.corrupt_state,
            future_events: st.future_events,
            behaviours: Behaviour::ALL
                .iter()
                .map(|&b| BehaviourStatus {
                    behaviour: b,
                    rule_id: b.rule_id(),
                    keys: st.sets[b.index()].len() as u64,
                    max_keys: cap,
                    reported: st.reported[b.index()],
                    full_drops: st.full_drops[b.index()],
                })
                .collect(),
        }
    }
}

/// The audit fields baselines read, found in one pass over the event.
#[derive(Debug, Default)]
struct AuditView<'a> {
    stage: Option<&'a str>,
    code: Option<i64>,
    decision: Option<&'a str>,
    user: Option<&'a str>,
    verb: Option<&'a str>,
    resource: Option<&'a str>,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    ip: Option<&'a str>,
}

impl<'a> AuditView<'a> {
    fn read(ev: &'a Event) -> AuditView<'a> {
        let mut v = AuditView::default();
        for (path, value) in ev.fields.as_slice() {
            let s = || value.as_str().filter(|s| !s.is_empty());
            match path.as_str() {
                "stage" => v.stage = s(),
                "responseStatus.code" => v.code = status_code(value),
                "annotations.authorization.k8s.io/decision" => v.decision = s(),
                "user.username" => v.user = s(),
                "verb" => v.verb = s(),
                "objectRef.resource" => v.resource = s(),
                "objectRef.subresource" => v.subresource = s(),
                "objectRef.namespace" => v.namespace = s(),
                "sourceIPs.0" => v.ip = s(),
                _ => {}
            }
        }
        v
    }

    /// The request was let through and this is the stage that tells (see the module documentation).
    fn counts(&self) -> bool {
        !matches!(self.stage, Some("RequestReceived" | "Panic"))
            && self.code.is_none_or(|c| c < 400)
            && self.decision != Some("forbid")
    }

    fn is_exec(&self) -> bool {
        self.resource == Some("pods")
            && matches!(self.subresource, Some("exec" | "attach"))
            && matches!(self.verb, Some("create" | "get"))
    }

    /// A pod create, or ephemeral containers added to a pod (`kubectl debug`).
    fn creates_containers(&self) -> bool {
        self.resource == Some("pods")
            && match self.subresource {
                None => self.verb == Some("create"),
                Some(s) => s == "ephemeralcontainers",
            }
    }
}

fn status_code(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) => Some(*f as i64),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `requestObject.spec.{containers,initContainers,ephemeralContainers}.N.image` (and GKE's
/// `protoPayload.request.spec...`).
fn is_image_path(path: &str) -> bool {
    let Some(rest) = path
        .strip_prefix("requestObject.spec.")
        .or_else(|| path.strip_prefix("protoPayload.request.spec."))
    else {
        return false;
    };
    let Some((list, index)) = rest.strip_suffix(".image").and_then(|r| r.split_once('.')) else {
        return false;
    };
    matches!(
        list,
        "containers" | "initContainers" | "ephemeralContainers"
    ) && !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit())
}

/// An image without its tag and digest: `registry:5000/team/app:1.2@sha256:...` is
/// `registry:5000/team/app`.
fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

/// Kubelets are learned as one identity.
fn normal_user(user: &str) -> &str {
    if user.starts_with("system:node:") {
        "system:node:*"
    } else {
        user
    }
}

/// The address part of a source key: the cluster's own identities calling from private addresses are
/// one key.
fn ip_key<'a>(user: &str, ip: &'a str) -> &'a str {
    let own = user.starts_with("system:") || user.starts_with("eks:");
    if own && is_private(ip) {
        "private"
    } else {
        ip
    }
}

/// A private, loopback, link-local or shared (100.64/10) address.
fn is_private(ip: &str) -> bool {
    use std::net::IpAddr;
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64)
        }
        Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => is_private(&v4.to_string()),
            None => a.is_loopback() || a.is_unique_local() || a.is_unicast_link_local(),
        },
        Err(_) => false,
    }
}

/// A key in words: as learned (`key_form`: normalised user, image repository, address class) or as seen
/// (the alert's entity).
fn describe(b: Behaviour, v: &AuditView<'_>, ev: &Event, field: u32, key_form: bool) -> String {
    let raw_user = v.user.unwrap_or("");
    let user = if key_form {
        normal_user(raw_user)
    } else {
        raw_user
    };
    let ns = v.namespace.unwrap_or("");
    match b {
        Behaviour::ExecInNamespace => format!("{user},{ns}"),
        Behaviour::SecretsAccess => user.to_string(),
        Behaviour::ImageInNamespace => {
            let image = ev
                .fields
                .as_slice()
                .get(field as usize)
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("");
            let image = if key_form { repository(image) } else { image };
            format!("{ns},{image}")
        }
        Behaviour::SourceIp => {
            let ip = v.ip.unwrap_or("");
            let ip = if key_form { ip_key(raw_user, ip) } else { ip };
            format!("{user},{ip}")
        }
        Behaviour::VerbResource => {
            let verb = v.verb.unwrap_or("");
            let resource = v.resource.unwrap_or("");
            match v.subresource {
                Some(sub) => format!("{user},{verb},{resource}/{sub}"),
                None => format!("{user},{verb},{resource}"),
            }
        }
    }
}

/// A new key as an alert candidate.
fn candidate(b: Behaviour, source: &Source, ev: &Event, field: u32) -> Candidate {
    let v = AuditView::read(ev);
    let entity = describe(b, &v, ev, field, false);
    Candidate {
        rule_id: b.rule_id().to_string(),
        title: b.title().to_string(),
        level: b.level(),
        tags: b.tags(v.verb.unwrap_or("")),
        dedup_key: format!("{}|{entity}", b.rule_id()),
        namespace: v.namespace.map(str::to_string),
        namespaces: crate::live::namespaces_of(source, ev),
        ts: ev.ts,
        event: crate::evidence(source, ev),
        event_hash: event_hash(source, ev),
        suppress_ns: DEFAULT_SUPPRESS_NS,
    }
}

/// A fresh secret for the key hashes.
fn random_seed() -> (u64, u64) {
    use std::hash::BuildHasher;
    // RandomState is seeded from the operating system's random source.
    let s = std::collections::hash_map::RandomState::new();
    let now = quarry_model::time::now_nanos();
    (
        s.hash_one((0u8, now, std::process::id())),
        s.hash_one((1u8, now, std::process::id())),
    )
}

/// The state file's header (JSON, readable with `head`).
#[derive(Serialize, Deserialize)]
struct Header {
    k0: u64,
    k1: u64,
    start_ns: Option<i64>,
    clock_ns: i64,
    behaviours: Vec<HeaderBehaviour>,
}

#[derive(Serialize, Deserialize)]
struct HeaderBehaviour {
    name: String,
    keys: u64,
    #[serde(default)]
    samples: Vec<String>,
}

/// The state file: magic, header length (u32 LE), JSON header, each behaviour's key hashes (u64 LE, in
/// header order), then a SipHash checksum (u64 LE) of everything before it.
fn encode(seed: (u64, u64), st: &State) -> Vec<u8> {
    let header = Header {
        k0: seed.0,
        k1: seed.1,
        start_ns: st.start,
        clock_ns: st.clock,
        behaviours: Behaviour::ALL
            .iter()
            .map(|b| HeaderBehaviour {
                name: b.name().to_string(),
                keys: st.sets[b.index()].len() as u64,
                samples: st.samples[b.index()].clone(),
            })
            .collect(),
    };
    let header = serde_json::to_vec(&header).expect("the header serializes");
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + st.keys() as usize * 8 + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for set in &st.sets {
        for h in set {
            out.extend_from_slice(&h.to_le_bytes());
        }
    }
    let sum = siphash::<1, 3>(CHECKSUM_KEY, &out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads a state file back; the error says what is wrong with it.
fn decode(bytes: &[u8]) -> Result<((u64, u64), State), String> {
    let body_len = bytes
        .len()
        .checked_sub(8)
        .filter(|&n| n >= MAGIC.len() + 4)
        .ok_or("too short")?;
    let (body, sum) = bytes.split_at(body_len);
    if siphash::<1, 3>(CHECKSUM_KEY, body).to_le_bytes() != sum {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    if &body[..MAGIC.len()] != MAGIC {
        return Err("not a Quarry baseline file of this version".into());
    }
    let rest = &body[MAGIC.len()..];
    let header_len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let rest = &rest[4..];
    if header_len > rest.len() {
        return Err("header longer than the file".into());
    }
    let (header, mut hashes) = rest.split_at(header_len);
    let header: Header = serde_json::from_slice(header).map_err(|e| format!("bad header: {e}"))?;
    let mut st = State {
        start: header.start_ns,
        clock: header.clock_ns,
        ..State::default()
    };
    for hb in header.behaviours {
        let n = usize::try_from(hb.keys)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .filter(|&n| n <= hashes.len())
            .ok_or_else(|| format!("{}: more keys than the file holds", hb.name))?;
        let (mine, next) = hashes.split_at(n);
        hashes = next;
        // Behaviours this version does not know are skipped.
        let Some(b) = Behaviour::ALL.iter().find(|b| b.name() == hb.name) else {
            continue;
        };
        let set = &mut st.sets[b.index()];
        set.reserve(mine.len() / 8);
        for c in mine.chunks_exact(8) {
            set.insert(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        st.samples[b.index()] = hb.samples;
    }
    if !hashes.is_empty() {
        return Err("bytes left after the keys".into());
    }
    Ok(((header.k0, header.k1), st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    const DAY: i64 = 86_400 * 1_000_000_000;
    const T0: i64 = 1_700_000_000 * 1_000_000_000;

    fn event(ts: i64, json: serde_json::Value) -> Event {
        let mut e = Event::text(ts, json.to_string());
        quarry_model::flatten_json("", &json, &mut e.fields);
        e
    }

    /// An allowed request of `user` from `ip`: `verb` on `resource` (`pods/exec` style for a
    /// subresource) in `ns`.
    fn req(ts: i64, user: &str, ip: &str, verb: &str, resource: &str, ns: &str) -> Event {
        let (res, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let mut obj = serde_json::json!({"resource": res, "namespace": ns, "apiVersion": "v1"});
        if !sub.is_empty() {
            obj["subresource"] = sub.into();
        }
        event(
            ts,
            serde_json::json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
                "verb": verb, "user": {"username": user}, "sourceIPs": [ip], "objectRef": obj,
                "responseStatus": {"code": 200},
                "annotations": {"authorization.k8s.io/decision": "allow"}}),
        )
    }

    /// `e` with the member at `path` (object keys) set to `v`.
    fn with(e: Event, path: &[&str], v: impl Into<serde_json::Value>) -> Event {
        let mut json: serde_json::Value = serde_json::from_str(&e.raw).unwrap();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut json;
        for p in parents {
            at = &mut at[*p];
        }
        at[*last] = v.into();
        event(e.ts, json)
    }

    /// `e` without its top-level member `key`.
    fn without(e: Event, key: &str) -> Event {
        let mut json: serde_json::Value = serde_json::from_str(&e.raw).unwrap();
        json.as_object_mut().unwrap().remove(key);
        event(e.ts, json)
    }

    fn pod_create(ts: i64, ns: &str, images: &[&str]) -> Event {
        let containers: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(i, im)| serde_json::json!({"name": format!("c{i}"), "image": im}))
            .collect();
        event(
            ts,
            serde_json::json!({"stage": "ResponseComplete", "verb": "create",
                "user": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "sourceIPs": ["10.0.0.5"],
                "objectRef": {"resource": "pods", "namespace": ns},
                "requestObject": {"kind": "Pod", "spec": {"containers": containers,
                    "initContainers": [{"name": "init", "image": "busybox:1.36"}]}},
                "responseStatus": {"code": 201}}),
        )
    }

    fn audit() -> Source {
        Source::of_kind(Kind::Audit)
    }

    fn cfg(learn_days: i64) -> BaselineConfig {
        BaselineConfig {
            learn_ns: learn_days * DAY,
            ..BaselineConfig::default()
        }
    }

    /// Observes `events` and returns the reported `(rule id, entity)` pairs.
    fn run(b: &Baselines, events: &[Event]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        b.observe(&audit(), events, &mut out);
        out.into_iter()
            .map(|c| {
                let entity = c.dedup_key.split_once('|').unwrap().1.to_string();
                (c.rule_id, entity)
            })
            .collect()
    }

    fn ids(v: &[(String, String)]) -> Vec<&str> {
        let mut ids: Vec<&str> = v.iter().map(|(r, _)| r.as_str()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn quiet_while_learning_then_each_new_key_once() {
        let b = Baselines::new(cfg(7));
        let alice = |ts, verb, res: &str, ns| req(ts, "alice", "203.0.113.7", verb, res, ns);
        assert!(run(&b, &[alice(T0, "create", "pods/exec", "shop")]).is_empty());
        // Six days later, a new namespace: still learning.
        assert!(run(&b, &[alice(T0 + 6 * DAY, "create", "pods/exec", "web")]).is_empty());
        let s = b.status();
        assert!(s.learning);
        assert_eq!(s.started_ns, Some(T0));
        assert_eq!(s.learning_until_ns, Some(T0 + 7 * DAY));
        // After the window: known keys are quiet ...
        let after = T0 + 8 * DAY;
        assert!(run(&b, &[alice(after, "create", "pods/exec", "web")]).is_empty());
        assert!(!b.status().learning);
        // ... a new namespace for exec reports once (the verb/resource and address are known).
        let got = run(&b, &[alice(after + 1, "create", "pods/exec", "db")]);
        assert_eq!(
            got,
            vec![(
                "quarry-baseline-first-exec-in-namespace".to_string(),
                "alice,db".to_string()
            )]
        );
        assert!(run(&b, &[alice(after + 2, "create", "pods/exec", "db")]).is_empty());
        // Secrets: a new verb/resource and a first secrets access, from a new address too.
        let got = run(
            &b,
            &[req(
                after + 3,
                "alice",
                "198.51.100.1",
                "list",
                "secrets",
                "db",
            )],
        );
        assert_eq!(
            ids(&got),
            vec![
                "quarry-baseline-first-secrets-access",
                "quarry-baseline-new-source-ip",
                "quarry-baseline-new-user-verb-resource"
            ],
            "{got:?}"
        );
        assert!(got.contains(&(
            "quarry-baseline-new-user-verb-resource".into(),
            "alice,list,secrets".into()
        )));
        // Another verb on secrets is a new action, but not a first secrets access.
        let got = run(
            &b,
            &[req(
                after + 4,
                "alice",
                "198.51.100.1",
                "get",
                "secrets",
                "db",
            )],
        );
        assert_eq!(ids(&got), vec!["quarry-baseline-new-user-verb-resource"]);
        let s = b.status();
        assert_eq!(s.reported, 5);
        assert_eq!(s.keys, 9, "{s:#?}");
    }

    #[test]
    fn candidates_carry_level_tags_namespace_and_the_event() {
        let b = Baselines::new(cfg(0));
        let mut out = Vec::new();
        let ev = req(T0, "bob", "192.0.2.1", "create", "pods/exec", "prod");
        b.observe(&audit(), std::slice::from_ref(&ev), &mut out);
        let exec = out
            .iter()
            .find(|c| c.rule_id == "quarry-baseline-first-exec-in-namespace")
            .unwrap();
        assert_eq!(exec.level, Level::Medium);
        assert_eq!(exec.tags, vec!["attack.execution", "attack.t1609"]);
        assert_eq!(
            exec.dedup_key,
            "quarry-baseline-first-exec-in-namespace|bob,prod"
        );
        assert_eq!(exec.namespace.as_deref(), Some("prod"));
        assert_eq!(exec.ts, T0);
        assert_eq!(exec.event["user"]["username"], "bob");
        let ip = out
            .iter()
            .find(|c| c.rule_id == "quarry-baseline-new-source-ip")
            .unwrap();
        assert_eq!(ip.level, Level::Low);
        assert_eq!(ip.dedup_key, "quarry-baseline-new-source-ip|bob,192.0.2.1");
        // Not audit: nothing.
        let mut out = Vec::new();
        let t = b.observe(
            &Source::of_kind(Kind::Container),
            &[req(T0, "carol", "192.0.2.1", "get", "secrets", "prod")],
            &mut out,
        );
        assert!(out.is_empty() && t.reported.is_empty());
    }

    #[test]
    fn images_of_pod_creates_by_repository() {
        let b = Baselines::new(cfg(1));
        assert!(run(
            &b,
            &[pod_create(T0, "shop", &["nginx:1.25", "redis@sha256:ab"])]
        )
        .is_empty());
        let after = T0 + 2 * DAY;
        // A new tag of a known repository and the same init container: quiet.
        assert!(run(&b, &[pod_create(after, "shop", &["nginx:1.27"])]).is_empty());
        // A new repository, and a known one in a new namespace.
        let got = run(
            &b,
            &[pod_create(
                after + 1,
                "shop",
                &["nginx:1.27", "evil.example:5000/miner:latest"],
            )],
        );
        assert_eq!(
            got,
            vec![(
                "quarry-baseline-new-image-in-namespace".into(),
                "shop,evil.example:5000/miner:latest".into()
            )]
        );
        let got = run(&b, &[pod_create(after + 2, "web", &["nginx:1.27"])]);
        assert_eq!(
            got.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>(),
            vec!["web,nginx:1.27", "web,busybox:1.36"]
        );
        // kubectl debug: an ephemeral container added through the subresource.
        let debug = event(
            after + 3,
            serde_json::json!({"stage": "ResponseComplete", "verb": "patch",
                "user": {"username": "alice"}, "sourceIPs": ["198.51.100.1"],
                "objectRef": {"resource": "pods", "subresource": "ephemeralcontainers", "namespace": "shop"},
                "requestObject": {"spec": {"ephemeralContainers": [{"name": "debugger", "image": "nicolaka/netshoot"}]}},
                "responseStatus": {"code": 200}}),
        );
        let got = run(&b, &[debug]);
        assert!(got.contains(&(
            "quarry-baseline-new-image-in-namespace".into(),
            "shop,nicolaka/netshoot".into()
        )));
        // A pod update carrying the spec is not a new pod.
        let update = with(
            pod_create(after + 4, "shop", &["other/app"]),
            &["verb"],
            "update",
        );
        assert!(!ids(&run(&b, &[update])).contains(&"quarry-baseline-new-image-in-namespace"));
    }

    #[test]
    fn only_allowed_requests_are_learned() {
        let b = Baselines::new(cfg(1));
        let denied = |ts| {
            let e = with(
                req(ts, "eve", "203.0.113.9", "get", "secrets", "kube-system"),
                &["responseStatus", "code"],
                403,
            );
            with(
                e,
                &["annotations", "authorization.k8s.io/decision"],
                "forbid",
            )
        };
        let not_found = with(
            req(
                T0,
                "eve",
                "203.0.113.9",
                "create",
                "pods/exec",
                "kube-system",
            ),
            &["responseStatus", "code"],
            404,
        );
        // Denied while learning (someone else starts the window): not learned ...
        let ops = req(T0, "ops", "10.1.1.1", "get", "pods", "x");
        assert!(run(&b, &[ops, denied(T0), not_found]).is_empty());
        assert_eq!(b.status().keys, 2, "only ops' source and action");
        let after = T0 + 2 * DAY;
        assert!(run(&b, &[req(after, "ops", "10.1.1.1", "get", "pods", "x")]).is_empty());
        assert!(!b.status().learning);
        // ... denied again after the window: not reported (a failed request is no behaviour) ...
        assert!(run(&b, &[denied(after + 1)]).is_empty());
        // ... and the first allowed one is new.
        let ok = req(
            after + 2,
            "eve",
            "203.0.113.9",
            "get",
            "secrets",
            "kube-system",
        );
        assert!(ids(&run(&b, &[ok])).contains(&"quarry-baseline-first-secrets-access"));
        // A decision of forbid without a response code does not count either.
        let forbid = with(
            without(
                req(
                    after + 3,
                    "eve",
                    "203.0.113.9",
                    "delete",
                    "secrets",
                    "kube-system",
                ),
                "responseStatus",
            ),
            &["annotations", "authorization.k8s.io/decision"],
            "forbid",
        );
        assert!(run(&b, &[forbid]).is_empty());
    }

    #[test]
    fn stages_of_one_request_report_once_and_request_received_is_not_learned() {
        let b = Baselines::new(cfg(1));
        let exec = |ts, stage: &str, code: Option<i64>| {
            let e = req(ts, "dev", "192.0.2.50", "create", "pods/exec", "shop");
            let e = with(e, &["stage"], stage);
            match code {
                Some(c) => with(e, &["responseStatus", "code"], c),
                None => without(e, "responseStatus"),
            }
        };
        // RequestReceived while learning: nothing learned (it has no decision yet).
        let ops = req(T0, "ops", "10.1.1.1", "get", "pods", "x");
        assert!(run(&b, &[ops, exec(T0, "RequestReceived", None)]).is_empty());
        assert_eq!(b.status().keys, 2, "only ops' source and action");
        assert!(run(
            &b,
            &[req(T0 + 2 * DAY, "ops", "10.1.1.1", "get", "pods", "x")]
        )
        .is_empty());
        // After the window, the three stages of one exec: one alert per new key, at ResponseStarted.
        let t = T0 + 2 * DAY + 1;
        let mut out = Vec::new();
        b.observe(
            &audit(),
            &[
                exec(t, "RequestReceived", None),
                exec(t, "ResponseStarted", Some(101)),
                exec(t, "ResponseComplete", Some(101)),
            ],
            &mut out,
        );
        let mut got: Vec<(&str, &serde_json::Value)> = out
            .iter()
            .map(|c| (c.rule_id.as_str(), &c.event["stage"]))
            .collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got,
            vec![
                (
                    "quarry-baseline-first-exec-in-namespace",
                    &"ResponseStarted".into()
                ),
                ("quarry-baseline-new-source-ip", &"ResponseStarted".into()),
                (
                    "quarry-baseline-new-user-verb-resource",
                    &"ResponseStarted".into()
                ),
            ]
        );
        assert_eq!(b.status().reported, 3);
    }

    #[test]
    fn a_full_behaviour_counts_drops_and_stops_reporting() {
        let b = Baselines::new(BaselineConfig {
            max_keys: 5, // one key per behaviour
            ..cfg(1)
        });
        assert!(run(&b, &[req(T0, "a", "10.9.9.9", "get", "pods", "x")]).is_empty());
        assert!(run(&b, &[req(T0 + 1, "b", "10.9.9.9", "get", "pods", "x")]).is_empty());
        let s = b.status();
        assert_eq!(s.max_keys, 5);
        assert_eq!(s.keys, 2, "one source and one action learned: {s:#?}");
        assert_eq!(s.full_drops, 2, "b's source and action did not fit");
        // After the window the dropped keys are not reported either (nor remembered), only counted.
        let t = T0 + 2 * DAY;
        let got = run(&b, &[req(t, "b", "10.9.9.9", "get", "pods", "x")]);
        assert!(got.is_empty(), "{got:?}");
        // A behaviour with room still reports.
        let got = run(&b, &[req(t + 1, "a", "10.9.9.9", "get", "secrets", "x")]);
        assert_eq!(ids(&got), vec!["quarry-baseline-first-secrets-access"]);
        let s = b.status();
        assert_eq!(s.full_drops, 5, "{s:#?}");
        let verbs = &s.behaviours[Behaviour::VerbResource.index()];
        assert_eq!((verbs.keys, verbs.full_drops), (1, 3));
    }

    #[test]
    fn saved_and_read_back_without_learning_or_reporting_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let b = Baselines::open(cfg(1), &path);
        assert!(!b.save().unwrap(), "nothing to save yet");
        assert!(run(&b, &[req(T0, "alice", "203.0.113.7", "get", "pods", "a")]).is_empty());
        let t = T0 + 2 * DAY;
        let first = run(&b, &[req(t, "alice", "203.0.113.7", "list", "pods", "a")]);
        assert_eq!(ids(&first), vec!["quarry-baseline-new-user-verb-resource"]);
        assert!(b.save().unwrap());
        assert!(!b.save().unwrap(), "unchanged since");
        let before = b.status();
        drop(b);

        let b = Baselines::open(cfg(1), &path);
        let s = b.status();
        assert_eq!(s.corrupt_state, 0);
        assert!(!s.learning, "the learning window is not started again");
        assert_eq!(
            (s.started_ns, s.clock_ns, s.keys),
            (before.started_ns, before.clock_ns, before.keys)
        );
        // Known, and already reported: quiet. New: reported.
        assert!(run(
            &b,
            &[req(t + 1, "alice", "203.0.113.7", "list", "pods", "a")]
        )
        .is_empty());
        assert!(run(
            &b,
            &[req(t + 1, "alice", "203.0.113.7", "get", "pods", "a")]
        )
        .is_empty());
        let got = run(
            &b,
            &[req(t + 2, "alice", "203.0.113.7", "delete", "pods", "a")],
        );
        assert_eq!(ids(&got), vec!["quarry-baseline-new-user-verb-resource"]);
        // The file is readable in part: the header names what was learned.
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("alice,list,pods"), "{text}");
    }

    #[test]
    fn an_unreadable_state_file_is_moved_aside_and_learning_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        // A good file with one byte changed.
        let b = Baselines::open(cfg(1), &path);
        run(&b, &[req(T0, "alice", "203.0.113.7", "get", "pods", "a")]);
        b.save().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 12] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let b = Baselines::open(cfg(1), &path);
        let s = b.status();
        assert_eq!(s.corrupt_state, 1);
        assert_eq!((s.keys, s.started_ns), (0, None));
        assert!(s.learning);
        assert!(path.with_extension("bin.corrupt").exists());
        assert!(!path.exists());
        // It learns again (quietly) and saves a good file.
        assert!(run(
            &b,
            &[req(T0 + 5 * DAY, "x", "203.0.113.8", "get", "pods", "a")]
        )
        .is_empty());
        assert!(b.save().unwrap());
        assert_eq!(Baselines::open(cfg(1), &path).status().corrupt_state, 0);
        // Other damage: garbage, truncation, an empty file.
        for bad in [
            b"not a baseline at all".to_vec(),
            std::fs::read(&path).unwrap()[..40].to_vec(),
            Vec::new(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let b = Baselines::open(cfg(1), &path);
            assert_eq!(b.status().corrupt_state, 1);
            assert_eq!(b.status().keys, 0);
        }
    }

    #[test]
    fn decode_rejects_inconsistent_files_with_a_reason() {
        let mut st = State::default();
        st.sets[0].insert(7);
        let good = encode((1, 2), &st);
        assert!(decode(&good).is_ok());
        // A header that claims more keys than there are, with a valid checksum.
        let header = br#"{"k0":1,"k1":2,"start_ns":null,"clock_ns":0,"behaviours":[{"name":"exec-in-namespace","keys":9}]}"#;
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&(header.len() as u32).to_le_bytes());
        body.extend_from_slice(header);
        body.extend_from_slice(&7u64.to_le_bytes());
        let sum = siphash::<1, 3>(CHECKSUM_KEY, &body);
        body.extend_from_slice(&sum.to_le_bytes());
        let err = decode(&body).map(|_| ()).unwrap_err();
        assert!(err.contains("more keys than the file holds"), "{err}");
    }

    #[test]
    fn future_dated_events_do_not_end_learning() {
        let b = Baselines::new(cfg(7));
        let now = quarry_model::time::now_nanos();
        assert!(run(&b, &[req(now, "a", "10.0.0.1", "get", "pods", "x")]).is_empty());
        assert!(run(
            &b,
            &[req(now + 365 * DAY, "b", "10.0.0.1", "get", "pods", "x")]
        )
        .is_empty());
        let s = b.status();
        assert!(s.learning);
        assert_eq!(s.future_events, 1);
        assert_eq!(s.clock_ns, Some(now));
    }

    #[test]
    fn forget_lets_a_retried_batch_report_again() {
        let b = Baselines::new(cfg(0));
        let mut out = Vec::new();
        let ev = [req(T0, "a", "198.51.100.3", "get", "secrets", "x")];
        let t = b.observe(&audit(), &ev, &mut out);
        assert_eq!(t.reported.len(), 3);
        b.forget(&t.reported);
        let mut again = Vec::new();
        b.observe(&audit(), &ev, &mut again);
        assert_eq!(again.len(), 3);
        assert_eq!(b.status().reported, 3);
    }

    #[test]
    fn kubelets_are_one_identity_and_pod_addresses_one_source() {
        let b = Baselines::new(cfg(1));
        let sa = "system:serviceaccount:shop:cart";
        assert!(run(
            &b,
            &[
                req(
                    T0,
                    "system:node:ip-10-0-1-1",
                    "10.0.1.1",
                    "get",
                    "secrets",
                    "shop"
                ),
                req(T0, sa, "10.0.7.7", "get", "configmaps", "shop"),
            ]
        )
        .is_empty());
        let t = T0 + 2 * DAY;
        // A new node from the autoscaler, and the service account's pod rescheduled: quiet.
        assert!(run(
            &b,
            &[
                req(
                    t,
                    "system:node:ip-10-0-2-2",
                    "10.0.2.2",
                    "get",
                    "secrets",
                    "shop"
                ),
                req(t, sa, "10.0.9.9", "get", "configmaps", "shop"),
            ]
        )
        .is_empty());
        // The service account's token used from the internet: reported.
        let got = run(
            &b,
            &[req(t + 1, sa, "198.51.100.66", "get", "configmaps", "shop")],
        );
        assert_eq!(
            got,
            vec![(
                "quarry-baseline-new-source-ip".into(),
                format!("{sa},198.51.100.66")
            )]
        );
        // A person's every address counts.
        assert!(run(&b, &[req(t + 2, "alice", "10.0.0.1", "get", "pods", "a")]).len() == 2);
        let got = run(&b, &[req(t + 3, "alice", "10.0.0.2", "get", "pods", "a")]);
        assert_eq!(ids(&got), vec!["quarry-baseline-new-source-ip"]);
    }

    #[test]
    fn helpers() {
        assert_eq!(repository("nginx"), "nginx");
        assert_eq!(repository("nginx:1.25"), "nginx");
        assert_eq!(
            repository("registry:5000/team/app"),
            "registry:5000/team/app"
        );
        assert_eq!(
            repository("registry:5000/team/app:v1"),
            "registry:5000/team/app"
        );
        assert_eq!(repository("app@sha256:abc"), "app");
        assert_eq!(repository("app:v1@sha256:abc"), "app");
        for p in [
            "requestObject.spec.containers.0.image",
            "requestObject.spec.initContainers.12.image",
            "requestObject.spec.ephemeralContainers.3.image",
            "protoPayload.request.spec.containers.0.image",
        ] {
            assert!(is_image_path(p), "{p}");
        }
        for p in [
            "requestObject.spec.containers.image",
            "requestObject.spec.containers.0.imagePullPolicy",
            "responseObject.spec.containers.0.image",
            "requestObject.spec.volumes.0.image",
            "requestObject.spec.containers.x.image",
        ] {
            assert!(!is_image_path(p), "{p}");
        }
        for ip in [
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "100.64.3.4",
            "fd00::1",
            "::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "100.128.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "nonsense",
            "",
        ] {
            assert!(!is_private(ip), "{ip}");
        }
    }

    #[test]
    fn key_hashes_are_stable_across_releases() {
        // Hashes are kept on disk: a change of hashing would make every saved baseline report again.
        let b = Baselines {
            seed: (1, 2),
            ..Baselines::new(cfg(1))
        };
        let mut found = Vec::new();
        let ev = req(T0, "alice", "203.0.113.7", "get", "secrets", "a");
        b.keys_of(0, &ev, &mut Vec::new(), &mut found);
        let hashes: Vec<(Behaviour, u64)> = found.iter().map(|f| (f.behaviour, f.hash)).collect();
        assert_eq!(
            hashes,
            vec![
                (Behaviour::SourceIp, 8734754017963933607),
                (Behaviour::VerbResource, 18203341688344068509),
                (Behaviour::SecretsAccess, 16197800427075416796),
            ]
        );
    }

    #[test]
    fn siphash_is_siphash() {
        // The test vector of the SipHash paper (SipHash-2-4, key 00..0f, message 00..0e) ...
        let key = (
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        );
        let message: Vec<u8> = (0u8..64).collect();
        assert_eq!(siphash::<2, 4>(key, &message[..15]), 0xa129ca6149be45e5);
        // ... and std's SipHash-2-4 for every tail length.
        for n in 0..=message.len() {
            #[allow(deprecated)]
            let mut h = std::hash::SipHasher::new_with_keys(key.0, key.1);
            h.write(&message[..n]);
            assert_eq!(
                siphash::<2, 4>(key, &message[..n]),
                h.finish(),
                "length {n}"
            );
        }
        // One round fewer is another function; another key another hash.
        assert_ne!(
            siphash::<1, 3>(key, &message),
            siphash::<2, 4>(key, &message)
        );
        assert_ne!(
            siphash::<1, 3>(key, &message),
            siphash::<1, 3>((0, 0), &message)
        );
    }

    /// Throughput of `observe` on audit events shaped like a busy cluster's (run with `--release
    /// -- --ignored --nocapture`); the detection budget is 500k audit events/s per core in all.
    #[test]
    #[ignore]
    fn throughput() {
        let users: Vec<String> = (0..300)
            .map(|i| match i % 3 {
                0 => format!("system:serviceaccount:ns{}:app{i}", i % 40),
                1 => format!("system:node:ip-10-0-{}-{}.ec2.internal", i % 7, i),
                _ => format!("user{i}@example.com"),
            })
            .collect();
        let verbs = ["get", "list", "watch", "update", "patch", "create"];
        let resources = [
            "pods",
            "configmaps",
            "leases",
            "secrets",
            "nodes/status",
            "pods/exec",
        ];
        let events: Vec<Event> = (0..200_000usize)
            .map(|i| {
                let u = &users[i * 7 % users.len()];
                let ip = format!("10.0.{}.{}", i % 13, i % 250);
                if i % 500 == 0 {
                    pod_create(T0 + i as i64, "shop", &["nginx:1.25", "app/cart:v3"])
                } else {
                    req(
                        T0 + i as i64,
                        u,
                        &ip,
                        verbs[i % 6],
                        resources[i / 6 % 6],
                        "ns1",
                    )
                }
            })
            .collect();
        // Cache-hot costs (a batch is read right after it was parsed), per part.
        let chunk = &events[..256];
        let hot = |name: &str, f: &mut dyn FnMut(&Event) -> usize| {
            let t = std::time::Instant::now();
            let mut n = 0;
            for _ in 0..200 {
                for e in chunk {
                    n += f(e);
                }
            }
            let ns = t.elapsed().as_secs_f64() * 1e9 / (200 * chunk.len()) as f64;
            println!("{name}: {ns:.0} ns/event ({n})");
        };
        hot("read", &mut |e| AuditView::read(e).counts() as usize);
        hot("private", &mut |e| {
            is_private(AuditView::read(e).ip.unwrap_or("")) as usize
        });
        let b0 = Baselines::new(cfg(7));
        let mut found = Vec::new();
        let mut buf = Vec::new();
        hot("keys_of", &mut |e| {
            found.clear();
            b0.keys_of(0, e, &mut buf, &mut found);
            found.len()
        });
        let d = crate::Detector::new(&crate::RuleSet::builtin());
        let mut scratch = crate::Scratch::default();
        let mut matches = Vec::new();
        let src = audit();
        hot("sigma (built-in rules)", &mut |e| {
            matches.clear();
            d.detect(&src, e, &mut scratch, &mut matches);
            matches.len()
        });
        // Live detection with the built-in rules, with and without baselines (second pass: nothing new
        // to write, so the difference is the baselines' cost).
        let mut per_event = Vec::new();
        for enabled in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut options = crate::LiveOptions::default();
            options.baseline.enabled = enabled;
            let live = crate::Live::open(
                crate::Detector::new(&crate::RuleSet::builtin()),
                dir.path(),
                options,
            )
            .unwrap();
            for batch in events.chunks(1000) {
                live.process(&src, batch).unwrap();
            }
            let t = std::time::Instant::now();
            for batch in events.chunks(1000) {
                live.process(&src, batch).unwrap();
            }
            per_event.push(t.elapsed().as_secs_f64() * 1e9 / events.len() as f64);
            if enabled {
                println!("keys: {}", live.baseline_status().keys);
            }
        }
        println!(
            "Live::process: {:.0} ns/event without baselines, {:.0} with ({:.0} ns/event for them)",
            per_event[0],
            per_event[1],
            per_event[1] - per_event[0]
        );
    }

    #[test]
    fn real_audit_events_of_falco_traces() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
        let read = |name: &str| {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            quarry_parse::decode_all(
                quarry_parse::Format::Audit,
                quarry_parse::DecoderOptions::default(),
                &bytes,
                0,
            )
            .0
        };
        let b = Baselines::new(cfg(0));
        let mut events = read("exec_pod.json");
        events.extend(read("attach_pod.json"));
        events.extend(read("create_nginx_pod_privileged_2nd_container.json"));
        events.extend(read("create_secret.json"));
        let mut got = run(&b, &events);
        got.sort();
        let want = [
            (
                "quarry-baseline-first-exec-in-namespace",
                "minikube-user,default",
            ),
            ("quarry-baseline-first-secrets-access", "minikube-user"),
            (
                "quarry-baseline-new-image-in-namespace",
                "default,mysql:latest",
            ),
            ("quarry-baseline-new-image-in-namespace", "default,nginx"),
        ];
        for (rule, entity) in want {
            assert!(
                got.contains(&(rule.to_string(), entity.to_string())),
                "{rule} {entity} not in {got:#?}"
            );
        }
        // exec and attach in the same namespace by the same user: one first-exec alert.
        assert_eq!(
            got.iter()
                .filter(|(r, _)| r == "quarry-baseline-first-exec-in-namespace")
                .count(),
            1
        );
    }
}
