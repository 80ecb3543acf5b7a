//! What a caller may see: Kubernetes namespaces, cluster-scoped events and source kinds.
//!
//! An event's namespaces are the values of [`NAMESPACE_FIELDS`] it has: the agent's
//! `kubernetes.namespace`, Fluent Bit's `kubernetes.namespace_name` and an audit event's
//! `objectRef.namespace`. An event is visible under a [`Scope`] when its kind is allowed and either every
//! namespace it names is granted, or it names none (a cluster-scoped event: node logs, VPC flows,
//! CloudTrail, audit events on cluster-scoped resources) and cluster-scoped events are granted.
//!
//! The query engine turns a scope into a filter planned with the query (so the index, not the client,
//! enforces it); detection uses [`Scope::allows`] on alerts' evidence.

use crate::{Event, Kind, Source, Value};

/// Fields that name an event's Kubernetes namespace.
pub const NAMESPACE_FIELDS: [&str; 3] = [
    "kubernetes.namespace",
    "kubernetes.namespace_name",
    "objectRef.namespace",
];

/// What a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Namespaces granted; `None` grants every namespace.
    pub namespaces: Option<Vec<String>>,
    /// Whether events that name no namespace are visible.
    pub cluster: bool,
    /// Source kinds granted; `None` grants every kind.
    pub kinds: Option<Vec<Kind>>,
}

impl Scope {
    /// Everything.
    pub fn all() -> Scope {
        Scope {
            namespaces: None,
            cluster: true,
            kinds: None,
        }
    }

    /// True when the scope restricts nothing.
    pub fn is_all(&self) -> bool {
        self.namespaces.is_none() && self.cluster && self.kinds.is_none()
    }

    /// The kinds a query reads: the logs (every kind but the access audit), or the access audit alone.
    /// The access audit is a stream of its own, like a separate log group: a query over the logs never
    /// counts Quarry's own records of who searched them.
    pub fn stream_kinds(access_audit: bool) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| (*k == Kind::Access) == access_audit)
            .collect()
    }

    /// This scope narrowed to `kinds`.
    pub fn within(&self, kinds: &[Kind]) -> Scope {
        Scope {
            kinds: Some(
                kinds
                    .iter()
                    .copied()
                    .filter(|k| self.allows_kind(*k))
                    .collect(),
            ),
            ..self.clone()
        }
    }

    /// True when the scope allows only the access audit (an auditor's).
    pub fn only_access_audit(&self) -> bool {
        self.kinds.as_deref() == Some(&[Kind::Access])
    }

    /// True when events of `kind` may be visible.
    pub fn allows_kind(&self, kind: Kind) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }

    /// True when `ns` is granted.
    pub fn allows_namespace(&self, ns: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|v| v.iter().any(|n| n == ns))
    }

    /// True when an event of `kind` naming `namespaces` (possibly none) is visible.
    pub fn allows<'a>(&self, kind: Kind, namespaces: impl IntoIterator<Item = &'a str>) -> bool {
        if !self.allows_kind(kind) {
            return false;
        }
        let mut named = false;
        for ns in namespaces {
            named = true;
            if !self.allows_namespace(ns) {
                return false;
            }
        }
        named || self.cluster
    }

    /// True when `event`, stored under `source`, is visible.
    pub fn allows_event(&self, source: &Source, event: &Event) -> bool {
        let from_fields: Vec<String> = NAMESPACE_FIELDS
            .iter()
            .filter_map(|f| match event.fields.get(f) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.to_string()),
            })
            .collect();
        self.allows(
            source.kind,
            source
                .namespace
                .as_deref()
                .into_iter()
                .chain(from_fields.iter().map(String::as_str)),
        )
    }

    /// The namespace part of the scope as a filter in the query language (`filter ...`), or `None` when
    /// it restricts no namespace. Kinds are not in it: callers read only the partitions of the kinds
    /// allowed. Namespace names are quoted, so any text is safe.
    pub fn filter_text(&self) -> Option<String> {
        if self.namespaces.is_none() && self.cluster {
            return None;
        }
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let mut parts = Vec::new();
        if let Some(ns) = &self.namespaces {
            let list: Vec<String> = ns.iter().map(|n| quote(n)).collect();
            // `in` lets the index narrow; the language compares numeric-looking strings as numbers
            // ("100" = "0100" = "1e2", all valid namespace names), so the `concat` test makes the match
            // exact.
            let tagged: Vec<String> = ns.iter().map(|n| quote(&format!("ns:{n}"))).collect();
            for f in NAMESPACE_FIELDS {
                parts.push(if list.is_empty() {
                    format!("not ispresent({f})")
                } else {
                    format!(
                        "(not ispresent({f}) or ({f} in [{}] and concat(\"ns:\", {f}) in [{}]))",
                        list.join(", "),
                        tagged.join(", ")
                    )
                });
            }
        }
        if !self.cluster {
            let any: Vec<String> = NAMESPACE_FIELDS
                .iter()
                .map(|f| format!("ispresent({f})"))
                .collect();
            parts.push(format!("({})", any.join(" or ")));
        }
        Some(format!("filter {}", parts.join(" and ")))
    }
}

/// True for a Kubernetes namespace name (an RFC 1123 label: at most 63 of `a-z`, `0-9` and `-`, starting
/// and ending with a letter or digit), what a scope, a retention rule or a partition folder may name.
pub fn is_namespace_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| ok(c) || *c == b'-')
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(ns: &[&str], cluster: bool) -> Scope {
        Scope {
            namespaces: Some(ns.iter().map(|s| s.to_string()).collect()),
            cluster,
            kinds: None,
        }
    }

    #[test]
    fn namespaces_and_cluster_events() {
        let s = scope(&["a", "b"], false);
        assert!(s.allows(Kind::Container, ["a"]));
        assert!(s.allows(Kind::Audit, ["b", "b"]));
        assert!(!s.allows(Kind::Audit, ["a", "c"]));
        assert!(!s.allows(Kind::VpcFlow, []));
        assert!(scope(&["a"], true).allows(Kind::VpcFlow, []));
        assert!(!scope(&[], true).allows(Kind::Container, ["a"]));
        assert!(Scope::all().allows(Kind::Access, ["x"]));
        let auditor = Scope {
            kinds: Some(vec![Kind::Access]),
            ..Scope::all()
        };
        assert!(!auditor.allows(Kind::Audit, []));
        assert!(auditor.allows(Kind::Access, []));
    }

    #[test]
    fn filter_text_quotes_names() {
        assert_eq!(Scope::all().filter_text(), None);
        let t = scope(&["a\"b"], false).filter_text().unwrap();
        assert!(t.contains(r#"kubernetes.namespace in ["a\"b"]"#), "{t}");
        assert!(t.ends_with("or ispresent(objectRef.namespace))"), "{t}");
    }
}
