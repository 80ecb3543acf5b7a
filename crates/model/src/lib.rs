//! The shared vocabulary of Quarry: an [`Event`] is one log record with a UTC timestamp in nanoseconds, the
//! original text it came from, the [`Source`] that produced it and its structured [`Fields`], flattened into
//! dotted paths the way CloudWatch Logs Insights discovers them (`user.username`, `sourceIPs.0`).
//!
//! Every other crate speaks these types: the parsers produce them, the store keeps them, the query engine
//! reads them.

mod fields;
mod kind;
mod scope;
pub mod time;

pub use fields::{flatten_json, Fields, Value, MAX_FIELDS};
pub use kind::{Kind, ParseKindError};
pub use scope::{is_namespace_name, Scope, NAMESPACE_FIELDS};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a batch of records comes from: its kind and optional Kubernetes coordinates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// What kind of log this is; it selects the parser.
    pub kind: Kind,
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Node (host) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Further metadata as full field paths, such as `kubernetes.pod_uid`, `kubernetes.container_image` or
    /// `kubernetes.labels.app` (what the node agent learns from the Kubernetes API).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Source {
    /// A source of the given kind with no Kubernetes coordinates.
    pub fn of_kind(kind: Kind) -> Self {
        Source {
            kind,
            ..Source::default()
        }
    }

    /// The descriptor's coordinates as `(field path, value)` pairs, e.g. `("kubernetes.pod", "web-1")`,
    /// the `extra` ones last.
    pub fn coordinates(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            ("kubernetes.cluster", &self.cluster),
            ("kubernetes.node", &self.node),
            ("kubernetes.namespace", &self.namespace),
            ("kubernetes.pod", &self.pod),
            ("kubernetes.container", &self.container),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .chain(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event time, UTC nanoseconds since the Unix epoch.
    pub ts: i64,
    /// The original text of the record, kept unchanged (several lines joined by `\n` when the record was
    /// reassembled from partial lines).
    pub raw: String,
    /// `@message` when it differs from `raw` (for example the log content of a CRI line); `None` means the
    /// raw text is the message.
    pub message: Option<String>,
    /// Structured fields, flattened to dotted paths.
    pub fields: Fields,
    /// Why the record could not be parsed; it is then kept as raw text with this flag.
    pub parse_error: Option<String>,
    /// Context the parser needs to read `raw` again, such as a VPC flow log's custom field list.
    pub hint: Option<String>,
    /// Name of the format that read the record (`cri`, `audit`, `vpcflow`, ...), so it can be read again.
    pub format: &'static str,
}

impl Event {
    /// An event that is only text: `raw` is the message, no fields.
    pub fn text(ts: i64, raw: impl Into<String>) -> Self {
        Event {
            ts,
            raw: raw.into(),
            message: None,
            fields: Fields::default(),
            parse_error: None,
            hint: None,
            format: "text",
        }
    }

    /// The `@message` of this event.
    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or(&self.raw)
    }
}
