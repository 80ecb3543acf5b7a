//! Threat intelligence: known-bad IP addresses, networks, domains and file hashes matched against every
//! event, as GuardDuty's `MaliciousIPCaller` findings do for AWS.
//!
//! ## Feeds
//!
//! [`IntelBuilder`] reads indicator files (or every feed file of a folder) and [`IntelBuilder::build`]
//! gives the [`Intel`] that matches events:
//!
//! - **CSV** with a header line that names a value column (`value`, `indicator`, `ioc`, `observable`, or
//!   one naming the type: `ip`, `cidr`, `domain`, `url`, `md5`, `sha1`, `sha256`, `hash`) and optionally
//!   `type`, `description`, `name`, `source`, `confidence` (0–100 or `low`/`medium`/`high`), `severity`
//!   (a Sigma level), `labels` (`;`-separated) and `valid_until` (RFC 3339 or a date). Fields may be
//!   quoted (`"a, b"`, `""` for a quote); tab-separated files work too; `#` lines are comments.
//! - **Lists**: one indicator per line with no header, its type inferred (IPv4/IPv6 address, CIDR block,
//!   MD5/SHA-1/SHA-256 hash, URL, domain); text after ` #` is its description.
//! - **STIX 2.1** bundles (`{"type":"bundle","objects":[...]}`, also a TAXII envelope or a lone
//!   indicator): `indicator` objects with `pattern_type: stix` whose patterns compare, with `=`, `IN` or
//!   `ISSUBSET`, `ipv4-addr:value`, `ipv6-addr:value` (addresses or CIDR blocks), `domain-name:value`,
//!   `url:value` (its host is matched), `network-traffic:src_ref.value` / `dst_ref.value`, and
//!   `file:hashes.MD5` / `'SHA-1'` / `'SHA-256'`, joined with `OR`. Indicators past `valid_until`, not yet
//!   `valid_from`, `revoked`, or superseded by a later version of the same id are skipped and counted.
//!   Patterns a single event cannot be held against (`AND`, `FOLLOWEDBY`, qualifiers, `NOT`, `MATCHES`,
//!   `LIKE`, order comparisons, other objects) are skipped and reported with the indicator's id; the
//!   supported branches of an `OR` still load (a match on any branch is a match of the indicator).
//!
//! Values are normalised: defanged forms (`evil[.]example`, `hxxp://`) are restored, domains lower-cased
//! without a trailing dot or a leading `*.`, hashes lower-cased, CIDR blocks reduced to their network
//! address (a warning says so), IPv4-mapped IPv6 addresses read as IPv4. Blocks broader than /8 (IPv4) or
//! /16 (IPv6) are refused; private, loopback and link-local indicators load with a warning. Every problem
//! is an [`IntelProblem`] naming the file and the line (CSV) or the indicator id (STIX); [`IntelStats`]
//! counts what loaded, by type, and what was skipped, by reason.
//!
//! ## What an event is checked for
//!
//! | source kind | checked |
//! |---|---|
//! | `audit` | every `sourceIPs.N` |
//! | `cloudtrail` | `sourceIPAddress` (an address, or a service name such as `ec2.amazonaws.com` as a domain) |
//! | `vpcflow` | `srcAddr`, `dstAddr`, `pktSrcAddr`, `pktDstAddr` |
//! | `syslog` | addresses, domains and hashes in the `message` field (else `@message`) |
//! | `container`, `json`, `text` | addresses, domains and hashes in `@message` |
//!
//! A domain indicator matches the domain and its subdomains (`evil.example` matches `a.evil.example`, not
//! `notevil.example` nor `evil.example.com`); an IP matches the most specific address or block holding it.
//!
//! ## Cost
//!
//! Addresses are parsed without allocating; exact addresses and CIDR blocks sit in one hash map per
//! prefix length present in the feeds, probed longest first, so a lookup costs one hash probe per
//! distinct prefix length (at most 33 for IPv4, 129 for IPv6, usually a handful), whatever the number of
//! indicators. Text is scanned for addresses by a byte scanner only when IP indicators are loaded, and
//! for domains and hashes by one Aho-Corasick pass (ASCII case-insensitive) only when such indicators are
//! loaded. Nothing allocates unless an indicator matches.

use crate::alerts::Candidate;
use crate::{evidence, Level, DEFAULT_SUPPRESS_NS};
use quarry_model::{Event, Kind, Source};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

// Layout: `load` reads feed files, CSV and lists and normalises values into an `IntelBuilder`; `stix`
// reads STIX bundles and parses STIX patterns; `matcher` is the `Intel` that events are checked against;
// this file holds the public types and the alert a hit becomes.
mod load;
mod matcher;
mod stix;
#[cfg(test)]
mod tests;

pub use load::{parse_ip, IntelBuilder};
pub use matcher::{scan_ips, Intel};

/// Most problems kept; later ones are only counted ([`IntelStats::problems_dropped`]).
pub const MAX_PROBLEMS: usize = 1000;

/// Rule id of IP address matches.
pub const RULE_IP: &str = "quarry-intel-ip";
/// Rule id of domain matches.
pub const RULE_DOMAIN: &str = "quarry-intel-domain";
/// Rule id of file hash matches.
pub const RULE_HASH: &str = "quarry-intel-hash";

// ------------------------------------------------------------------------------------------------
// Indicators

/// What an indicator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum IndicatorKind {
    /// One IPv4 address.
    #[serde(rename = "ipv4")]
    Ipv4,
    /// One IPv6 address.
    #[serde(rename = "ipv6")]
    Ipv6,
    /// An IPv4 CIDR block.
    #[serde(rename = "ipv4-cidr")]
    Ipv4Cidr,
    /// An IPv6 CIDR block.
    #[serde(rename = "ipv6-cidr")]
    Ipv6Cidr,
    /// A domain and its subdomains.
    #[serde(rename = "domain")]
    Domain,
    /// An MD5 file hash.
    #[serde(rename = "md5")]
    Md5,
    /// A SHA-1 file hash.
    #[serde(rename = "sha1")]
    Sha1,
    /// A SHA-256 file hash.
    #[serde(rename = "sha256")]
    Sha256,
}

impl IndicatorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [IndicatorKind; 8] = [
        IndicatorKind::Ipv4,
        IndicatorKind::Ipv6,
        IndicatorKind::Ipv4Cidr,
        IndicatorKind::Ipv6Cidr,
        IndicatorKind::Domain,
        IndicatorKind::Md5,
        IndicatorKind::Sha1,
        IndicatorKind::Sha256,
    ];

    /// The kind's name (`ipv4`, `ipv6-cidr`, `domain`, `sha256`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorKind::Ipv4 => "ipv4",
            IndicatorKind::Ipv6 => "ipv6",
            IndicatorKind::Ipv4Cidr => "ipv4-cidr",
            IndicatorKind::Ipv6Cidr => "ipv6-cidr",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Md5 => "md5",
            IndicatorKind::Sha1 => "sha1",
            IndicatorKind::Sha256 => "sha256",
        }
    }

    /// Address, domain or hash.
    pub fn family(self) -> IntelFamily {
        match self {
            IndicatorKind::Ipv4
            | IndicatorKind::Ipv6
            | IndicatorKind::Ipv4Cidr
            | IndicatorKind::Ipv6Cidr => IntelFamily::Ip,
            IndicatorKind::Domain => IntelFamily::Domain,
            IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => IntelFamily::Hash,
        }
    }
}

impl fmt::Display for IndicatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three families of indicators, each raised under its own rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntelFamily {
    /// Addresses and CIDR blocks.
    Ip,
    /// Domains.
    Domain,
    /// File hashes.
    Hash,
}

impl IntelFamily {
    /// The rule id alerts of this family carry.
    pub fn rule_id(self) -> &'static str {
        match self {
            IntelFamily::Ip => RULE_IP,
            IntelFamily::Domain => RULE_DOMAIN,
            IntelFamily::Hash => RULE_HASH,
        }
    }

    /// The (stable) alert title; the indicator and feed are in the evidence and the dedup key.
    pub fn title(self) -> &'static str {
        match self {
            IntelFamily::Ip => "Threat intelligence match: IP address",
            IntelFamily::Domain => "Threat intelligence match: domain",
            IntelFamily::Hash => "Threat intelligence match: file hash",
        }
    }
}

/// One indicator, with what its feed said about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicator {
    /// What it is.
    pub kind: IndicatorKind,
    /// The normalised value: `198.51.100.77`, `203.0.113.0/24`, `evil.example`, a lower-case hash.
    pub value: String,
    /// The value as the feed wrote it, when that differs (a URL whose host this is, a defanged form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// The feed file's name.
    pub source: String,
    /// The line of a CSV or list feed (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The STIX indicator's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stix_id: Option<String>,
    /// A name (STIX `name`, CSV `name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels (STIX `labels` and `indicator_types`, CSV `labels`/`tags`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Who reported it (a CSV `source`/`feed` column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Confidence 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// Severity the feed gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Level>,
    /// When it stops being valid (UTC ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
}

impl Indicator {
    /// The level of its alerts: the feed's severity, else one from its confidence (STIX's scale: 1–29
    /// low, 30–69 medium, 70–100 high, 0 informational), else high.
    pub fn level(&self) -> Level {
        if let Some(l) = self.severity {
            return l;
        }
        match self.confidence {
            None => Level::High,
            Some(0) => Level::Informational,
            Some(1..=29) => Level::Low,
            Some(30..=69) => Level::Medium,
            Some(_) => Level::High,
        }
    }
}

/// An indicator found in an event.
#[derive(Debug, Clone, PartialEq)]
pub struct IntelHit {
    /// The indicator.
    pub indicator: Arc<Indicator>,
    /// Where it matched: a field path (`sourceIPs.0`, `sourceIPAddress`, `dstAddr`) or `message` /
    /// `@message` for text.
    pub field: String,
    /// The value that matched (the address, the full host name, the hash as written).
    pub value: String,
}

// ------------------------------------------------------------------------------------------------
// Stats and problems

/// What loading the feeds did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntelStats {
    /// Feed files read.
    pub files: u64,
    /// IPv4 addresses loaded.
    pub ipv4: u64,
    /// IPv6 addresses loaded.
    pub ipv6: u64,
    /// IPv4 CIDR blocks loaded.
    pub ipv4_cidr: u64,
    /// IPv6 CIDR blocks loaded.
    pub ipv6_cidr: u64,
    /// Domains loaded.
    pub domain: u64,
    /// MD5 hashes loaded.
    pub md5: u64,
    /// SHA-1 hashes loaded.
    pub sha1: u64,
    /// SHA-256 hashes loaded.
    pub sha256: u64,
    /// STIX indicator objects read.
    pub stix_indicators: u64,
    /// Values already loaded from an earlier line or indicator (the first one is kept).
    pub duplicates: u64,
    /// STIX indicators past their `valid_until` (or CSV rows past `valid_until`), skipped.
    pub expired: u64,
    /// STIX indicators whose `valid_from` is still to come, skipped.
    pub not_yet_valid: u64,
    /// Revoked STIX indicators, skipped.
    pub revoked: u64,
    /// Older versions of a STIX indicator that a later version (by `modified`) replaced.
    pub superseded: u64,
    /// Indicators or rows skipped because nothing in them can be matched (pattern or type unsupported).
    pub unsupported: u64,
    /// STIX indicators loaded only in part (some `OR` branches unsupported or invalid).
    pub partial: u64,
    /// Rows or indicators skipped because they are malformed.
    pub invalid: u64,
    /// Problems beyond [`MAX_PROBLEMS`], counted but not kept.
    pub problems_dropped: u64,
}

impl IntelStats {
    /// Values loaded, all kinds together.
    pub fn loaded(&self) -> u64 {
        self.ipv4
            + self.ipv6
            + self.ipv4_cidr
            + self.ipv6_cidr
            + self.domain
            + self.md5
            + self.sha1
            + self.sha256
    }

    /// Values loaded of one kind.
    pub fn of_kind(&self, kind: IndicatorKind) -> u64 {
        match kind {
            IndicatorKind::Ipv4 => self.ipv4,
            IndicatorKind::Ipv6 => self.ipv6,
            IndicatorKind::Ipv4Cidr => self.ipv4_cidr,
            IndicatorKind::Ipv6Cidr => self.ipv6_cidr,
            IndicatorKind::Domain => self.domain,
            IndicatorKind::Md5 => self.md5,
            IndicatorKind::Sha1 => self.sha1,
            IndicatorKind::Sha256 => self.sha256,
        }
    }

    /// Indicators or rows skipped, all reasons together (duplicates not included: their value loaded).
    pub fn skipped(&self) -> u64 {
        self.expired
            + self.not_yet_valid
            + self.revoked
            + self.superseded
            + self.unsupported
            + self.invalid
    }

    fn count(&mut self, kind: IndicatorKind) {
        let n = match kind {
            IndicatorKind::Ipv4 => &mut self.ipv4,
            IndicatorKind::Ipv6 => &mut self.ipv6,
            IndicatorKind::Ipv4Cidr => &mut self.ipv4_cidr,
            IndicatorKind::Ipv6Cidr => &mut self.ipv6_cidr,
            IndicatorKind::Domain => &mut self.domain,
            IndicatorKind::Md5 => &mut self.md5,
            IndicatorKind::Sha1 => &mut self.sha1,
            IndicatorKind::Sha256 => &mut self.sha256,
        };
        *n += 1;
    }
}

/// `12 indicators from 2 files (ipv4 5, ipv4-cidr 1, domain 4, sha256 2); skipped: 1 expired, ...`
impl fmt::Display for IntelStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} indicators from {} file{}",
            self.loaded(),
            self.files,
            if self.files == 1 { "" } else { "s" }
        )?;
        let kinds: Vec<String> = IndicatorKind::ALL
            .iter()
            .filter(|k| self.of_kind(**k) > 0)
            .map(|k| format!("{k} {}", self.of_kind(*k)))
            .collect();
        if !kinds.is_empty() {
            write!(f, " ({})", kinds.join(", "))?;
        }
        let skipped: Vec<String> = [
            ("expired", self.expired),
            ("not yet valid", self.not_yet_valid),
            ("revoked", self.revoked),
            ("superseded", self.superseded),
            ("unsupported", self.unsupported),
            ("invalid", self.invalid),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
        if !skipped.is_empty() {
            write!(f, "; skipped: {}", skipped.join(", "))?;
        }
        if self.partial > 0 {
            write!(f, "; {} loaded in part", self.partial)?;
        }
        if self.duplicates > 0 {
            write!(f, "; {} duplicates", self.duplicates)?;
        }
        Ok(())
    }
}

/// How bad a load problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IntelProblemKind {
    /// A malformed line or indicator: skipped.
    Invalid,
    /// Something Quarry cannot match on single events (a pattern, an indicator type): skipped.
    Unsupported,
    /// Loaded, but worth knowing (a CIDR with host bits, a private range, a partly loaded pattern).
    Warning,
}

impl fmt::Display for IntelProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IntelProblemKind::Invalid => "invalid",
            IntelProblemKind::Unsupported => "unsupported",
            IntelProblemKind::Warning => "warning",
        })
    }
}

/// A problem found while loading a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntelProblem {
    /// How bad it is.
    pub kind: IntelProblemKind,
    /// The feed file (as given).
    pub file: String,
    /// The line (CSV and lists), 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The STIX indicator's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicator: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// `feed.csv:7: invalid: ...` or `bundle.json: indicator--...: unsupported: ...`
impl fmt::Display for IntelProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(id) = &self.indicator {
            write!(f, ": {id}")?;
        }
        write!(f, ": {}: {}", self.kind, self.message)
    }
}

/// A feed that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    /// The file or folder could not be read.
    #[error("threat intelligence feed {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a feed Quarry reads.
    #[error("threat intelligence feed {file}: {message}")]
    Format {
        /// The file (as given).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The text matcher for domains and hashes could not be built (too many indicators).
    #[error("threat intelligence: cannot build the domain and hash matcher: {0}")]
    Matcher(String),
}

// ------------------------------------------------------------------------------------------------
// Alerts

impl IntelHit {
    /// The hit as an alert candidate: rule `quarry-intel-ip` / `-domain` / `-hash`, a stable title, the
    /// indicator's level (see [`Indicator::level`]), keyed by rule, indicator and entity (the audit user,
    /// the CloudTrail caller, the VPC flow's other address, the node, the pod), with the event as evidence
    /// plus an `@intel` object saying what matched where.
    pub fn candidate(&self, source: &Source, ev: &Event) -> Candidate {
        let ind = &self.indicator;
        let family = ind.kind.family();
        let rule_id = family.rule_id();
        // A flow is about the address on the other side of the indicator.
        let entity = match source.kind {
            Kind::VpcFlow => {
                let other = if self.field.to_ascii_lowercase().contains("src") {
                    "dstAddr"
                } else {
                    "srcAddr"
                };
                ev.fields
                    .get(other)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            }
            _ => crate::live::default_entity(source, ev),
        };
        let inbound = matches!(source.kind, Kind::Audit | Kind::CloudTrail | Kind::Syslog)
            || (source.kind == Kind::VpcFlow && self.field.to_ascii_lowercase().contains("src"));
        let tactic = match family {
            IntelFamily::Hash => "attack.execution",
            _ if inbound => "attack.initial-access",
            _ => "attack.command-and-control",
        };
        let namespace = crate::live::namespace_of(source, ev);
        let intel = serde_json::json!({
            "indicator": ind.value,
            "type": ind.kind,
            "field": self.field,
            "value": self.value,
            "feed": ind.source,
            "line": ind.line,
            "stix_id": ind.stix_id,
            "name": ind.name,
            "description": ind.description,
            "labels": ind.labels,
            "provider": ind.provider,
            "confidence": ind.confidence,
            "original": ind.original,
            "valid_until": ind.valid_until.map(quarry_model::time::format_rfc3339_nanos),
        });
        let intel = match intel {
            serde_json::Value::Object(m) => {
                serde_json::Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
            }
            other => other,
        };
        let mut event = evidence(source, ev);
        match &mut event {
            serde_json::Value::Object(m) => {
                m.insert("@intel".into(), intel);
            }
            other => {
                *other = serde_json::json!({"event": other.take(), "@intel": intel});
            }
        }
        let event_hash = crate::live::event_hash(source, ev);
        Candidate {
            rule_id: rule_id.to_string(),
            title: family.title().to_string(),
            level: ind.level(),
            tags: vec![tactic.to_string()],
            dedup_key: format!("{rule_id}|{}|{entity}", ind.value),
            namespace,
            namespaces: crate::live::namespaces_of(source, ev),
            ts: ev.ts,
            event,
            event_hash,
            suppress_ns: DEFAULT_SUPPRESS_NS,
        }
    }
}
