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
use aho_corasick::AhoCorasick;
use quarry_model::{Event, Kind, Source};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most problems kept; later ones are only counted ([`IntelStats::problems_dropped`]).
pub const MAX_PROBLEMS: usize = 1000;

/// Narrowest-allowed IPv4 prefix: a block broader than this is refused as a feed mistake.
const MIN_PREFIX_V4: u8 = 8;
/// Narrowest-allowed IPv6 prefix.
const MIN_PREFIX_V6: u8 = 16;

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
// Loading

/// Where an indicator goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    V4(u32, u8),
    V6(u128, u8),
    Domain(String),
    Hash(String),
}

/// A value read from a feed, normalised.
#[derive(Debug)]
struct Norm {
    key: Key,
    kind: IndicatorKind,
    value: String,
    warning: Option<String>,
}

/// What a feed says a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Infer it.
    Any,
    /// An address or a block, either family.
    Ip,
    /// An IPv4 address or block.
    Ipv4,
    /// An IPv6 address or block.
    Ipv6,
    /// A domain (an address is accepted too: a `host` column).
    Domain,
    /// A URL, matched by its host.
    Url,
    /// An address or a domain.
    Host,
    /// A hash; of this kind when given.
    Hash(Option<IndicatorKind>),
}

/// Metadata shared by the values of one row or STIX indicator.
#[derive(Debug, Clone, Default)]
struct Meta {
    line: Option<usize>,
    stix_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    labels: Vec<String>,
    provider: Option<String>,
    confidence: Option<u8>,
    severity: Option<Level>,
    valid_until: Option<i64>,
}

/// Reads feeds into an [`Intel`].
#[derive(Debug)]
pub struct IntelBuilder {
    now: i64,
    v4: FxHashMap<u8, FxHashMap<u32, Arc<Indicator>>>,
    v6: FxHashMap<u8, FxHashMap<u128, Arc<Indicator>>>,
    domains: FxHashMap<Box<str>, Arc<Indicator>>,
    hashes: FxHashMap<Box<str>, Arc<Indicator>>,
    stats: IntelStats,
    problems: Vec<IntelProblem>,
}

impl Default for IntelBuilder {
    fn default() -> Self {
        IntelBuilder::new()
    }
}

impl IntelBuilder {
    /// A builder judging validity (`valid_until`, `valid_from`) against the current time.
    pub fn new() -> IntelBuilder {
        IntelBuilder::at(quarry_model::time::now_nanos())
    }

    /// A builder judging validity against `now_ns` (UTC ns).
    pub fn at(now_ns: i64) -> IntelBuilder {
        IntelBuilder {
            now: now_ns,
            v4: FxHashMap::default(),
            v6: FxHashMap::default(),
            domains: FxHashMap::default(),
            hashes: FxHashMap::default(),
            stats: IntelStats::default(),
            problems: Vec::new(),
        }
    }

    /// Problems so far.
    pub fn problems(&self) -> &[IntelProblem] {
        &self.problems
    }

    /// Counters so far.
    pub fn stats(&self) -> &IntelStats {
        &self.stats
    }

    /// Loads a feed file, or every feed file (`*.csv`, `*.tsv`, `*.txt`, `*.list`, `*.json`, `*.stix`)
    /// directly in a folder, in name order. A file that cannot be read at all is an error; problems of
    /// single lines or indicators are recorded and loading goes on.
    pub fn load_path(&mut self, path: &Path) -> Result<(), IntelError> {
        let io = |source| IntelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_dir() {
            return self.load_file(path);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io)? {
            let p = entry.map_err(io)?.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            let feed_ext = p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["csv", "tsv", "txt", "list", "json", "stix"]
                    .iter()
                    .any(|x| e.eq_ignore_ascii_case(x))
            });
            if p.is_file() && feed_ext && !hidden {
                files.push(p);
            }
        }
        files.sort();
        if files.is_empty() {
            self.problem(
                IntelProblemKind::Warning,
                &path.display().to_string(),
                None,
                None,
                "no feed files (*.csv, *.tsv, *.txt, *.list, *.json, *.stix) in this folder".into(),
            );
        }
        for f in files {
            self.load_file(&f)?;
        }
        Ok(())
    }

    fn load_file(&mut self, path: &Path) -> Result<(), IntelError> {
        let bytes = std::fs::read(path).map_err(|source| IntelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path.display().to_string();
        let text = String::from_utf8(bytes).map_err(|e| IntelError::Format {
            file: name.clone(),
            message: format!(
                "not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let stix = match ext.as_str() {
            "json" | "stix" => true,
            "csv" | "tsv" | "txt" | "list" => false,
            _ => text
                .trim_start_matches('\u{feff}')
                .trim_start()
                .starts_with('{'),
        };
        if stix {
            self.add_stix(&name, &text)
        } else {
            self.add_csv(&name, &text)
        }
    }

    fn problem(
        &mut self,
        kind: IntelProblemKind,
        file: &str,
        line: Option<usize>,
        indicator: Option<&str>,
        message: String,
    ) {
        if self.problems.len() >= MAX_PROBLEMS {
            self.stats.problems_dropped += 1;
            return;
        }
        self.problems.push(IntelProblem {
            kind,
            file: file.to_string(),
            line,
            indicator: indicator.map(str::to_string),
            message,
        });
    }

    /// Adds a normalised value; false when it was already there.
    fn insert(&mut self, file: &str, norm: Norm, original: Option<&str>, meta: &Meta) -> bool {
        let ind = Arc::new(Indicator {
            kind: norm.kind,
            original: original.filter(|o| *o != norm.value).map(str::to_string),
            value: norm.value,
            source: feed_name(file),
            line: meta.line,
            stix_id: meta.stix_id.clone(),
            name: meta.name.clone(),
            description: meta.description.clone(),
            labels: meta.labels.clone(),
            provider: meta.provider.clone(),
            confidence: meta.confidence,
            severity: meta.severity,
            valid_until: meta.valid_until,
        });
        let fresh = match norm.key {
            Key::V4(net, len) => insert_new(self.v4.entry(len).or_default(), net, ind),
            Key::V6(net, len) => insert_new(self.v6.entry(len).or_default(), net, ind),
            Key::Domain(d) => insert_new(&mut self.domains, d.into_boxed_str(), ind),
            Key::Hash(h) => insert_new(&mut self.hashes, h.into_boxed_str(), ind),
        };
        if fresh {
            self.stats.count(norm.kind);
        } else {
            self.stats.duplicates += 1;
        }
        fresh
    }

    /// Loads a CSV feed or a one-per-line list from text; `file` names it in problems and evidence. Only
    /// a file with no usable first line is an error; bad lines are reported with their number.
    pub fn add_csv(&mut self, file: &str, text: &str) -> Result<(), IntelError> {
        self.stats.files += 1;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((first_no, first)) = lines.next() else {
            self.problem(
                IntelProblemKind::Warning,
                file,
                None,
                None,
                "no indicators in this file".into(),
            );
            return Ok(());
        };
        let delim = if first.contains('\t') && !first.contains(',') {
            b'\t'
        } else {
            b','
        };
        let mut cells = Vec::new();
        let header = split_csv(first, delim, &mut cells)
            .ok()
            .and_then(|()| Header::from_cells(&cells));
        match header {
            Some(h) => {
                for (no, line) in lines {
                    self.csv_row(file, no, line, delim, &h, &mut cells);
                }
            }
            None => {
                if infer(first.split(" #").next().unwrap_or(first).trim()).is_err() {
                    return Err(IntelError::Format {
                        file: file.to_string(),
                        message: format!(
                            "line {first_no}: neither a header naming a value column (value, indicator, \
                             ioc, ip, domain, url, hash, ...) nor one indicator per line: {first:?}"
                        ),
                    });
                }
                for (no, line) in std::iter::once((first_no, first)).chain(lines) {
                    self.list_line(file, no, line);
                }
            }
        }
        Ok(())
    }

    /// One line of a headerless list: `value` or `value # description`.
    fn list_line(&mut self, file: &str, no: usize, line: &str) {
        let (value, comment) = match line.split_once(" #") {
            Some((v, c)) => (v.trim(), Some(c.trim()).filter(|c| !c.is_empty())),
            None => (line, None),
        };
        let meta = Meta {
            line: Some(no),
            description: comment.map(str::to_string),
            ..Meta::default()
        };
        self.add_value(file, Want::Any, value, &meta);
    }

    /// Normalises and adds one value, reporting what goes wrong with the row's line or indicator id.
    fn add_value(&mut self, file: &str, want: Want, value: &str, meta: &Meta) -> bool {
        match normalize(want, value) {
            Ok(norm) => {
                if let Some(w) = &norm.warning {
                    let w = w.clone();
                    self.problem(
                        IntelProblemKind::Warning,
                        file,
                        meta.line,
                        meta.stix_id.as_deref(),
                        w,
                    );
                }
                self.insert(file, norm, Some(value), meta);
                true
            }
            Err(e) => {
                self.stats.invalid += 1;
                self.problem(
                    IntelProblemKind::Invalid,
                    file,
                    meta.line,
                    meta.stix_id.as_deref(),
                    e,
                );
                false
            }
        }
    }

    fn csv_row(
        &mut self,
        file: &str,
        no: usize,
        line: &str,
        delim: u8,
        h: &Header,
        cells: &mut Vec<String>,
    ) {
        let invalid = |this: &mut Self, msg: String| {
            this.stats.invalid += 1;
            this.problem(IntelProblemKind::Invalid, file, Some(no), None, msg);
        };
        if let Err(e) = split_csv(line, delim, cells) {
            return invalid(self, e);
        }
        if cells.len() > h.columns {
            return invalid(
                self,
                format!(
                    "{} fields, the header has {} (an unquoted {:?} in a value?)",
                    cells.len(),
                    h.columns,
                    delim as char
                ),
            );
        }
        let cell = |i: Option<usize>| {
            i.and_then(|i| cells.get(i))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let Some(value) = cell(Some(h.value)) else {
            return invalid(self, "the value column is empty".into());
        };
        let want = match cell(h.kind) {
            Some(t) => match want_of_type(t) {
                Some(w) => w,
                None => {
                    self.stats.unsupported += 1;
                    let msg = format!("indicator type {t:?} is not matched (ip, cidr, domain, url, md5, sha1, sha256, hash are)");
                    self.problem(IntelProblemKind::Unsupported, file, Some(no), None, msg);
                    return;
                }
            },
            None => h.value_want,
        };
        let mut meta = Meta {
            line: Some(no),
            name: cell(h.name).map(str::to_string),
            description: cell(h.description).map(str::to_string),
            provider: cell(h.provider).map(str::to_string),
            labels: cell(h.labels)
                .map(|l| {
                    l.split([';', '|'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            ..Meta::default()
        };
        if let Some(c) = cell(h.confidence) {
            match parse_confidence(c) {
                Some(c) => meta.confidence = Some(c),
                None => {
                    return invalid(
                        self,
                        format!("confidence {c:?} is not 0-100 nor low/medium/high"),
                    )
                }
            }
        }
        if let Some(s) = cell(h.severity) {
            match parse_severity(s) {
                Some(l) => meta.severity = Some(l),
                None => {
                    return invalid(
                        self,
                        format!(
                            "severity {s:?} is not informational, low, medium, high or critical"
                        ),
                    )
                }
            }
        }
        if let Some(u) = cell(h.valid_until) {
            match parse_time(u) {
                Some(t) if t <= self.now => {
                    self.stats.expired += 1;
                    return;
                }
                Some(t) => meta.valid_until = Some(t),
                None => {
                    return invalid(
                        self,
                        format!("valid_until {u:?} is not an RFC 3339 time or a date"),
                    )
                }
            }
        }
        let value = value.to_string();
        self.add_value(file, want, &value, &meta);
    }

    /// Loads a STIX 2.1 bundle (or a TAXII envelope, or one indicator object) from text. Text that is not
    /// JSON, or JSON that is no bundle, is an error; problems of single indicators are reported with their
    /// id.
    pub fn add_stix(&mut self, file: &str, text: &str) -> Result<(), IntelError> {
        self.stats.files += 1;
        let format_err = |message: String| IntelError::Format {
            file: file.to_string(),
            message,
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format_err(format!(
                "not JSON: {e} (a STIX bundle is expected of .json files)"
            ))
        })?;
        let single;
        let objects: &[serde_json::Value] = match &doc {
            serde_json::Value::Object(m) => match m.get("objects") {
                Some(serde_json::Value::Array(a)) => a,
                Some(_) => return Err(format_err("\"objects\" is not an array".into())),
                None if m.get("type").and_then(|t| t.as_str()) == Some("indicator") => {
                    single = [doc.clone()];
                    &single
                }
                None => {
                    return Err(format_err(
                        "not a STIX bundle: no \"objects\" array (nor an indicator object)".into(),
                    ))
                }
            },
            serde_json::Value::Array(a) => a,
            _ => return Err(format_err("not a STIX bundle: not a JSON object".into())),
        };
        // The latest version (by `modified`) of each indicator id wins.
        let mut latest: FxHashMap<&str, (i64, usize)> = FxHashMap::default();
        for (i, o) in objects.iter().enumerate() {
            if o.get("type").and_then(|t| t.as_str()) != Some("indicator") {
                continue;
            }
            if let Some(id) = o.get("id").and_then(|v| v.as_str()) {
                let modified = ["modified", "created"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(|v| v.as_str()).and_then(parse_time))
                    .unwrap_or(i64::MIN);
                let e = latest.entry(id).or_insert((modified, i));
                if modified >= e.0 {
                    *e = (modified, i);
                }
            }
        }
        for (i, o) in objects.iter().enumerate() {
            if o.get("type").and_then(|t| t.as_str()) != Some("indicator") {
                continue;
            }
            self.stats.stix_indicators += 1;
            let id = o.get("id").and_then(|v| v.as_str());
            if let Some(id) = id {
                if latest.get(id).is_some_and(|&(_, j)| j != i) {
                    self.stats.superseded += 1;
                    continue;
                }
            }
            self.stix_indicator(file, i, id, o);
        }
        Ok(())
    }

    fn stix_indicator(
        &mut self,
        file: &str,
        index: usize,
        id: Option<&str>,
        o: &serde_json::Value,
    ) {
        let label = id
            .map(str::to_string)
            .unwrap_or_else(|| format!("objects[{index}] (an indicator without an id)"));
        let report = |this: &mut Self, kind: IntelProblemKind, msg: String| {
            match kind {
                IntelProblemKind::Invalid => this.stats.invalid += 1,
                IntelProblemKind::Unsupported => this.stats.unsupported += 1,
                IntelProblemKind::Warning => {}
            }
            this.problem(kind, file, None, Some(&label), msg);
        };
        let s = |k: &str| o.get(k).and_then(|v| v.as_str());
        if o.get("revoked").and_then(|v| v.as_bool()) == Some(true) {
            self.stats.revoked += 1;
            return;
        }
        let mut meta = Meta {
            stix_id: Some(label.clone()),
            name: s("name").map(str::to_string),
            description: s("description").map(str::to_string),
            ..Meta::default()
        };
        for k in ["labels", "indicator_types"] {
            for l in o
                .get(k)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
            {
                if !meta.labels.iter().any(|x| x == l) {
                    meta.labels.push(l.to_string());
                }
            }
        }
        if let Some(c) = o.get("confidence") {
            match c.as_u64().filter(|c| *c <= 100) {
                Some(c) => meta.confidence = Some(c as u8),
                None => {
                    return report(
                        self,
                        IntelProblemKind::Invalid,
                        format!("confidence {c} is not an integer 0-100"),
                    )
                }
            }
        }
        if let Some(u) = o.get("valid_until") {
            match u.as_str().and_then(parse_time) {
                Some(t) if t <= self.now => {
                    self.stats.expired += 1;
                    return;
                }
                Some(t) => meta.valid_until = Some(t),
                None => {
                    return report(
                        self,
                        IntelProblemKind::Invalid,
                        format!("valid_until {u} is not an RFC 3339 time"),
                    )
                }
            }
        }
        if let Some(f) = o.get("valid_from") {
            match f.as_str().and_then(parse_time) {
                Some(t) if t > self.now => {
                    self.stats.not_yet_valid += 1;
                    return;
                }
                Some(_) => {}
                None => {
                    return report(
                        self,
                        IntelProblemKind::Invalid,
                        format!("valid_from {f} is not an RFC 3339 time"),
                    )
                }
            }
        }
        // STIX 2.0 indicators have no pattern_type: their patterns are STIX patterns.
        match s("pattern_type") {
            None | Some("stix") => {}
            Some(t) => {
                return report(
                    self,
                    IntelProblemKind::Unsupported,
                    format!("pattern_type {t:?}: only STIX patterns are matched"),
                )
            }
        }
        let Some(pat) = s("pattern") else {
            return report(
                self,
                IntelProblemKind::Invalid,
                "no \"pattern\" string".into(),
            );
        };
        let node = match pattern::parse(pat) {
            Ok(n) => n,
            Err(e) => {
                return report(
                    self,
                    IntelProblemKind::Invalid,
                    format!("pattern {pat:?}: {e}"),
                )
            }
        };
        let mut tests = Vec::new();
        let mut unsupported = Vec::new();
        pattern::flatten(&node, pat, &mut tests, &mut unsupported);
        let mut loaded = 0usize;
        let mut invalid = Vec::new();
        for t in tests {
            match t.values(pat) {
                Err(why) => unsupported.push(why),
                Ok((want, values)) => {
                    for v in values {
                        match normalize(want, v) {
                            Ok(norm) => {
                                if let Some(w) = &norm.warning {
                                    let w = w.clone();
                                    report(self, IntelProblemKind::Warning, w);
                                }
                                self.insert(file, norm, Some(v), &meta);
                                loaded += 1;
                            }
                            Err(e) => invalid.push(e),
                        }
                    }
                }
            }
        }
        let what = |v: &[String]| v.join("; ");
        match (loaded, unsupported.is_empty(), invalid.is_empty()) {
            (_, true, true) => {}
            (0, false, _) => report(
                self,
                IntelProblemKind::Unsupported,
                format!(
                    "nothing in the pattern can be matched: {}",
                    what(&unsupported)
                ),
            ),
            (0, true, false) => report(self, IntelProblemKind::Invalid, what(&invalid)),
            _ => {
                self.stats.partial += 1;
                let mut parts = unsupported;
                parts.extend(invalid);
                report(
                    self,
                    IntelProblemKind::Warning,
                    format!(
                        "loaded {loaded} value{} of the pattern, left out: {}",
                        if loaded == 1 { "" } else { "s" },
                        what(&parts)
                    ),
                );
            }
        }
    }

    /// The matcher.
    pub fn build(self) -> Result<Intel, IntelError> {
        let mut v4: Vec<_> = self.v4.into_iter().collect();
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut v6: Vec<_> = self.v6.into_iter().collect();
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut pats: Vec<Arc<Indicator>> = Vec::new();
        pats.extend(self.domains.values().cloned());
        pats.extend(self.hashes.values().cloned());
        // Fixed order, so that matches come out the same on every run.
        pats.sort_by(|a, b| a.value.cmp(&b.value));
        let text = if pats.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(pats.iter().map(|p| p.value.as_bytes()))
                .map_err(|e| IntelError::Matcher(e.to_string()))?;
            Some(TextMatcher { ac, pats })
        };
        // One bit per /16 holding any IPv4 indicator (blocks are /8 or narrower: at most 256 bits each).
        let mut v4_any = vec![0u64; 1024].into_boxed_slice();
        for (len, m) in &v4 {
            let span = 1usize << 16usize.saturating_sub(*len as usize);
            for net in m.keys() {
                let first = (*net >> 16) as usize;
                for b in first..(first + span).min(65_536) {
                    v4_any[b / 64] |= 1 << (b % 64);
                }
            }
        }
        Ok(Intel {
            v4,
            v4_any,
            v6,
            domains: self.domains,
            hashes: self.hashes,
            text,
            stats: self.stats,
            problems: self.problems,
        })
    }
}

fn insert_new<K: std::hash::Hash + Eq>(
    map: &mut FxHashMap<K, Arc<Indicator>>,
    k: K,
    v: Arc<Indicator>,
) -> bool {
    match map.entry(k) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(v);
            true
        }
    }
}

/// The file name part of a path, as feeds are named in alerts.
fn feed_name(file: &str) -> String {
    Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file)
        .to_string()
}

/// The columns of a CSV header.
#[derive(Debug)]
struct Header {
    columns: usize,
    value: usize,
    value_want: Want,
    kind: Option<usize>,
    name: Option<usize>,
    description: Option<usize>,
    provider: Option<usize>,
    confidence: Option<usize>,
    severity: Option<usize>,
    labels: Option<usize>,
    valid_until: Option<usize>,
}

impl Header {
    /// A header, if some cell names a value column.
    fn from_cells(cells: &[String]) -> Option<Header> {
        let mut h = Header {
            columns: cells.len(),
            value: usize::MAX,
            value_want: Want::Any,
            kind: None,
            name: None,
            description: None,
            provider: None,
            confidence: None,
            severity: None,
            labels: None,
            valid_until: None,
        };
        let mut value_rank = 0;
        for (i, c) in cells.iter().enumerate() {
            let c = c.trim().to_ascii_lowercase().replace([' ', '-'], "_");
            let set = |slot: &mut Option<usize>| {
                slot.get_or_insert(i);
            };
            match c.as_str() {
                "value" | "indicator" | "ioc" | "observable" | "ioc_value" | "indicator_value" => {
                    if value_rank < 2 {
                        (h.value, h.value_want, value_rank) = (i, Want::Any, 2);
                    }
                }
                "type" | "indicator_type" | "ioc_type" | "kind" | "observable_type" => {
                    set(&mut h.kind)
                }
                "name" | "title" => set(&mut h.name),
                "description" | "desc" | "comment" | "comments" | "details" => {
                    set(&mut h.description)
                }
                "source" | "feed" | "provider" | "reporter" => set(&mut h.provider),
                "confidence" | "score" | "confidence_level" => set(&mut h.confidence),
                "severity" | "level" => set(&mut h.severity),
                "labels" | "label" | "tags" | "tag" | "category" | "categories" => {
                    set(&mut h.labels)
                }
                "valid_until" | "expires" | "expiration" | "expiry" | "expires_at" => {
                    set(&mut h.valid_until)
                }
                other => {
                    // A column named after a type holds values of that type.
                    if let (0, Some(w)) = (value_rank, want_of_type(other)) {
                        (h.value, h.value_want, value_rank) = (i, w, 1);
                    }
                }
            }
        }
        (value_rank > 0).then_some(h)
    }
}

/// Splits one CSV line into `out` (quoted fields with `""` escapes; surrounding spaces trimmed).
fn split_csv(line: &str, delim: u8, out: &mut Vec<String>) -> Result<(), String> {
    out.clear();
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i < b.len() && b[i] == b'"' {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                let Some(rel) = line[j..].find('"') else {
                    return Err(format!(
                        "unterminated quoted field starting at column {}",
                        i + 1
                    ));
                };
                s.push_str(&line[j..j + rel]);
                j += rel + 1;
                if b.get(j) == Some(&b'"') {
                    s.push('"');
                    j += 1;
                } else {
                    break;
                }
            }
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            out.push(s);
            match b.get(j) {
                None => return Ok(()),
                Some(&c) if c == delim => i = j + 1,
                Some(_) => return Err(format!("text after the closing quote at column {}", j + 1)),
            }
        } else {
            let end = b[i..]
                .iter()
                .position(|&c| c == delim)
                .map_or(b.len(), |p| i + p);
            out.push(line[i..end].trim().to_string());
            if end == b.len() {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

/// What a CSV `type` cell (or a column name) means.
fn want_of_type(t: &str) -> Option<Want> {
    let t = t.trim().to_ascii_lowercase().replace(['_', ' '], "-");
    Some(match t.as_str() {
        "ip" | "ip-addr" | "ip-address" | "ipaddress" | "address" | "addr" | "ip-dst"
        | "ip-src" | "dst-ip" | "src-ip" | "cidr" | "network" | "subnet" | "netblock"
        | "ip-range" | "ip-network" => Want::Ip,
        "ipv4" | "ipv4-addr" | "ipv4-address" | "ipv4-cidr" | "ipv4-net" => Want::Ipv4,
        "ipv6" | "ipv6-addr" | "ipv6-address" | "ipv6-cidr" | "ipv6-net" => Want::Ipv6,
        "domain" | "domain-name" | "domainname" | "hostname" | "host" | "fqdn" | "dns" => {
            Want::Domain
        }
        "url" | "uri" | "link" => Want::Url,
        "md5" | "file-md5" => Want::Hash(Some(IndicatorKind::Md5)),
        "sha1" | "sha-1" | "file-sha1" => Want::Hash(Some(IndicatorKind::Sha1)),
        "sha256" | "sha-256" | "file-sha256" => Want::Hash(Some(IndicatorKind::Sha256)),
        "hash" | "file-hash" | "filehash" | "checksum" => Want::Hash(None),
        _ => return None,
    })
}

fn parse_confidence(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "none" => Some(0),
        "low" => Some(15),
        "medium" | "med" => Some(50),
        "high" => Some(85),
        n => n.parse::<u8>().ok().filter(|c| *c <= 100),
    }
}

fn parse_severity(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "info" => Some(Level::Informational),
        "crit" => Some(Level::Critical),
        "med" => Some(Level::Medium),
        other => other.parse().ok(),
    }
}

/// An RFC 3339 time, or a date (`2025-01-31`, taken as its midnight UTC).
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = quarry_model::time::parse_rfc3339(s) {
        return Some(t);
    }
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if (1..=12).contains(&m) && d >= 1 && d <= quarry_model::time::days_in_month(y as i64, m) {
            return quarry_model::time::from_civil(y as i64, m, d, 0, 0, 0, 0);
        }
    }
    None
}

// ------------------------------------------------------------------------------------------------
// Normalising values

/// Restores defanged forms: `[.]`, `(.)`, `{.}`, `[dot]`, `[:]`, `hxxp`.
fn refang(s: &str) -> Cow<'_, str> {
    if !s.contains(['[', '(', '{']) && !s.contains("hxxp") && !s.contains("HXXP") {
        return Cow::Borrowed(s);
    }
    let mut out = s
        .replace("[.]", ".")
        .replace("(.)", ".")
        .replace("{.}", ".")
        .replace("[dot]", ".")
        .replace("[:]", ":");
    for (from, to) in [
        ("hxxps", "https"),
        ("hxxp", "http"),
        ("HXXPS", "https"),
        ("HXXP", "http"),
    ] {
        if out.starts_with(from) {
            out = format!("{to}{}", &out[from.len()..]);
            break;
        }
    }
    Cow::Owned(out)
}

fn normalize(want: Want, raw: &str) -> Result<Norm, String> {
    let s = refang(raw.trim());
    let s = s.as_ref();
    if s.is_empty() {
        return Err("empty value".into());
    }
    match want {
        Want::Any => infer(s),
        Want::Ip => {
            ip_or_cidr(s)?.ok_or_else(|| format!("{s:?} is not an IP address or CIDR block"))
        }
        Want::Ipv4 => match ip_or_cidr(s)? {
            Some(n) if matches!(n.key, Key::V4(..)) => Ok(n),
            _ => Err(format!("{s:?} is not an IPv4 address or CIDR block")),
        },
        Want::Ipv6 => match ip_or_cidr(s)? {
            Some(n) if matches!(n.key, Key::V6(..)) => Ok(n),
            _ => Err(format!("{s:?} is not an IPv6 address or CIDR block")),
        },
        Want::Domain | Want::Host => match ip_or_cidr(s)? {
            Some(n) => Ok(n),
            None => domain(s),
        },
        Want::Url => url(s),
        Want::Hash(kind) => hash(s, kind),
    }
}

/// The type of an untyped value: address, CIDR block, hash, URL or domain.
fn infer(s: &str) -> Result<Norm, String> {
    let s = refang(s);
    let s = s.as_ref();
    // An address with a bad prefix is an error saying why, rather than "cannot tell".
    if let Some(n) = ip_or_cidr(s)? {
        return Ok(n);
    }
    let bare = strip_hash_prefix(s);
    if matches!(bare.len(), 32 | 40 | 64) && bare.bytes().all(|c| c.is_ascii_hexdigit()) {
        return hash(s, None);
    }
    if s.contains("://") {
        return url(s);
    }
    domain(s).map_err(|_| {
        format!("cannot tell what {s:?} is (not an IP address, CIDR block, hash, URL or domain)")
    })
}

/// An address or a block; `Ok(None)` when `s` is neither, `Err` for an address with a bad prefix.
fn ip_or_cidr(s: &str) -> Result<Option<Norm>, String> {
    if s.contains('/') {
        return cidr(s);
    }
    let Some(ip) = parse_ip(s) else {
        return Ok(None);
    };
    let warning =
        special(ip).map(|what| format!("{ip} is a {what} address: it will match internal traffic"));
    Ok(Some(match ip {
        IpAddr::V4(a) => Norm {
            key: Key::V4(u32::from(a), 32),
            kind: IndicatorKind::Ipv4,
            value: a.to_string(),
            warning,
        },
        IpAddr::V6(a) => Norm {
            key: Key::V6(u128::from(a), 128),
            kind: IndicatorKind::Ipv6,
            value: a.to_string(),
            warning,
        },
    }))
}

/// `addr/len`: `Ok(None)` when the address part is no address, `Err` when the prefix is bad.
fn cidr(s: &str) -> Result<Option<Norm>, String> {
    let Some((a, l)) = s.split_once('/') else {
        return Ok(None);
    };
    let Some(ip) = parse_ip_keep_mapped(a) else {
        return Ok(None);
    };
    let len: u8 = l
        .parse()
        .map_err(|_| format!("{s:?}: the prefix length {l:?} is not a number"))?;
    // An IPv4-mapped block (::ffff:a.b.c.d/n with n >= 96) is an IPv4 block.
    let (ip, len) = match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && len >= 96 => (
            IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
            len - 96,
        ),
        other => (other, len),
    };
    let special = special(ip);
    let (key, kind, value, host_bits) = match ip {
        IpAddr::V4(a) => {
            if len > 32 {
                return Err(format!("{s:?}: an IPv4 prefix is at most 32"));
            }
            if len < MIN_PREFIX_V4 {
                return Err(format!(
                    "{s:?}: a block broader than /{MIN_PREFIX_V4} is refused (it would match too much)"
                ));
            }
            let bits = u32::from(a);
            let net = bits & mask_v4(len);
            let value = if len == 32 {
                a.to_string()
            } else {
                format!("{}/{len}", Ipv4Addr::from(net))
            };
            let kind = if len == 32 {
                IndicatorKind::Ipv4
            } else {
                IndicatorKind::Ipv4Cidr
            };
            (Key::V4(net, len), kind, value, net != bits)
        }
        IpAddr::V6(a) => {
            if len > 128 {
                return Err(format!("{s:?}: an IPv6 prefix is at most 128"));
            }
            if len < MIN_PREFIX_V6 {
                return Err(format!(
                    "{s:?}: a block broader than /{MIN_PREFIX_V6} is refused (it would match too much)"
                ));
            }
            let bits = u128::from(a);
            let net = bits & mask_v6(len);
            let value = if len == 128 {
                a.to_string()
            } else {
                format!("{}/{len}", Ipv6Addr::from(net))
            };
            let kind = if len == 128 {
                IndicatorKind::Ipv6
            } else {
                IndicatorKind::Ipv6Cidr
            };
            (Key::V6(net, len), kind, value, net != bits)
        }
    };
    let mut warnings = Vec::new();
    if host_bits {
        warnings.push(format!("{s:?} has host bits set; taken as {value}"));
    }
    if let Some(what) = special {
        warnings.push(format!(
            "{value} is a {what} range: it will match internal traffic"
        ));
    }
    Ok(Some(Norm {
        key,
        kind,
        value,
        warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
    }))
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - len as u32).unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - len as u32).unwrap_or(0)
}

/// Private, loopback, link-local or unspecified: what kind of special address `ip` is.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) if a.is_private() => Some("private"),
        IpAddr::V4(a) if a.is_loopback() => Some("loopback"),
        IpAddr::V4(a) if a.is_link_local() => Some("link-local"),
        IpAddr::V4(a) if a.is_unspecified() => Some("unspecified"),
        IpAddr::V6(a) if a.is_loopback() => Some("loopback"),
        IpAddr::V6(a) if a.is_unspecified() => Some("unspecified"),
        IpAddr::V6(a) if (a.segments()[0] & 0xfe00) == 0xfc00 => Some("unique local (private)"),
        IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80 => Some("link-local"),
        _ => None,
    }
}

/// An address as events write it: IPv4, IPv6 (brackets and a `%zone` allowed), IPv4-mapped IPv6 read as
/// IPv4. Allocates nothing.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    match parse_ip_keep_mapped(s)? {
        IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }),
        v4 => Some(v4),
    }
}

fn parse_ip_keep_mapped(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 64 {
        return None;
    }
    if !s.contains(':') {
        // Fast reject of anything that is not digits and dots.
        if !b[0].is_ascii_digit() {
            return None;
        }
        return s.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    let s = s.split_once('%').map_or(s, |(a, _)| a);
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn domain(s: &str) -> Result<Norm, String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let d = d.strip_prefix("*.").unwrap_or(&d).to_string();
    if !d.is_ascii() {
        return Err(format!(
            "{s:?}: non-ASCII domains must be given in their punycode (xn--) form"
        ));
    }
    if d.len() > 253 {
        return Err(format!("{s:?}: a domain is at most 253 characters"));
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "{s:?}: a domain indicator needs at least two labels (a bare name or top-level domain would match too much)"
        ));
    }
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return Err(format!(
                "{s:?}: a label is empty or longer than 63 characters"
            ));
        }
        if !l
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(format!(
                "{s:?}: a domain holds only letters, digits, '-' and '_' between dots"
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|t| t.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("{s:?} is neither a valid IP address nor a domain"));
    }
    Ok(Norm {
        key: Key::Domain(d.clone()),
        kind: IndicatorKind::Domain,
        value: d,
        warning: None,
    })
}

/// A URL's host, as an address or a domain.
fn url(s: &str) -> Result<Norm, String> {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h).unwrap_or(v6)
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h,
            _ => host_port,
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?}: a URL without a host"));
    }
    match ip_or_cidr(host)? {
        Some(n) => Ok(n),
        None => domain(host).map_err(|e| format!("URL {s:?}: {e}")),
    }
}

/// A hash without an `md5:` / `sha1:` / `sha256:` prefix.
fn strip_hash_prefix(s: &str) -> &str {
    s.split_once(':')
        .filter(|(alg, _)| {
            ["md5", "sha1", "sha-1", "sha256", "sha-256"]
                .iter()
                .any(|a| alg.eq_ignore_ascii_case(a))
        })
        .map_or(s, |(_, v)| v)
}

fn hash(s: &str, kind: Option<IndicatorKind>) -> Result<Norm, String> {
    let h = strip_hash_prefix(s.trim()).to_ascii_lowercase();
    if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not a hexadecimal hash"));
    }
    let by_len = match h.len() {
        32 => IndicatorKind::Md5,
        40 => IndicatorKind::Sha1,
        64 => IndicatorKind::Sha256,
        n => {
            return Err(format!(
                "{s:?}: {n} hex digits is no MD5 (32), SHA-1 (40) or SHA-256 (64) hash"
            ))
        }
    };
    if let Some(k) = kind.filter(|k| *k != by_len) {
        return Err(format!(
            "{s:?} is {} hex digits long, not a {} hash",
            h.len(),
            k.as_str()
        ));
    }
    Ok(Norm {
        key: Key::Hash(h.clone()),
        kind: by_len,
        value: h,
        warning: None,
    })
}

// ------------------------------------------------------------------------------------------------
// STIX patterns

mod pattern {
    //! The part of STIX patterning (STIX 2.1 section 9) a single event can be held against: comparisons
    //! joined by `OR`. The whole grammar is parsed so that anything else is recognised and named.

    use super::{IndicatorKind, Want};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Op {
        Eq,
        Neq,
        Lt,
        Le,
        Gt,
        Ge,
        In,
        Like,
        Matches,
        IsSubset,
        IsSuperset,
    }

    impl Op {
        fn name(self) -> &'static str {
            match self {
                Op::Eq => "=",
                Op::Neq => "!=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::In => "IN",
                Op::Like => "LIKE",
                Op::Matches => "MATCHES",
                Op::IsSubset => "ISSUBSET",
                Op::IsSuperset => "ISSUPERSET",
            }
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        LBrack,
        RBrack,
        LParen,
        RParen,
        Comma,
        Cmp(Op),
        /// A string literal, unescaped.
        Str(String),
        /// Any other literal: numbers, `b'..'`, `h'..'`, `t'..'`, booleans.
        Lit,
        /// A keyword, upper-cased.
        Word(String),
        /// `object-type:path.to.'property'`.
        Path(String, Vec<String>),
    }

    /// A literal on the right of a comparison.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Lit {
        Str(String),
        Other,
    }

    /// A comparison.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) struct Test {
        object: String,
        path: Vec<String>,
        not: bool,
        op: Op,
        values: Vec<Lit>,
        span: (usize, usize),
    }

    /// A parsed pattern.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Node {
        /// Any of these (observation or comparison `OR`).
        Any(Vec<Node>),
        /// `AND` or `FOLLOWEDBY`: several things at once or in order.
        All {
            join: &'static str,
            span: (usize, usize),
        },
        /// An observation with `WITHIN`, `REPEATS` or `START`/`STOP`.
        Qualified {
            what: &'static str,
            span: (usize, usize),
        },
        /// A comparison.
        Test(Test),
    }

    type Spanned = (Node, usize, usize);

    fn lex(p: &str) -> Result<Vec<(Tok, usize, usize)>, String> {
        let b = p.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let start = i;
            let tok = match c {
                _ if c.is_ascii_whitespace() => {
                    i += 1;
                    continue;
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let end = p[i + 2..]
                        .find("*/")
                        .ok_or_else(|| format!("unterminated comment at offset {i}"))?;
                    i += 2 + end + 2;
                    continue;
                }
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    i = p[i..].find('\n').map_or(b.len(), |n| i + n);
                    continue;
                }
                b'[' => {
                    i += 1;
                    Tok::LBrack
                }
                b']' => {
                    i += 1;
                    Tok::RBrack
                }
                b'(' => {
                    i += 1;
                    Tok::LParen
                }
                b')' => {
                    i += 1;
                    Tok::RParen
                }
                b',' => {
                    i += 1;
                    Tok::Comma
                }
                b'\'' => {
                    let (s, next) = string(p, i)?;
                    i = next;
                    Tok::Str(s)
                }
                b'=' => {
                    i += if b.get(i + 1) == Some(&b'=') { 2 } else { 1 };
                    Tok::Cmp(Op::Eq)
                }
                b'!' if b.get(i + 1) == Some(&b'=') => {
                    i += 2;
                    Tok::Cmp(Op::Neq)
                }
                b'<' => match b.get(i + 1) {
                    Some(b'=') => {
                        i += 2;
                        Tok::Cmp(Op::Le)
                    }
                    Some(b'>') => {
                        i += 2;
                        Tok::Cmp(Op::Neq)
                    }
                    _ => {
                        i += 1;
                        Tok::Cmp(Op::Lt)
                    }
                },
                b'>' => {
                    if b.get(i + 1) == Some(&b'=') {
                        i += 2;
                        Tok::Cmp(Op::Ge)
                    } else {
                        i += 1;
                        Tok::Cmp(Op::Gt)
                    }
                }
                b'+' | b'-' | b'.' | b'0'..=b'9' => {
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                        i += 1;
                    }
                    Tok::Lit
                }
                b'b' | b'h' | b't' if b.get(i + 1) == Some(&b'\'') => {
                    let (_, next) = string(p, i + 1)?;
                    i = next;
                    Tok::Lit
                }
                _ if c.is_ascii_alphabetic() || c == b'_' => {
                    while i < b.len()
                        && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-')
                    {
                        i += 1;
                    }
                    let word = &p[start..i];
                    if b.get(i) == Some(&b':') {
                        i += 1;
                        let (path, next) = object_path(p, i)?;
                        i = next;
                        Tok::Path(word.to_ascii_lowercase(), path)
                    } else {
                        let w = word.to_ascii_uppercase();
                        if w == "TRUE" || w == "FALSE" {
                            Tok::Lit
                        } else {
                            Tok::Word(w)
                        }
                    }
                }
                _ => {
                    let ch = p[i..].chars().next().unwrap_or('?');
                    return Err(format!("unexpected {ch:?} at offset {i}"));
                }
            };
            out.push((tok, start, i));
        }
        Ok(out)
    }

    /// A quoted string starting at `b[at] == '\''`: its text and the offset after it.
    fn string(p: &str, at: usize) -> Result<(String, usize), String> {
        let b = p.as_bytes();
        let mut s = String::new();
        let mut i = at + 1;
        let mut run = i;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    s.push_str(&p[run..i]);
                    match b.get(i + 1) {
                        Some(&c @ (b'\'' | b'\\')) => s.push(c as char),
                        _ => {
                            return Err(format!(
                                "bad escape at offset {i}: only \\' and \\\\ are allowed"
                            ))
                        }
                    }
                    i += 2;
                    run = i;
                }
                b'\'' => {
                    s.push_str(&p[run..i]);
                    return Ok((s, i + 1));
                }
                _ => i += 1,
            }
        }
        Err(format!("unterminated string starting at offset {at}"))
    }

    /// The property path after `type:`: identifiers or quoted keys joined by dots, `[n]` / `[*]` indices.
    fn object_path(p: &str, mut i: usize) -> Result<(Vec<String>, usize), String> {
        let b = p.as_bytes();
        let mut path = Vec::new();
        let component = |i: usize| -> Result<(String, usize), String> {
            if b.get(i) == Some(&b'\'') {
                return string(p, i);
            }
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
                j += 1;
            }
            if j == i {
                return Err(format!("an object path lacks a property at offset {i}"));
            }
            Ok((p[i..j].to_string(), j))
        };
        let (c, next) = component(i)?;
        path.push(c);
        i = next;
        loop {
            match b.get(i) {
                Some(b'.') => {
                    let (c, next) = component(i + 1)?;
                    path.push(c);
                    i = next;
                }
                Some(b'[') => {
                    let close = p[i..].find(']').map(|n| i + n);
                    match close {
                        Some(end)
                            if end > i + 1
                                && (&p[i + 1..end] == "*"
                                    || p[i + 1..end].bytes().all(|c| c.is_ascii_digit())) =>
                        {
                            path.push(p[i..=end].to_string());
                            i = end + 1;
                        }
                        _ => break,
                    }
                }
                _ => break,
            }
        }
        Ok((path, i))
    }

    struct Parser {
        toks: Vec<(Tok, usize, usize)>,
        pos: usize,
        len: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.pos).map(|t| &t.0)
        }

        fn word(&self, w: &str) -> bool {
            matches!(self.peek(), Some(Tok::Word(x)) if x == w)
        }

        fn here(&self) -> usize {
            self.toks.get(self.pos).map_or(self.len, |t| t.1)
        }

        fn last_end(&self) -> usize {
            self.pos
                .checked_sub(1)
                .and_then(|p| self.toks.get(p))
                .map_or(0, |t| t.2)
        }

        fn describe(&self) -> String {
            match self.toks.get(self.pos) {
                None => "the end of the pattern".into(),
                Some((t, s, _)) => format!("{} at offset {s}", name(t)),
            }
        }

        fn expect(&mut self, t: Tok) -> Result<(), String> {
            if self.peek() == Some(&t) {
                self.pos += 1;
                Ok(())
            } else {
                Err(format!("expected {}, found {}", name(&t), self.describe()))
            }
        }

        /// `a JOIN b JOIN c` at one precedence level.
        fn joined(
            &mut self,
            join: &'static str,
            sub: fn(&mut Parser) -> Result<Spanned, String>,
        ) -> Result<Spanned, String> {
            let first = sub(self)?;
            if !self.word(join) {
                return Ok(first);
            }
            let (start, mut end) = (first.1, first.2);
            let mut items = vec![first.0];
            while self.word(join) {
                self.pos += 1;
                let (n, _, e) = sub(self)?;
                items.push(n);
                end = e;
            }
            let node = if join == "OR" {
                Node::Any(items)
            } else {
                Node::All {
                    join,
                    span: (start, end),
                }
            };
            Ok((node, start, end))
        }

        fn observations(&mut self) -> Result<Spanned, String> {
            self.joined("FOLLOWEDBY", |p| {
                p.joined("OR", |p| p.joined("AND", Parser::observation))
            })
        }

        fn observation(&mut self) -> Result<Spanned, String> {
            let start = self.here();
            let mut node = match self.peek() {
                Some(Tok::LBrack) => {
                    self.pos += 1;
                    let (n, _, _) = self.comparisons()?;
                    self.expect(Tok::RBrack)?;
                    n
                }
                Some(Tok::LParen) => {
                    self.pos += 1;
                    let (n, _, _) = self.observations()?;
                    self.expect(Tok::RParen)?;
                    n
                }
                _ => {
                    return Err(format!(
                        "expected '[' or '(' to open an observation, found {}",
                        self.describe()
                    ))
                }
            };
            loop {
                let what = if self.word("WITHIN") {
                    self.pos += 1;
                    self.expect(Tok::Lit)?;
                    self.keyword("SECONDS")?;
                    "WITHIN"
                } else if self.word("REPEATS") {
                    self.pos += 1;
                    self.expect(Tok::Lit)?;
                    self.keyword("TIMES")?;
                    "REPEATS"
                } else if self.word("START") {
                    self.pos += 1;
                    self.literal()?;
                    self.keyword("STOP")?;
                    self.literal()?;
                    "START/STOP"
                } else {
                    break;
                };
                node = Node::Qualified {
                    what,
                    span: (start, self.last_end()),
                };
            }
            Ok((node, start, self.last_end()))
        }

        fn keyword(&mut self, w: &str) -> Result<(), String> {
            if self.word(w) {
                self.pos += 1;
                Ok(())
            } else {
                Err(format!("expected {w}, found {}", self.describe()))
            }
        }

        fn comparisons(&mut self) -> Result<Spanned, String> {
            self.joined("OR", |p| p.joined("AND", Parser::comparison))
        }

        fn comparison(&mut self) -> Result<Spanned, String> {
            let start = self.here();
            if self.peek() == Some(&Tok::LParen) {
                self.pos += 1;
                let (n, _, _) = self.comparisons()?;
                self.expect(Tok::RParen)?;
                return Ok((n, start, self.last_end()));
            }
            if self.word("EXISTS") {
                // STIX 2.0's EXISTS: parsed so that it can be named.
                self.pos += 1;
                match self.peek() {
                    Some(Tok::Path(..)) => self.pos += 1,
                    _ => {
                        return Err(format!(
                            "expected an object path after EXISTS, found {}",
                            self.describe()
                        ))
                    }
                }
                let span = (start, self.last_end());
                return Ok((
                    Node::All {
                        join: "EXISTS",
                        span,
                    },
                    span.0,
                    span.1,
                ));
            }
            let Some(Tok::Path(object, path)) = self.peek().cloned() else {
                return Err(format!(
                    "expected an object path such as ipv4-addr:value, found {}",
                    self.describe()
                ));
            };
            self.pos += 1;
            let not = self.word("NOT");
            if not {
                self.pos += 1;
            }
            let op = match self.peek() {
                Some(Tok::Cmp(op)) => *op,
                Some(Tok::Word(w)) => match w.as_str() {
                    "IN" => Op::In,
                    "LIKE" => Op::Like,
                    "MATCHES" => Op::Matches,
                    "ISSUBSET" => Op::IsSubset,
                    "ISSUPERSET" => Op::IsSuperset,
                    _ => {
                        return Err(format!(
                            "expected a comparison operator, found {}",
                            self.describe()
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "expected a comparison operator, found {}",
                        self.describe()
                    ))
                }
            };
            self.pos += 1;
            let values = if op == Op::In {
                self.expect(Tok::LParen)?;
                let mut v = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    v.push(self.literal()?);
                    while self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                        v.push(self.literal()?);
                    }
                }
                self.expect(Tok::RParen)?;
                v
            } else {
                vec![self.literal()?]
            };
            let span = (start, self.last_end());
            Ok((
                Node::Test(Test {
                    object,
                    path,
                    not,
                    op,
                    values,
                    span,
                }),
                span.0,
                span.1,
            ))
        }

        fn literal(&mut self) -> Result<Lit, String> {
            match self.peek().cloned() {
                Some(Tok::Str(s)) => {
                    self.pos += 1;
                    Ok(Lit::Str(s))
                }
                Some(Tok::Lit) => {
                    self.pos += 1;
                    Ok(Lit::Other)
                }
                _ => Err(format!("expected a value, found {}", self.describe())),
            }
        }
    }

    fn name(t: &Tok) -> String {
        match t {
            Tok::LBrack => "'['".into(),
            Tok::RBrack => "']'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Cmp(op) => format!("'{}'", op.name()),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Lit => "a value".into(),
            Tok::Word(w) => w.clone(),
            Tok::Path(o, p) => format!("{o}:{}", p.join(".")),
        }
    }

    /// Parses a STIX pattern.
    pub(super) fn parse(p: &str) -> Result<Node, String> {
        let toks = lex(p)?;
        if toks.is_empty() {
            return Err("empty pattern".into());
        }
        let mut parser = Parser {
            toks,
            pos: 0,
            len: p.len(),
        };
        let (node, _, _) = parser.observations()?;
        if parser.pos < parser.toks.len() {
            return Err(format!("unexpected {}", parser.describe()));
        }
        Ok(node)
    }

    /// The comparisons of a pattern that are alternatives (under `OR` only); what else it holds goes to
    /// `unsupported`, quoted from the pattern.
    pub(super) fn flatten<'a>(
        node: &'a Node,
        src: &str,
        tests: &mut Vec<&'a Test>,
        unsupported: &mut Vec<String>,
    ) {
        let text = |span: (usize, usize)| src.get(span.0..span.1).unwrap_or(src).to_string();
        match node {
            Node::Any(items) => {
                for n in items {
                    flatten(n, src, tests, unsupported);
                }
            }
            Node::All { join, span } => unsupported.push(format!(
                "{join} cannot be matched on single events: {}",
                text(*span)
            )),
            Node::Qualified { what, span } => unsupported.push(format!(
                "the {what} qualifier cannot be matched on single events: {}",
                text(*span)
            )),
            Node::Test(t) => tests.push(t),
        }
    }

    impl Test {
        /// What the comparison checks and for which values; why not when it cannot be matched.
        pub(super) fn values<'a>(&'a self, src: &str) -> Result<(Want, Vec<&'a str>), String> {
            let text = src.get(self.span.0..self.span.1).unwrap_or(src);
            let path = self.path.join(".");
            let want = target(&self.object, &self.path).ok_or_else(|| {
                format!(
                    "{}:{path} is not matched (ipv4-addr, ipv6-addr, domain-name, url values and file hashes are): {text}",
                    self.object
                )
            })?;
            if self.not {
                return Err(format!("NOT cannot be matched: {text}"));
            }
            let ip = matches!(want, Want::Ipv4 | Want::Ipv6 | Want::Ip);
            match self.op {
                Op::Eq | Op::In => {}
                Op::IsSubset if ip => {}
                op => {
                    return Err(format!(
                        "the operator {} cannot be matched: {text}",
                        op.name()
                    ))
                }
            }
            let mut values = Vec::new();
            for v in &self.values {
                match v {
                    Lit::Str(s) => values.push(s.as_str()),
                    Lit::Other => return Err(format!("a value that is not a string: {text}")),
                }
            }
            if values.is_empty() {
                return Err(format!("an empty set: {text}"));
            }
            Ok((want, values))
        }
    }

    /// What an object path holds, if Quarry matches it.
    fn target(object: &str, path: &[String]) -> Option<Want> {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        Some(match (object, p.as_slice()) {
            ("ipv4-addr", ["value"]) => Want::Ipv4,
            ("ipv6-addr", ["value"]) => Want::Ipv6,
            ("domain-name", ["value"]) => Want::Domain,
            ("url", ["value"]) => Want::Url,
            ("network-traffic", ["src_ref" | "dst_ref", "value"]) => Want::Host,
            ("file" | "artifact", ["hashes", alg]) => {
                let alg = alg.to_ascii_uppercase().replace('-', "");
                Want::Hash(Some(match alg.as_str() {
                    "MD5" => IndicatorKind::Md5,
                    "SHA1" => IndicatorKind::Sha1,
                    "SHA256" => IndicatorKind::Sha256,
                    _ => return None,
                }))
            }
            _ => return None,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Matching

struct TextMatcher {
    ac: AhoCorasick,
    /// Pattern id → indicator.
    pats: Vec<Arc<Indicator>>,
}

/// Loaded indicators, ready to match events.
pub struct Intel {
    /// Per prefix length present, longest first: network → indicator.
    v4: Vec<(u8, FxHashMap<u32, Arc<Indicator>>)>,
    /// A bit per IPv4 /16 that holds some indicator: most misses cost one bit test.
    v4_any: Box<[u64]>,
    v6: Vec<(u8, FxHashMap<u128, Arc<Indicator>>)>,
    domains: FxHashMap<Box<str>, Arc<Indicator>>,
    hashes: FxHashMap<Box<str>, Arc<Indicator>>,
    /// Domains and hashes, for text.
    text: Option<TextMatcher>,
    stats: IntelStats,
    problems: Vec<IntelProblem>,
}

impl fmt::Debug for Intel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intel")
            .field("stats", &self.stats)
            .field("problems", &self.problems.len())
            .finish()
    }
}

impl Intel {
    /// Loads every feed file or folder of `paths` (see [`IntelBuilder::load_path`]) at the current time.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Intel, IntelError> {
        let mut b = IntelBuilder::new();
        for p in paths {
            b.load_path(p.as_ref())?;
        }
        b.build()
    }

    /// What loading did.
    pub fn stats(&self) -> &IntelStats {
        &self.stats
    }

    /// Problems found while loading (at most [`MAX_PROBLEMS`]).
    pub fn problems(&self) -> &[IntelProblem] {
        &self.problems
    }

    /// True when no indicator loaded.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.text.is_none()
    }

    /// The most specific address or block indicator holding `ip`.
    pub fn lookup_ip(&self, ip: IpAddr) -> Option<&Arc<Indicator>> {
        match ip {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let b16 = (bits >> 16) as usize;
                if self.v4_any[b16 / 64] & (1 << (b16 % 64)) == 0 {
                    return None;
                }
                self.v4
                    .iter()
                    .find_map(|(len, m)| m.get(&(bits & mask_v4(*len))))
            }
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.lookup_ip(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(a);
                    self.v6
                        .iter()
                        .find_map(|(len, m)| m.get(&(bits & mask_v6(*len))))
                }
            },
        }
    }

    /// The domain indicator for `host` or its closest parent domain (case and a trailing dot ignored).
    pub fn lookup_domain(&self, host: &str) -> Option<&Arc<Indicator>> {
        if self.domains.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > 253 {
            return None;
        }
        let mut buf = [0u8; 253];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host.as_bytes());
        lower.make_ascii_lowercase();
        let mut s = std::str::from_utf8(lower).ok()?;
        loop {
            if let Some(i) = self.domains.get(s) {
                return Some(i);
            }
            s = &s[s.find('.')? + 1..];
        }
    }

    /// The hash indicator for `h` (any case).
    pub fn lookup_hash(&self, h: &str) -> Option<&Arc<Indicator>> {
        if self.hashes.is_empty() || !matches!(h.len(), 32 | 40 | 64) {
            return None;
        }
        let mut buf = [0u8; 64];
        let lower = &mut buf[..h.len()];
        lower.copy_from_slice(h.as_bytes());
        lower.make_ascii_lowercase();
        self.hashes.get(std::str::from_utf8(lower).ok()?)
    }

    fn has_ips(&self) -> bool {
        !self.v4.is_empty() || !self.v6.is_empty()
    }

    /// Appends to `out` the indicators found in `ev` (read as `source.kind` says, see the module
    /// documentation); one hit per indicator, field and value.
    pub fn check(&self, source: &Source, ev: &Event, out: &mut Vec<IntelHit>) {
        let start = out.len();
        match source.kind {
            Kind::Audit => {
                if !self.has_ips() {
                    return;
                }
                // Array elements are flattened next to each other: stop after the run.
                let mut seen = false;
                for (path, v) in ev.fields.iter() {
                    let in_run = path
                        .strip_prefix("sourceIPs")
                        .is_some_and(|r| r.is_empty() || r.starts_with('.'));
                    if in_run {
                        seen = true;
                        if let Some(s) = v.as_str() {
                            self.check_ip(path, s, start, out);
                        }
                    } else if seen {
                        break;
                    }
                }
            }
            Kind::CloudTrail => {
                if let Some(s) = ev.fields.get("sourceIPAddress").and_then(|v| v.as_str()) {
                    match parse_ip(s) {
                        Some(ip) => {
                            if let Some(ind) = self.lookup_ip(ip) {
                                push_hit(out, start, ind, "sourceIPAddress", s);
                            }
                        }
                        None => {
                            if let Some(ind) = self.lookup_domain(s) {
                                push_hit(out, start, ind, "sourceIPAddress", s);
                            }
                        }
                    }
                }
            }
            Kind::VpcFlow => {
                if !self.has_ips() {
                    return;
                }
                for (path, v) in ev.fields.iter() {
                    if matches!(path, "srcAddr" | "dstAddr" | "pktSrcAddr" | "pktDstAddr") {
                        if let Some(s) = v.as_str() {
                            self.check_ip(path, s, start, out);
                        }
                    }
                }
            }
            Kind::Syslog => match ev.fields.get("message").and_then(|v| v.as_str()) {
                Some(m) => self.check_text("message", m, start, out),
                None => self.check_text("@message", ev.message(), start, out),
            },
            Kind::Container | Kind::Json | Kind::Text => {
                self.check_text("@message", ev.message(), start, out)
            }
        }
    }

    fn check_ip(&self, field: &str, s: &str, start: usize, out: &mut Vec<IntelHit>) {
        if let Some(ind) = parse_ip(s).and_then(|ip| self.lookup_ip(ip)) {
            push_hit(out, start, ind, field, s);
        }
    }

    fn check_text(&self, field: &str, text: &str, start: usize, out: &mut Vec<IntelHit>) {
        if self.has_ips() {
            scan_ips(text, |ip, found| {
                if let Some(ind) = self.lookup_ip(ip) {
                    push_hit(out, start, ind, field, found);
                }
            });
        }
        let Some(tm) = &self.text else { return };
        let b = text.as_bytes();
        for m in tm.ac.find_overlapping_iter(text) {
            let ind = &tm.pats[m.pattern().as_usize()];
            let (s, e) = (m.start(), m.end());
            match ind.kind.family() {
                IntelFamily::Domain => {
                    if domain_bounds(b, s, e) {
                        // Report the whole host name the domain ends.
                        let mut from = s;
                        while from > 0 && is_host_byte(b[from - 1]) {
                            from -= 1;
                        }
                        let from = if b[from] == b'.' { from + 1 } else { from };
                        push_hit(out, start, ind, field, &text[from..e]);
                    }
                }
                IntelFamily::Hash => {
                    let word = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphanumeric());
                    if (s == 0 || !word(s - 1)) && !word(e) {
                        push_hit(out, start, ind, field, &text[s..e]);
                    }
                }
                IntelFamily::Ip => {}
            }
        }
    }
}

fn is_host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.'
}

/// Whether `b[s..e]` (a domain indicator's text) stands as a domain or a parent domain: not preceded by
/// a label character (a dot is fine: a subdomain), not followed by one, nor by a dot and more labels.
fn domain_bounds(b: &[u8], s: usize, e: usize) -> bool {
    let label = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    if s > 0 && label(b[s - 1]) {
        return false;
    }
    match b.get(e) {
        None => true,
        Some(&c) if label(c) => false,
        Some(b'.') => !b.get(e + 1).is_some_and(|&c| label(c)),
        Some(_) => true,
    }
}

fn push_hit(out: &mut Vec<IntelHit>, start: usize, ind: &Arc<Indicator>, field: &str, value: &str) {
    if out[start..]
        .iter()
        .any(|h| Arc::ptr_eq(&h.indicator, ind) && h.field == field && h.value == value)
    {
        return;
    }
    out.push(IntelHit {
        indicator: ind.clone(),
        field: field.to_string(),
        value: value.to_string(),
    });
}

/// Calls `f` with every IPv4 or IPv6 address standing alone in `text` (with the text it was read from):
/// `from 203.0.113.66 port 22`, `[2001:db8::1]:443`, `10.0.0.1:8080`, `::ffff:10.0.0.1`. Dotted runs
/// inside words or longer dotted numbers (`v1.2.3.4`, `1.2.3.4.5`) are not addresses. Allocates nothing.
pub fn scan_ips(text: &str, mut f: impl FnMut(IpAddr, &str)) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        let c = b[i];
        if !(c.is_ascii_hexdigit() || c == b':') {
            i += 1;
            continue;
        }
        let start = i;
        let left_ok = start == 0
            || !(b[start - 1].is_ascii_alphanumeric() || matches!(b[start - 1], b'_' | b'.'));
        let (mut dots, mut colons, mut letters) = (0u32, 0u32, false);
        while i < n {
            match b[i] {
                b'0'..=b'9' => {}
                b'.' => dots += 1,
                b':' => colons += 1,
                c if c.is_ascii_hexdigit() => letters = true,
                _ => break,
            }
            i += 1;
        }
        let right_ok = i == n || !(b[i].is_ascii_alphanumeric() || b[i] == b'_');
        if !left_ok || !right_ok || (dots == 0 && colons < 2) {
            continue;
        }
        // A sentence may end right after an address.
        let mut end = i;
        while end > start && b[end - 1] == b'.' {
            end -= 1;
            dots -= 1;
        }
        let run = &text[start..end];
        if colons >= 2 {
            let v6 = run
                .strip_suffix(':')
                .filter(|r| !r.ends_with(':'))
                .unwrap_or(run);
            if let Ok(a) = v6.parse::<Ipv6Addr>() {
                let ip = match a.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(a),
                };
                f(ip, v6);
            }
        } else if dots == 3 && !letters {
            // `a.b.c.d` or `a.b.c.d:port`.
            let v4 = run.split_once(':').map_or(run, |(a, _)| a);
            if let Ok(a) = v4.parse::<Ipv4Addr>() {
                f(IpAddr::V4(a), v4);
            }
        }
    }
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
            ts: ev.ts,
            event,
            event_hash,
            suppress_ns: DEFAULT_SUPPRESS_NS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_parse::{decode_all, DecoderOptions, Format};

    /// 2025-06-01T00:00:00Z: the fixtures' validity times are around it.
    const NOW: i64 = 1_748_736_000_000_000_000;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/intel")
            .join(name)
    }

    fn shared(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data")
            .join(rel)
    }

    fn fixtures() -> Intel {
        let mut b = IntelBuilder::at(NOW);
        b.load_path(&fixture("")).unwrap();
        b.build().unwrap()
    }

    fn from_csv(text: &str) -> Intel {
        let mut b = IntelBuilder::at(NOW);
        b.add_csv("inline.csv", text).unwrap();
        b.build().unwrap()
    }

    fn from_stix(text: &str) -> Intel {
        let mut b = IntelBuilder::at(NOW);
        b.add_stix("inline.json", text).unwrap();
        b.build().unwrap()
    }

    fn hits(intel: &Intel, kind: Kind, ev: &Event) -> Vec<IntelHit> {
        let mut out = Vec::new();
        intel.check(&Source::of_kind(kind), ev, &mut out);
        out
    }

    fn parse(format: Format, text: &str) -> Vec<Event> {
        let (evs, _) = decode_all(format, DecoderOptions::default(), text.as_bytes(), 0);
        assert!(
            evs.iter().all(|e| e.parse_error.is_none()),
            "{:?}",
            evs.iter().find_map(|e| e.parse_error.as_ref())
        );
        evs
    }

    fn read_shared(rel: &str) -> String {
        let p = shared(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn intel_csv_feed_loads_every_type_with_its_metadata() {
        let mut b = IntelBuilder::at(NOW);
        b.load_path(&fixture("feed.csv")).unwrap();
        let intel = b.build().unwrap();
        let s = intel.stats();
        assert_eq!(
            (
                s.ipv4,
                s.ipv6,
                s.ipv4_cidr,
                s.ipv6_cidr,
                s.domain,
                s.md5,
                s.sha1,
                s.sha256
            ),
            (3, 1, 1, 1, 3, 1, 1, 1),
            "{s}\n{:#?}",
            intel.problems()
        );
        assert_eq!((s.expired, s.unsupported, s.invalid), (1, 1, 2), "{s}");
        assert_eq!(s.files, 1);
        let attacker = intel.lookup_ip(ip("203.0.113.66")).unwrap();
        assert_eq!(attacker.kind, IndicatorKind::Ipv4);
        assert_eq!(attacker.source, "feed.csv");
        assert_eq!(attacker.line, Some(2));
        assert_eq!(attacker.provider.as_deref(), Some("quarry-demo"));
        assert_eq!(
            attacker.description.as_deref(),
            Some("SSH brute force, then kubectl exec (Quarry demo attacker)")
        );
        assert_eq!(attacker.labels, ["scanner", "brute-force"]);
        assert_eq!(attacker.level(), Level::Critical);
        let c2 = intel.lookup_ip(ip("198.51.100.77")).unwrap();
        assert_eq!(c2.confidence, Some(90));
        assert_eq!(c2.level(), Level::High);
        // A defanged domain and a URL's host.
        assert_eq!(
            intel.lookup_domain("miner-pool.example").unwrap().value,
            "miner-pool.example"
        );
        let from_url = intel.lookup_domain("dl.payload.example").unwrap();
        assert_eq!(from_url.value, "dl.payload.example");
        assert_eq!(
            from_url.original.as_deref(),
            Some("hxxp://dl.payload[.]example:8080/x.sh")
        );
        // Problems name the file and line.
        let bad: Vec<String> = intel.problems().iter().map(|p| p.to_string()).collect();
        assert!(
            bad.iter()
                .any(|p| p.contains("feed.csv:14: invalid:") && p.contains("not-an-ip")),
            "{bad:#?}"
        );
        assert!(
            bad.iter()
                .any(|p| p.contains("feed.csv:15: unsupported:") && p.contains("email")),
            "{bad:#?}"
        );
        assert!(
            bad.iter()
                .any(|p| p.contains("feed.csv:16: invalid:") && p.contains("9 fields")),
            "{bad:#?}"
        );
        assert!(
            bad.iter()
                .any(|p| p.contains("feed.csv:11: warning:") && p.contains("host bits")),
            "{bad:#?}"
        );
    }

    #[test]
    fn intel_headerless_list_infers_types() {
        let mut b = IntelBuilder::at(NOW);
        b.load_path(&fixture("blocklist.txt")).unwrap();
        let intel = b.build().unwrap();
        let s = intel.stats();
        assert_eq!(
            (s.ipv4, s.ipv6, s.ipv4_cidr, s.domain, s.md5, s.sha256),
            (1, 1, 1, 1, 1, 1),
            "{s} {:#?}",
            intel.problems()
        );
        assert_eq!(s.invalid, 1);
        let p = &intel.problems()[0];
        assert_eq!(
            (p.kind, p.line),
            (IntelProblemKind::Invalid, Some(9)),
            "{p}"
        );
        assert!(p.message.contains("cannot tell"), "{p}");
        let cidr = intel.lookup_ip(ip("192.0.2.200")).unwrap();
        assert_eq!(cidr.value, "192.0.2.128/25");
        assert_eq!(cidr.description.as_deref(), Some("bulletproof hosting"));
        assert!(intel.lookup_ip(ip("192.0.2.127")).is_none());
    }

    #[test]
    fn intel_malformed_csv_lines_are_reported_with_their_line_number() {
        let mut b = IntelBuilder::at(NOW);
        b.add_csv(
            "feeds/bad.csv",
            "type,value,description\n\
             ip,198.51.100.1,ok\n\
             ip,\"198.51.100.2,unterminated\n\
             \n\
             # a comment\n\
             ip,198.51.100.300,bad octet\n\
             sha256,abcd,short\n\
             ip,,empty\n\
             ip,198.51.100.3,\"quoted, with comma\"\n",
        )
        .unwrap();
        let problems: Vec<(Option<usize>, IntelProblemKind)> =
            b.problems().iter().map(|p| (p.line, p.kind)).collect();
        assert_eq!(
            problems,
            [
                (Some(3), IntelProblemKind::Invalid),
                (Some(6), IntelProblemKind::Invalid),
                (Some(7), IntelProblemKind::Invalid),
                (Some(8), IntelProblemKind::Invalid),
            ],
            "{:#?}",
            b.problems()
        );
        assert!(b.problems()[0].message.contains("unterminated"));
        assert_eq!(b.problems()[0].file, "feeds/bad.csv");
        assert_eq!(b.stats().invalid, 4);
        let intel = b.build().unwrap();
        assert_eq!(
            intel
                .lookup_ip(ip("198.51.100.3"))
                .unwrap()
                .description
                .as_deref(),
            Some("quoted, with comma")
        );
        assert_eq!(intel.stats().ipv4, 2);
        // A first line that is neither a header nor an indicator: the file is refused, saying why.
        let mut b = IntelBuilder::at(NOW);
        let err = b
            .add_csv("x.csv", "first_seen,destination\n2024-01-01,1.2.3.4\n")
            .unwrap_err();
        assert!(err.to_string().contains("x.csv: line 1"), "{err}");
    }

    #[test]
    fn intel_stix_bundle_loads_supported_patterns_and_reports_the_rest() {
        let mut b = IntelBuilder::at(NOW);
        b.load_path(&fixture("stix-bundle.json")).unwrap();
        let intel = b.build().unwrap();
        let s = intel.stats().clone();
        assert_eq!(s.stix_indicators, 17, "{s}");
        assert_eq!(
            (
                s.ipv4,
                s.ipv6,
                s.ipv4_cidr,
                s.ipv6_cidr,
                s.domain,
                s.md5,
                s.sha256
            ),
            (4, 1, 1, 1, 4, 1, 1),
            "{s}\n{:#?}",
            intel.problems()
        );
        assert_eq!(
            (
                s.expired,
                s.revoked,
                s.not_yet_valid,
                s.superseded,
                s.unsupported,
                s.partial
            ),
            (1, 1, 1, 1, 3, 1),
            "{s}\n{:#?}",
            intel.problems()
        );
        assert_eq!(s.invalid, 1, "{:#?}", intel.problems());
        let c2 = intel.lookup_ip(ip("198.51.100.77")).unwrap();
        assert_eq!(
            c2.stix_id.as_deref(),
            Some("indicator--7f0c3a32-5d71-4e0a-9d3e-0c6f6b0d5a01")
        );
        assert_eq!(c2.name.as_deref(), Some("Quarry demo C2 server"));
        assert_eq!(c2.labels, ["malicious-activity", "c2"]);
        assert_eq!(c2.confidence, Some(80));
        assert_eq!(c2.source, "stix-bundle.json");
        let relay = intel.lookup_domain("exfil-relay.example").unwrap();
        assert_eq!(
            relay.original.as_deref(),
            Some("https://exfil-relay.example/upload?id=1")
        );
        // OR'd observations and an IN set.
        for a in ["203.0.113.66", "198.51.100.80", "198.51.100.81"] {
            assert!(intel.lookup_ip(ip(a)).is_some(), "{a}");
        }
        // ISSUBSET and = with a CIDR.
        assert_eq!(
            intel.lookup_ip(ip("203.0.113.130")).unwrap().value,
            "203.0.113.128/26"
        );
        assert!(intel.lookup_ip(ip("2001:db8:bad::99")).is_some());
        assert!(intel.lookup_ip(ip("2001:db8:1234::5")).is_some());
        // The latest version of an indicator wins.
        assert!(intel.lookup_domain("old.superseded.example").is_none());
        assert!(intel.lookup_domain("new.superseded.example").is_some());
        // Skipped: expired, revoked, not yet valid.
        assert!(intel.lookup_ip(ip("198.51.100.99")).is_none());
        assert!(intel.lookup_domain("revoked.example").is_none());
        assert!(intel.lookup_domain("future.example").is_none());
        // Hashes.
        assert!(intel
            .lookup_hash("44D88612FEA8A8F36DE82E1278ABB02F")
            .is_some());
        // Every unsupported indicator is reported with its id.
        let by_id = |id: &str| {
            intel
                .problems()
                .iter()
                .find(|p| p.indicator.as_deref() == Some(id))
                .unwrap_or_else(|| panic!("no problem for {id}: {:#?}", intel.problems()))
        };
        let and = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000010");
        assert_eq!(and.kind, IntelProblemKind::Unsupported);
        assert!(and.message.contains("AND"), "{and}");
        let matches = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000011");
        assert!(matches.message.contains("MATCHES"), "{matches}");
        let snort = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000012");
        assert!(snort.message.contains("snort"), "{snort}");
        let partial = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000013");
        assert_eq!(partial.kind, IntelProblemKind::Warning);
        assert!(partial.message.contains("WITHIN"), "{partial}");
        assert!(intel.lookup_domain("partly.example").is_some());
        let broken = by_id("indicator--b1d7e5a8-0000-4000-8000-000000000014");
        assert_eq!(broken.kind, IntelProblemKind::Invalid);
        assert!(broken.message.contains("unterminated"), "{broken}");
        assert!(
            broken.to_string().starts_with(&format!(
                "{}: indicator--b1d7e5a8-0000-4000-8000-000000000014: invalid:",
                fixture("stix-bundle.json").display()
            )),
            "{broken}"
        );
    }

    #[test]
    fn intel_stix_patterns_parse_or_fail_without_panicking() {
        let ok = "[ipv4-addr:value = '198.51.100.1' OR ipv4-addr:value = '198.51.100.2'] OR \
                  ([domain-name:value = 'it\\'s.example'] OR [file:hashes.'SHA-256' = \
                  'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'])";
        let node = pattern::parse(ok).unwrap();
        let mut tests = Vec::new();
        let mut unsupported = Vec::new();
        pattern::flatten(&node, ok, &mut tests, &mut unsupported);
        assert_eq!(tests.len(), 4);
        assert!(unsupported.is_empty());
        // Every prefix of a valid pattern, and every one-byte corruption, gives a result or an error.
        for cut in 0..ok.len() {
            if ok.is_char_boundary(cut) {
                let _ = pattern::parse(&ok[..cut]);
            }
        }
        for (i, c) in ok.char_indices() {
            for junk in ["]", "[", "'", "(", ")", "\\", "=", " AND ", "x:", ":"] {
                let mut p = ok.to_string();
                p.replace_range(i..i + c.len_utf8(), junk);
                let _ = pattern::parse(&p);
            }
        }
        for bad in [
            "",
            "[",
            "[]",
            "[ipv4-addr:value]",
            "[ipv4-addr:value = ]",
            "[ipv4-addr: = '1.2.3.4']",
            "ipv4-addr:value = '1.2.3.4'",
            "[ipv4-addr:value = '1.2.3.4'",
            "[ipv4-addr:value = '1.2.3.4'] OR",
            "[ipv4-addr:value = '1.2.3.4'] WITHIN SECONDS",
            "[ipv4-addr:value IN ('1.2.3.4',)]",
            "[a:b = '\\x']",
            "[a:b = 'é'] €",
        ] {
            assert!(pattern::parse(bad).is_err(), "{bad:?} parsed");
        }
        // Supported forms and their spellings.
        for (p, n) in [
            ("[ipv4-addr:value == '1.2.3.4']", 1),
            ("[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]", 1),
            (
                "[ ( ipv4-addr:value = '1.2.3.4' OR ipv6-addr:value = '::1' ) ]",
                2,
            ),
            ("/* feed */ [url:value = 'http://x.example/a'] // end", 1),
            ("[network-traffic:dst_ref.value = '1.2.3.4']", 1),
            ("[file:hashes.MD5 = '44d88612fea8a8f36de82e1278abb02f']", 1),
        ] {
            let node = pattern::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let mut tests = Vec::new();
            let mut unsupported = Vec::new();
            pattern::flatten(&node, p, &mut tests, &mut unsupported);
            assert_eq!((tests.len(), unsupported.len()), (n, 0), "{p}");
            for t in tests {
                t.values(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            }
        }
        // Unsupported forms are recognised and named.
        for (p, says) in [
            ("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '5.6.7.8']", "FOLLOWEDBY"),
            ("[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'a.example']", "AND"),
            ("[ipv4-addr:value = '1.2.3.4'] REPEATS 5 TIMES", "REPEATS"),
            (
                "[ipv4-addr:value = '1.2.3.4'] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'",
                "START/STOP",
            ),
            ("[ipv4-addr:value != '1.2.3.4']", "!="),
            ("[ipv4-addr:value NOT = '1.2.3.4']", "NOT"),
            ("[domain-name:value LIKE '%.example']", "LIKE"),
            ("[domain-name:value ISSUBSET 'a.example']", "ISSUBSET"),
            ("[network-traffic:dst_port = 4444]", "network-traffic:dst_port"),
            ("[file:hashes.'SHA-512' = 'ab']", "SHA-512"),
            ("[ipv4-addr:value = 16909060]", "not a string"),
            ("[email-addr:value = 'a@b.example']", "email-addr:value"),
        ] {
            let node = pattern::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let mut tests = Vec::new();
            let mut unsupported = Vec::new();
            pattern::flatten(&node, p, &mut tests, &mut unsupported);
            for t in tests {
                if let Err(e) = t.values(p) {
                    unsupported.push(e);
                }
            }
            assert!(
                unsupported.iter().any(|u| u.contains(says)),
                "{p}: {unsupported:?}"
            );
        }
    }

    #[test]
    fn intel_stix_20_indicators_without_pattern_type_load() {
        let intel = from_stix(
            r#"{"type":"bundle","spec_version":"2.0","objects":[{"type":"indicator",
                "id":"indicator--20","labels":["malicious-activity"],
                "pattern":"[ipv4-addr:value = '198.51.100.5']","valid_from":"2020-01-01T00:00:00Z"}]}"#,
        );
        let hit = intel.lookup_ip(ip("198.51.100.5")).unwrap();
        assert_eq!(hit.labels, ["malicious-activity"]);
        assert!(intel.problems().is_empty(), "{:#?}", intel.problems());
    }

    #[test]
    fn intel_bad_stix_files_are_errors_naming_the_file() {
        let mut b = IntelBuilder::at(NOW);
        let e = b.add_stix("a.json", "{not json").unwrap_err();
        assert!(e.to_string().contains("a.json: not JSON"), "{e}");
        let e = b.add_stix("b.json", r#"{"type":"bundle"}"#).unwrap_err();
        assert!(e.to_string().contains("b.json"), "{e}");
        let e = b.add_stix("c.json", "42").unwrap_err();
        assert!(e.to_string().contains("c.json"), "{e}");
        // A lone indicator object is accepted.
        b.add_stix(
            "d.json",
            r#"{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '198.51.100.5']","pattern_type":"stix","valid_from":"2020-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        // Indicators with broken fields are reported, not loaded.
        b.add_stix(
            "e.json",
            r#"{"type":"bundle","objects":[
                {"type":"indicator","id":"indicator--2","pattern":"[ipv4-addr:value = '198.51.100.6']","valid_until":"soon"},
                {"type":"indicator","id":"indicator--3","pattern":"[ipv4-addr:value = '198.51.100.7']","confidence":101},
                {"type":"indicator","id":"indicator--4"},
                {"type":"indicator","pattern":"[ipv4-addr:value = 'nope']"},
                {"type":"identity","id":"identity--1","name":"ignored"}
            ]}"#,
        )
        .unwrap();
        let ids: Vec<&str> = b
            .problems()
            .iter()
            .filter_map(|p| p.indicator.as_deref())
            .collect();
        assert_eq!(
            ids,
            [
                "indicator--2",
                "indicator--3",
                "indicator--4",
                "objects[3] (an indicator without an id)"
            ],
            "{:#?}",
            b.problems()
        );
        assert_eq!(b.stats().invalid, 4);
        let intel = b.build().unwrap();
        assert_eq!(intel.stats().ipv4, 1);
        assert!(intel.lookup_ip(ip("198.51.100.5")).is_some());
    }

    #[test]
    fn intel_values_are_normalised_and_refused_when_too_broad() {
        let n = |s: &str| infer(s).map(|n| (n.kind, n.value));
        assert_eq!(
            n("198.51.100.1"),
            Ok((IndicatorKind::Ipv4, "198.51.100.1".into()))
        );
        assert_eq!(
            n("198.51.100[.]1"),
            Ok((IndicatorKind::Ipv4, "198.51.100.1".into()))
        );
        assert_eq!(
            n("::ffff:198.51.100.1"),
            Ok((IndicatorKind::Ipv4, "198.51.100.1".into()))
        );
        assert_eq!(
            n("2001:DB8::1"),
            Ok((IndicatorKind::Ipv6, "2001:db8::1".into()))
        );
        assert_eq!(
            n("198.51.100.7/32"),
            Ok((IndicatorKind::Ipv4, "198.51.100.7".into()))
        );
        assert_eq!(
            n("198.51.100.7/24"),
            Ok((IndicatorKind::Ipv4Cidr, "198.51.100.0/24".into()))
        );
        assert_eq!(
            n("2001:db8::/32"),
            Ok((IndicatorKind::Ipv6Cidr, "2001:db8::/32".into()))
        );
        assert_eq!(
            n("::ffff:198.51.100.0/120"),
            Ok((IndicatorKind::Ipv4Cidr, "198.51.100.0/24".into()))
        );
        assert_eq!(
            n("*.Evil.Example."),
            Ok((IndicatorKind::Domain, "evil.example".into()))
        );
        assert_eq!(
            n("https://user@[2001:db8::5]:443/x"),
            Ok((IndicatorKind::Ipv6, "2001:db8::5".into()))
        );
        assert_eq!(
            n("HXXPS://Evil.Example/x?y"),
            Ok((IndicatorKind::Domain, "evil.example".into()))
        );
        assert_eq!(
            n("sha256:AEC070645FE53EE3B3763059376134F058CC337247C978ADD178B6CCDFB0019F")
                .map(|x| x.0),
            Ok(IndicatorKind::Sha256)
        );
        for bad in [
            "0.0.0.0/0",
            "10.0.0.0/7",
            "2000::/3",
            "198.51.100.1/33",
            "198.51.100.1/x",
            "localhost",
            "com",
            "1.2.3.999",
            "bücher.example",
            "a..example",
            "under score.example",
            "http:///path",
        ] {
            assert!(n(bad).is_err(), "{bad:?} accepted: {:?}", n(bad));
        }
        assert!(normalize(Want::Hash(Some(IndicatorKind::Md5)), &"a".repeat(64)).is_err());
        assert!(normalize(Want::Ipv4, "2001:db8::1").is_err());
        assert!(normalize(Want::Ipv6, "198.51.100.1").is_err());
        // Special ranges load with a warning.
        let w = infer("10.1.2.3").unwrap().warning.unwrap();
        assert!(w.contains("private"), "{w}");
        assert!(infer("203.0.113.1").unwrap().warning.is_none());
    }

    #[test]
    fn intel_cidr_match_is_the_most_specific_block() {
        let intel = from_csv(
            "value,description\n\
             198.51.100.0/24,wide\n\
             198.51.100.128/25,narrow\n\
             198.51.100.200,exact\n\
             2001:db8:aa::/48,v6 wide\n\
             2001:db8:aa:bb::/64,v6 narrow\n\
             45.0.0.0/12,very wide\n",
        );
        let desc = |a: &str| {
            intel
                .lookup_ip(ip(a))
                .and_then(|i| i.description.clone())
                .unwrap_or_default()
        };
        assert_eq!(desc("198.51.100.1"), "wide");
        assert_eq!(desc("198.51.100.129"), "narrow");
        assert_eq!(desc("198.51.100.200"), "exact");
        assert_eq!(desc("198.51.101.1"), "");
        assert_eq!(desc("198.51.99.255"), "");
        assert_eq!(desc("45.0.0.0"), "very wide");
        assert_eq!(desc("45.15.255.255"), "very wide");
        assert_eq!(desc("45.16.0.0"), "");
        assert_eq!(desc("44.255.255.255"), "");
        assert_eq!(desc("2001:db8:aa:1::1"), "v6 wide");
        assert_eq!(desc("2001:db8:aa:bb::1"), "v6 narrow");
        assert_eq!(desc("2001:db8:ab::1"), "");
        // IPv4-mapped IPv6 is looked up as IPv4.
        assert_eq!(desc("::ffff:198.51.100.200"), "exact");
        assert_eq!(intel.v4.len(), 4, "one map per prefix length");
    }

    #[test]
    fn intel_audit_source_ips_match_in_every_position() {
        let intel = fixtures();
        // A real audit event from Falco's traces, its client address swapped for the demo attacker's.
        let text =
            read_shared("k8s_audit/falco_trace_files/test/trace_files/k8s_audit/exec_pod.json");
        assert!(text.contains("\"sourceIPs\":[\"192.168.99.1\"]"));
        let clean = parse(Format::Audit, &text);
        assert!(!clean.is_empty());
        for ev in &clean {
            assert!(hits(&intel, Kind::Audit, ev).is_empty());
        }
        let swapped = parse(
            Format::Audit,
            &text.replace("192.168.99.1", "198.51.100.77"),
        );
        let h = hits(&intel, Kind::Audit, &swapped[0]);
        assert_eq!(h.len(), 1, "{h:#?}");
        assert_eq!(h[0].field, "sourceIPs.0");
        assert_eq!(h[0].value, "198.51.100.77");
        assert_eq!(h[0].indicator.value, "198.51.100.77");
        // The second of several addresses (a proxy chain), IPv6 and IPv4-mapped too.
        let json = serde_json::json!({
            "kind": "Event", "verb": "get", "user": {"username": "eve"},
            "sourceIPs": ["10.0.0.1", "::ffff:203.0.113.66", "2001:db8:bad::7"],
            "userAgent": "curl", "objectRef": {"namespace": "prod"}
        });
        let mut ev = Event::text(1, json.to_string());
        quarry_model::flatten_json("", &json, &mut ev.fields);
        let h = hits(&intel, Kind::Audit, &ev);
        let got: Vec<(&str, &str)> = h
            .iter()
            .map(|h| (h.field.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("sourceIPs.1", "::ffff:203.0.113.66"),
                ("sourceIPs.2", "2001:db8:bad::7")
            ]
        );
    }

    #[test]
    fn intel_cloudtrail_source_address_matches_ips_and_service_domains() {
        let intel = fixtures();
        let text = read_shared(
            "aws/stratus_red_team/docs/detonation-logs/aws.defense-evasion.cloudtrail-stop.json",
        );
        let clean = parse(Format::CloudTrail, &text);
        assert_eq!(clean.len(), 1);
        assert!(hits(&intel, Kind::CloudTrail, &clean[0]).is_empty());
        let evs = parse(
            Format::CloudTrail,
            &text.replace("86.245.153.234", "198.51.100.77"),
        );
        let h = hits(&intel, Kind::CloudTrail, &evs[0]);
        assert_eq!(h.len(), 1);
        assert_eq!(
            (h[0].field.as_str(), h[0].value.as_str()),
            ("sourceIPAddress", "198.51.100.77")
        );
        let c = h[0].candidate(&Source::of_kind(Kind::CloudTrail), &evs[0]);
        assert_eq!(c.rule_id, RULE_IP);
        assert_eq!(
            c.dedup_key,
            "quarry-intel-ip|198.51.100.77|arn:aws:iam::143434273843:user/christophe"
        );
        assert_eq!(c.tags, ["attack.initial-access"]);
        assert_eq!(c.event["eventName"], "StopLogging");
        assert_eq!(c.event["@intel"]["feed"], "feed.csv");
        // A service name as the caller: matched as a domain, subdomains included.
        let evs = parse(
            Format::CloudTrail,
            &text.replace("86.245.153.234", "api.Exfil-Relay.example"),
        );
        let h = hits(&intel, Kind::CloudTrail, &evs[0]);
        assert_eq!(h.len(), 1, "{h:#?}");
        assert_eq!(h[0].indicator.value, "exfil-relay.example");
        assert_eq!(h[0].value, "api.Exfil-Relay.example");
    }

    #[test]
    fn intel_vpc_flow_matches_both_directions() {
        let intel = fixtures();
        // Real flow records (v5, all fields) with the external address swapped.
        let text = read_shared(
            "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline/test-v5-all-fields.log",
        );
        let line = text.lines().next().unwrap();
        assert!(line.contains(" 89.160.20.156 10.200.0.0 "), "{line}");
        for ev in &parse(Format::VpcFlow, &text) {
            assert!(hits(&intel, Kind::VpcFlow, ev).is_empty());
        }
        // Inbound from the attacker: srcAddr (and pktSrcAddr, its own field).
        let inbound = parse(
            Format::VpcFlow,
            &line.replace("89.160.20.156", "203.0.113.66"),
        );
        let h = hits(&intel, Kind::VpcFlow, &inbound[0]);
        let fields: Vec<&str> = h.iter().map(|h| h.field.as_str()).collect();
        assert_eq!(fields, ["srcAddr", "pktSrcAddr"], "{h:#?}");
        let c = h[0].candidate(&Source::of_kind(Kind::VpcFlow), &inbound[0]);
        assert_eq!(c.dedup_key, "quarry-intel-ip|203.0.113.66|10.200.0.0");
        assert_eq!(c.tags, ["attack.initial-access"]);
        // Outbound to the C2 server: dstAddr.
        let outbound = line
            .replace(" 89.160.20.156 10.200.0.0 ", " 10.200.0.80 198.51.100.77 ")
            .replace(" 89.160.20.156 10.200.0.80 ", " 10.200.0.80 198.51.100.77 ");
        let outbound = parse(Format::VpcFlow, &outbound);
        let h = hits(&intel, Kind::VpcFlow, &outbound[0]);
        let fields: Vec<&str> = h.iter().map(|h| h.field.as_str()).collect();
        assert_eq!(fields, ["dstAddr", "pktDstAddr"], "{h:#?}");
        let c = h[0].candidate(&Source::of_kind(Kind::VpcFlow), &outbound[0]);
        assert_eq!(c.dedup_key, "quarry-intel-ip|198.51.100.77|10.200.0.80");
        assert_eq!(c.tags, ["attack.command-and-control"]);
        // IPv6 flows as recorded (no swap): the destination is inside a listed /64.
        let v6 = read_shared(
            "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline/test-extra-samples.log",
        );
        let evs = parse(Format::VpcFlow, &v6);
        let h: Vec<IntelHit> = evs
            .iter()
            .flat_map(|e| hits(&intel, Kind::VpcFlow, e))
            .collect();
        assert_eq!(h.len(), 1, "{h:#?}");
        assert_eq!(h[0].field, "dstAddr");
        assert_eq!(h[0].value, "2001:db8:1234:a102:3304:8879:34cf:4071");
        assert_eq!(h[0].indicator.value, "2001:db8:1234:a102::/64");
    }

    #[test]
    fn intel_syslog_and_container_text_is_scanned() {
        let intel = fixtures();
        let text = read_shared("node_logs/loghub/OpenSSH/OpenSSH_2k.log");
        let line = text
            .lines()
            .find(|l| l.contains("Failed password") && l.contains("173.234.31.186"))
            .unwrap();
        let evs = parse(
            Format::Syslog,
            &line.replace("173.234.31.186", "203.0.113.66"),
        );
        let h = hits(&intel, Kind::Syslog, &evs[0]);
        assert_eq!(h.len(), 1, "{h:#?}");
        assert_eq!(
            (h[0].field.as_str(), h[0].value.as_str()),
            ("message", "203.0.113.66")
        );
        let mut src = Source::of_kind(Kind::Syslog);
        src.node = Some("node-1".into());
        let c = h[0].candidate(&src, &evs[0]);
        assert_eq!(c.dedup_key, "quarry-intel-ip|203.0.113.66|LabSZ");
        assert_eq!(c.level, Level::Critical, "the CSV feed's severity");
        assert_eq!(c.event["@intel"]["feed"], "feed.csv");
        assert_eq!(c.event["@intel"]["line"], 2);
        assert_eq!(c.suppress_ns, DEFAULT_SUPPRESS_NS);
        // Container output: a domain (as a subdomain, in a URL), a hash, an address with a port.
        let mut src = Source::of_kind(Kind::Container);
        src.namespace = Some("shop".into());
        src.pod = Some("web-7f9".into());
        let ev = Event::text(
            5,
            "fetching https://pool.MINER-POOL.example/job and 198.51.100.77:4444; \
             sha256=449E7C386CD2E2CB9C5176DFE746DB4A4873889F964F539673C12A1E2FAEBF3D done.",
        );
        let h = hits(&intel, Kind::Container, &ev);
        let got: Vec<(&str, IndicatorKind)> = h
            .iter()
            .map(|h| (h.value.as_str(), h.indicator.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("198.51.100.77", IndicatorKind::Ipv4),
                ("pool.MINER-POOL.example", IndicatorKind::Domain),
                (
                    "449E7C386CD2E2CB9C5176DFE746DB4A4873889F964F539673C12A1E2FAEBF3D",
                    IndicatorKind::Sha256
                ),
            ],
            "{h:#?}"
        );
        let cands: Vec<Candidate> = h.iter().map(|h| h.candidate(&src, &ev)).collect();
        assert_eq!(cands[1].rule_id, RULE_DOMAIN);
        assert_eq!(cands[1].title, "Threat intelligence match: domain");
        assert_eq!(
            cands[1].dedup_key,
            "quarry-intel-domain|miner-pool.example|shop/web-7f9"
        );
        assert_eq!(cands[1].tags, ["attack.command-and-control"]);
        assert_eq!(cands[1].event["@intel"]["value"], "pool.MINER-POOL.example");
        assert_eq!(cands[1].event["@message"], ev.raw);
        assert_eq!(cands[2].rule_id, RULE_HASH);
        assert_eq!(cands[2].tags, ["attack.execution"]);
        // Near misses: another domain ending the same way, a longer domain, a longer hex string,
        // an address inside a longer dotted number or a word.
        for text in [
            "notminer-pool.example is fine",
            "miner-pool.example.org is someone else",
            "x449e7c386cd2e2cb9c5176dfe746db4a4873889f964f539673c12a1e2faebf3d",
            "version 1.198.51.100.77 and v198.51.100.77 and 198.51.100.77.5",
            "2001:db8:bad::7x",
        ] {
            let h = hits(&intel, Kind::Text, &Event::text(0, text));
            assert!(h.is_empty(), "{text}: {h:#?}");
        }
        // The end of a sentence is not part of the domain.
        let h = hits(
            &intel,
            Kind::Text,
            &Event::text(0, "resolved miner-pool.example."),
        );
        assert_eq!(h.len(), 1);
        // The same indicator twice in one line is one hit per value.
        let h = hits(
            &intel,
            Kind::Json,
            &Event::text(
                0,
                r#"{"a":"198.51.100.77","b":"198.51.100.77","c":"[2001:db8:bad::1]:443"}"#,
            ),
        );
        let got: Vec<&str> = h.iter().map(|h| h.value.as_str()).collect();
        assert_eq!(got, ["198.51.100.77", "2001:db8:bad::1"]);
    }

    #[test]
    fn intel_ip_scanner_finds_addresses_and_only_addresses() {
        let found = |t: &str| {
            let mut v = Vec::new();
            scan_ips(t, |ip, s| v.push((ip.to_string(), s.to_string())));
            v
        };
        assert_eq!(
            found("Failed password for root from 203.0.113.66 port 22 ssh2"),
            [("203.0.113.66".to_string(), "203.0.113.66".to_string())]
        );
        assert_eq!(found("to 10.0.0.1:8080.").len(), 1);
        assert_eq!(found("(2001:db8::1) and [fe80::1%eth0]").len(), 2);
        assert_eq!(found("peer ::ffff:10.1.2.3 up")[0].0, "10.1.2.3");
        assert_eq!(found("at 2001:db8::1.")[0].0, "2001:db8::1");
        for none in [
            "12:30:45.123 took 1.5s",
            "v1.2.3.4",
            "1.2.3.4.5",
            "1.2.3",
            "256.1.1.1",
            "01.02.03.04",
            "dead:beef",
            "aa:bb:cc:dd:ee:ff",
            "cafe.1.2.3",
            "",
        ] {
            assert!(found(none).is_empty(), "{none}: {:?}", found(none));
        }
    }

    #[test]
    fn intel_clean_real_events_do_not_match() {
        let intel = fixtures();
        let mut checked = 0;
        let mut run = |kind: Kind, evs: &[Event]| {
            for ev in evs {
                let h = hits(&intel, kind, ev);
                assert!(h.is_empty(), "{kind:?} {}: {h:#?}", ev.raw);
                checked += 1;
            }
        };
        let dir = shared("k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&p).unwrap();
                run(
                    Kind::Audit,
                    &decode_all(Format::Audit, DecoderOptions::default(), &bytes, 0).0,
                );
            }
        }
        let dir = shared("aws/stratus_red_team/docs/detonation-logs");
        for f in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            run(
                Kind::CloudTrail,
                &decode_all(Format::CloudTrail, DecoderOptions::default(), &bytes, 0).0,
            );
        }
        for f in [
            "test-v5-all-fields.log",
            "test-v8-samples.log",
            "test-tgw-samples.log",
        ] {
            let text = read_shared(&format!(
                "aws/elastic_integrations/packages/aws/data_stream/vpcflow/_dev/test/pipeline/{f}"
            ));
            run(Kind::VpcFlow, &parse(Format::VpcFlow, &text));
        }
        for f in ["OpenSSH/OpenSSH_2k.log", "Linux/Linux_2k.log"] {
            let bytes = std::fs::read(shared(&format!("node_logs/loghub/{f}"))).unwrap();
            run(
                Kind::Syslog,
                &decode_all(Format::Syslog, DecoderOptions::default(), &bytes, 0).0,
            );
        }
        let bytes = std::fs::read(shared("node_logs/loghub/Apache/Apache_2k.log")).unwrap();
        run(
            Kind::Text,
            &decode_all(Format::Text, DecoderOptions::default(), &bytes, 0).0,
        );
        assert!(checked > 4000, "{checked}");
    }

    #[test]
    fn intel_candidates_take_level_from_feed_and_stay_stable() {
        let intel = from_csv(
            "type,value,confidence,severity\n\
             ip,198.51.100.1,,\n\
             ip,198.51.100.2,20,\n\
             ip,198.51.100.3,50,\n\
             ip,198.51.100.4,high,low\n\
             domain,evil.example,,\n",
        );
        let level = |a: &str| intel.lookup_ip(ip(a)).unwrap().level();
        assert_eq!(level("198.51.100.1"), Level::High);
        assert_eq!(level("198.51.100.2"), Level::Low);
        assert_eq!(level("198.51.100.3"), Level::Medium);
        assert_eq!(level("198.51.100.4"), Level::Low);
        let json = serde_json::json!({"user": {"username": "alice"}, "sourceIPs": ["198.51.100.1"],
            "objectRef": {"namespace": "prod"}});
        let mut ev = Event::text(7, json.to_string());
        quarry_model::flatten_json("", &json, &mut ev.fields);
        let src = Source::of_kind(Kind::Audit);
        let h = hits(&intel, Kind::Audit, &ev);
        let c = h[0].candidate(&src, &ev);
        assert_eq!(c.title, "Threat intelligence match: IP address");
        assert_eq!(c.dedup_key, "quarry-intel-ip|198.51.100.1|alice");
        assert_eq!(c.namespace.as_deref(), Some("prod"));
        assert_eq!(c.ts, 7);
        assert_eq!(c.event["user"]["username"], "alice");
        assert_eq!(c.event["@intel"]["indicator"], "198.51.100.1");
        assert_eq!(c.event["@intel"]["type"], "ipv4");
        assert_eq!(c.event["@intel"]["field"], "sourceIPs.0");
        assert_eq!(c.event["@intel"]["feed"], "inline.csv");
        assert_eq!(c.event_hash, h[0].candidate(&src, &ev).event_hash);
    }

    #[test]
    fn intel_folder_loads_and_stats_print() {
        let intel = fixtures();
        let s = intel.stats();
        assert_eq!(s.files, 3);
        let line = s.to_string();
        assert!(
            line.starts_with(&format!("{} indicators from 3 files (ipv4 ", s.loaded())),
            "{line}"
        );
        assert!(line.contains("skipped: 2 expired"), "{line}");
        assert!(!intel.is_empty());
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["revoked"], 1);
        // Nothing loaded: nothing matched, nothing scanned.
        let empty = IntelBuilder::at(NOW).build().unwrap();
        assert!(empty.is_empty());
        assert!(hits(
            &empty,
            Kind::Text,
            &Event::text(0, "198.51.100.77 evil.example")
        )
        .is_empty());
        // A missing path is an error naming it.
        let e = Intel::load(&[fixture("missing.csv")]).unwrap_err();
        assert!(e.to_string().contains("missing.csv"), "{e}");
    }

    #[test]
    fn intel_is_shared_across_ingest_threads() {
        fn shared<T: Send + Sync>(_: &T) {}
        shared(&fixtures());
    }

    #[test]
    fn intel_many_problems_are_capped_and_counted() {
        let mut text = String::from("value\n");
        for i in 0..(MAX_PROBLEMS + 50) {
            text.push_str(&format!("bad value {i}\n"));
        }
        let mut b = IntelBuilder::at(NOW);
        b.add_csv("junk.csv", &text).unwrap();
        assert_eq!(b.problems().len(), MAX_PROBLEMS);
        assert_eq!(b.stats().problems_dropped, 50);
        assert_eq!(b.stats().invalid, (MAX_PROBLEMS + 50) as u64);
    }

    /// Cost per event of the checks on real audit events when nothing matches, with a feed of 10,000
    /// addresses and 1,000 blocks of 8 prefix lengths. Run with
    /// `cargo test --release -p quarry-detect intel_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn intel_cost_per_event() {
        let mut csv = String::from("value\n");
        for i in 0..10_000u32 {
            csv.push_str(&format!(
                "{}\n",
                Ipv4Addr::from(0xC633_6400u32.wrapping_add(i * 7919))
            ));
        }
        for i in 0..1_000u32 {
            let len = 16 + (i % 8) * 2;
            let net = (0x2D00_0000u32 + i * 65_536) & mask_v4(len as u8);
            csv.push_str(&format!("{}/{len}\n", Ipv4Addr::from(net)));
        }
        csv.push_str("miner-pool.example\n");
        let intel = from_csv(&csv);
        let mut evs = Vec::new();
        let dir = shared("k8s_audit/falco_trace_files/test/trace_files/k8s_audit");
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&p).unwrap();
                evs.extend(decode_all(Format::Audit, DecoderOptions::default(), &bytes, 0).0);
            }
        }
        let ssh = std::fs::read(shared("node_logs/loghub/OpenSSH/OpenSSH_2k.log")).unwrap();
        let ssh = decode_all(Format::Syslog, DecoderOptions::default(), &ssh, 0).0;
        let ct = std::fs::read(shared(
            "aws/stratus_red_team/docs/detonation-logs/aws.defense-evasion.cloudtrail-stop.json",
        ))
        .unwrap();
        let ct = decode_all(Format::CloudTrail, DecoderOptions::default(), &ct, 0).0;
        let one = from_csv("value\n198.51.100.77\n");
        // Elastic's samples keep the API server's field order (sourceIPs about tenth); Falco's traces have
        // sorted keys (sourceIPs after requestObject and its many fields).
        let mut ordered = Vec::new();
        for f in ["test-audit.log", "test-kube-audit.log"] {
            let bytes = std::fs::read(shared(&format!(
                "k8s_audit/elastic_integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/{f}"
            )))
            .unwrap();
            ordered.extend(decode_all(Format::Audit, DecoderOptions::default(), &bytes, 0).0);
        }
        // Misses inside /16s that hold indicators: every prefix length is probed.
        let near = from_csv(&format!(
            "value\n{}",
            evs.iter()
                .filter_map(|e| e.fields.get("sourceIPs.0").and_then(|v| v.as_str()))
                .filter_map(|s| s.parse::<Ipv4Addr>().ok())
                .map(|a| format!("{}/30\n", Ipv4Addr::from(u32::from(a) ^ 0x80)))
                .collect::<String>()
                + &csv[6..]
        ));
        for (name, intel, kind, evs) in [
            ("audit (sorted keys)", &intel, Kind::Audit, &evs),
            (
                "audit (sorted keys), one indicator",
                &one,
                Kind::Audit,
                &evs,
            ),
            (
                "audit (sorted keys), same /16 as indicators",
                &near,
                Kind::Audit,
                &evs,
            ),
            ("audit (API server order)", &intel, Kind::Audit, &ordered),
            ("cloudtrail", &intel, Kind::CloudTrail, &ct),
            ("syslog (sshd)", &intel, Kind::Syslog, &ssh),
        ] {
            let src = Source::of_kind(kind);
            let mut out = Vec::new();
            let rounds = 200_000 / evs.len().max(1) + 1;
            let t = std::time::Instant::now();
            for _ in 0..rounds {
                for ev in evs.iter() {
                    intel.check(&src, ev, &mut out);
                }
            }
            let per = t.elapsed().as_nanos() as f64 / (rounds * evs.len()) as f64;
            println!("{name}: {per:.0} ns per event ({} hits)", out.len());
        }
    }
}
