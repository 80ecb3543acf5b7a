//! Detection: Sigma rules on the live stream and over history.
//!
//! - [`RuleSet`] loads rules: the built-in pack compiled into the binary (`rules/`, see `rules/README.md`)
//!   and the folders users bring. Every problem is reported with its file and rule, and never stops the
//!   other rules from loading.
//! - [`Detector`] compiles every rule once, applies Quarry's field-mapping pipeline (`src/pipeline.yml`),
//!   groups rules by the source kind they read ([`logsource`]) and matches events through rsigma's
//!   candidate index.
//! - [`Live`] runs the rules over every batch the store takes in and raises [`alerts`]: stored with their
//!   evidence, deduplicated and suppressed, taken through open / acknowledged / closed, and delivered by
//!   [`deliver`] to webhooks, Slack, Alertmanager and syslog CEF without holding up ingest.
//! - [`Baselines`] learn what each identity normally does in the Kubernetes audit log and raise an alert
//!   the first time something new happens after the learning window ([`baseline`]).
//! - [`hunt`] runs rules over stored history: each rule becomes an index query that every event it can
//!   match passes, and the same compiled rules then decide on the events the index leaves.
//! - [`SigmaEvent`] lets rsigma read Quarry's flattened fields directly: paths without array indices
//!   match any element, exact keys (with dots) and numeric strings work as a user expects.
//!
//! Dependencies: rsigma-parser and rsigma-eval (MIT; Sigma 2.1 parsing, modifiers, conditions, pipelines,
//! correlations) pinned to 0.23 because later versions need a newer Rust than the workspace's; rustc-hash
//! (a fast hash for per-event field lookups); serde/serde_json (rule metadata, alerts and evidence as
//! JSON); quarry-store (the [`quarry_store::Observer`] hook detection plugs into); quarry-query (the
//! index scans retro-hunts run); reqwest (blocking
//! HTTP for alert delivery, on its own thread); tracing; thiserror.

pub mod alerts;
pub mod baseline;
pub mod correlate;
pub mod deliver;
mod detector;
mod event;
pub mod hunt;
pub mod intel;
pub mod lint;
mod live;
pub mod logsource;
mod rules;

pub use baseline::{BaselineConfig, BaselineStatus, Baselines};
pub use detector::{Detector, Level, Match, RuleInfo};
pub use event::{event_json, evidence, FieldTable, Scratch, SigmaEvent};
pub use live::{json_namespaces, Live, LiveMetrics, LiveOptions, DEFAULT_SUPPRESS_NS};
pub use rules::{
    rule_files, LoadedCorrelation, LoadedRule, Origin, Problem, ProblemKind, ReadError, RuleSet,
};
