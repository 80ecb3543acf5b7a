//! Reading feeds into an [`IntelBuilder`]: files and folders, CSV and one-per-line lists, and the
//! normalisation of values (defanged forms, CIDR blocks, domains, URLs, hashes). STIX bundles are read
//! in [`super::stix`].

use super::matcher::Intel;
use super::{
    Indicator, IndicatorKind, IntelError, IntelProblem, IntelProblemKind, IntelStats, MAX_PROBLEMS,
};
use crate::Level;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

/// Narrowest-allowed IPv4 prefix: a block broader than this is refused as a feed mistake.
const MIN_PREFIX_V4: u8 = 8;
/// Narrowest-allowed IPv6 prefix.
const MIN_PREFIX_V6: u8 = 16;

/// Where an indicator goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    V4(u32, u8),
    V6(u128, u8),
    Domain(String),
    Hash(String),
}

/// A value read from a feed, normalised.
#[derive(Debug)]
pub(super) struct Norm {
    pub(super) key: Key,
    pub(super) kind: IndicatorKind,
    pub(super) value: String,
    pub(super) warning: Option<String>,
}

/// What a feed says a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
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
pub(super) struct Meta {
    pub(super) line: Option<usize>,
    pub(super) stix_id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) description: Option<String>,
    pub(super) labels: Vec<String>,
    pub(super) provider: Option<String>,
    pub(super) confidence: Option<u8>,
    pub(super) severity: Option<Level>,
    pub(super) valid_until: Option<i64>,
}

/// Reads feeds into an [`Intel`].
#[derive(Debug)]
pub struct IntelBuilder {
    pub(super) now: i64,
    v4: FxHashMap<u8, FxHashMap<u32, Arc<Indicator>>>,
    v6: FxHashMap<u8, FxHashMap<u128, Arc<Indicator>>>,
    domains: FxHashMap<Box<str>, Arc<Indicator>>,
    hashes: FxHashMap<Box<str>, Arc<Indicator>>,
    pub(super) stats: IntelStats,
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

    pub(super) fn problem(
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
    pub(super) fn insert(
        &mut self,
        file: &str,
        norm: Norm,
        original: Option<&str>,
        meta: &Meta,
    ) -> bool {
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

    /// The matcher.
    pub fn build(self) -> Result<Intel, IntelError> {
        Intel::from_parts(
            self.v4,
            self.v6,
            self.domains,
            self.hashes,
            self.stats,
            self.problems,
        )
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
pub(super) fn parse_time(s: &str) -> Option<i64> {
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

pub(super) fn normalize(want: Want, raw: &str) -> Result<Norm, String> {
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
pub(super) fn infer(s: &str) -> Result<Norm, String> {
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

pub(super) fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - len as u32).unwrap_or(0)
}

pub(super) fn mask_v6(len: u8) -> u128 {
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
