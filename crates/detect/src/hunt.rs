//! Retro-hunts: Sigma rules over stored history.
//!
//! Each rule becomes an index query ([`rule_query`]): a filter in Quarry's query language that every
//! event the rule can match passes. Field values become column-dictionary matches (case-insensitive as
//! Sigma compares, with wildcards, `contains`, `startswith`, `endswith`, `re`, numeric comparisons and
//! `cidr`), selections are joined as the condition joins them, and what an index cannot decide (keywords,
//! `not`, encodings, field references) is left open: the query is a superset, never a subset. A field
//! that no stored event of the rule's log source has makes its selection unsatisfiable, so a rule about
//! fields that were never collected reads nothing at all.
//!
//! [`hunt`] runs the queries of every rule together ([`quarry_query::scan`]: each candidate event is read
//! once), evaluates the compiled rules on exactly those events with the same [`Detector`] live detection
//! uses, and feeds the matches of correlated rules to the correlation stage in event-time order. So the
//! events a hunt finds are the events streaming detection matched when they arrived.

use crate::correlate::Fired;
use crate::detector::{Detector, Level, Match};
use crate::event::{strip_indices, Scratch};
use crate::evidence;
use crate::rules::RuleSet;
use quarry_model::{Event, Kind, Source};
use quarry_query::{RunError, RunOptions, ScanFilter, ScanStats};
use quarry_store::Store;
use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Modifier, Quantifier, SelectorPattern, SigmaRule,
    SigmaString, SigmaValue, SpecialChar, StringPart,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// One rule match or fired correlation, as `quarry rules test` and `quarry hunt` report it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    /// The rule's id.
    pub rule_id: String,
    /// Its title.
    pub title: String,
    /// Its level.
    pub level: Level,
    /// Its tags (ATT&CK techniques).
    pub tags: Vec<String>,
    /// Event time (UTC ns).
    pub ts: i64,
    /// The matched event (for a correlation: its group, figures and contributing events).
    pub event: serde_json::Value,
    /// Why, for a terminal: the fields that matched, or the correlation's group and value.
    pub why: String,
}

impl Hit {
    /// A rule's match of `ev`.
    pub fn of_match(d: &Detector, m: &Match, source: &Source, ev: &Event) -> Hit {
        let rule = &d.rules()[m.rule];
        let why: Vec<String> = m.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Hit {
            rule_id: rule.id.clone(),
            title: rule.title.clone(),
            level: rule.level,
            tags: rule.tags.clone(),
            ts: ev.ts,
            event: evidence(source, ev),
            why: why.join(" "),
        }
    }

    /// The first firing of each correlation group among `fired` (a correlation fires again on every
    /// match past its threshold).
    pub fn first_firings(fired: &[Fired]) -> Vec<Hit> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for f in fired {
            let h = &f.result.header;
            let Some(body) = f.result.as_correlation() else {
                continue;
            };
            let id = h.rule_id.clone().unwrap_or_else(|| h.rule_title.clone());
            if !seen.insert((id.clone(), body.group_key.clone())) {
                continue;
            }
            let group: Vec<String> = body
                .group_key
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(Hit {
                rule_id: id,
                title: h.rule_title.clone(),
                level: Level::from(h.level),
                tags: h.tags.clone(),
                ts: f.ts,
                event: serde_json::json!({
                    "correlation": body.correlation_type, "group": body.group_key,
                    "value": body.aggregated_value,
                    "events": crate::live::contributing_events(f),
                }),
                why: format!(
                    "{} {} in {}s",
                    group.join(" "),
                    body.aggregated_value,
                    body.timespan_secs
                ),
            });
        }
        out
    }

    /// The interface's JSON object: `rule_id`, `title`, `level`, `tags`, `event`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rule_id": self.rule_id, "title": self.title, "level": self.level.as_str(),
            "tags": self.tags, "event": self.event,
        })
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "{:<13} {} [{}] {} {}",
            self.level.as_str(),
            self.title,
            self.rule_id,
            quarry_model::time::format_rfc3339_millis(self.ts),
            self.why
        )
    }
}

/// The field paths stored events have, by their form without array indices (`a.0.b` is found as `a.b`
/// too, as rules read it).
#[derive(Debug, Default)]
pub struct StoredPaths {
    by_name: BTreeMap<String, BTreeSet<String>>,
    /// Paths with string values the columns hold (what keywords can match besides the message). Paths
    /// with free text too long for the columns are left out: the store keeps their words in the word
    /// index with the message's.
    strings: BTreeSet<String>,
}

/// Keywords are looked up in the message words and in every string field; with more string fields than
/// this (JSON records), the index is not asked.
const MAX_KEYWORD_FIELDS: usize = 48;

impl StoredPaths {
    /// The paths of the partitions of `kinds` in `[from, to)`.
    pub fn of(store: &Store, kinds: &[Kind], from: i64, to: i64) -> StoredPaths {
        let mut p = StoredPaths::default();
        for view in store.views(Some(kinds), from, to) {
            for (path, info) in view.meta.paths.iter() {
                p.add(path);
                if info.types & 1 != 0 && !info.partial {
                    p.strings.insert(path.clone());
                }
            }
        }
        p
    }

    /// Adds a stored path.
    pub fn add(&mut self, path: &str) {
        let mut stripped = String::new();
        if strip_indices(path, &mut stripped) {
            self.by_name
                .entry(stripped)
                .or_default()
                .insert(path.to_string());
        }
        self.by_name
            .entry(path.to_string())
            .or_default()
            .insert(path.to_string());
    }

    /// The stored paths a rule's field name reads.
    fn resolve(&self, name: &str) -> Vec<&str> {
        self.by_name
            .get(name)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// A predicate every event a rule matches satisfies.
#[derive(Debug, Clone, PartialEq)]
enum Pre {
    /// Undecided by the index: every event.
    Open,
    /// No event can satisfy it.
    Never,
    /// A filter expression in Quarry's query language.
    Expr(String),
    And(Vec<Pre>),
    Or(Vec<Pre>),
}

impl Pre {
    fn and(parts: Vec<Pre>) -> Pre {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Pre::Open => {}
                Pre::Never => return Pre::Never,
                Pre::And(v) => out.extend(v),
                p => out.push(p),
            }
        }
        match out.len() {
            0 => Pre::Open,
            1 => out.pop().unwrap_or(Pre::Open),
            _ => Pre::And(out),
        }
    }

    fn or(parts: Vec<Pre>) -> Pre {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Pre::Open => return Pre::Open,
                Pre::Never => {}
                Pre::Or(v) => out.extend(v),
                p => out.push(p),
            }
        }
        match out.len() {
            0 => Pre::Never,
            1 => out.pop().unwrap_or(Pre::Never),
            _ => Pre::Or(out),
        }
    }

    fn render(&self, out: &mut String) {
        let join = |parts: &[Pre], op: &str, out: &mut String| {
            out.push('(');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(op);
                }
                p.render(out);
            }
            out.push(')');
        };
        match self {
            Pre::Open => out.push_str("true"),
            Pre::Never => out.push_str("false"),
            Pre::Expr(e) => out.push_str(e),
            Pre::And(v) => join(v, " and ", out),
            Pre::Or(v) => join(v, " or ", out),
        }
    }
}

/// What a rule reads in a hunt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleQuery {
    /// Events that pass this filter (`filter ...`).
    Filter(String),
    /// Every event of its log source (nothing in the rule narrows it through the index).
    Scan,
    /// Nothing: a field the rule needs is in no stored event of its log source.
    Nothing,
}

/// The index query of `rule` (after Quarry's field mapping) over events with `paths`.
pub fn rule_query(rule: &SigmaRule, paths: &StoredPaths) -> RuleQuery {
    let named = &rule.detection.named;
    let conds = rule
        .detection
        .conditions
        .iter()
        .map(|c| condition(c, named, paths))
        .collect();
    match Pre::or(conds) {
        Pre::Open => RuleQuery::Scan,
        Pre::Never => RuleQuery::Nothing,
        p => {
            let mut s = String::from("filter ");
            p.render(&mut s);
            RuleQuery::Filter(s)
        }
    }
}

fn condition(
    c: &ConditionExpr,
    named: &std::collections::HashMap<String, Detection>,
    paths: &StoredPaths,
) -> Pre {
    match c {
        ConditionExpr::And(v) => Pre::and(v.iter().map(|x| condition(x, named, paths)).collect()),
        ConditionExpr::Or(v) => Pre::or(v.iter().map(|x| condition(x, named, paths)).collect()),
        // The complement of a superset is not a superset of the complement.
        ConditionExpr::Not(_) => Pre::Open,
        ConditionExpr::Identifier(name) => {
            named.get(name).map_or(Pre::Open, |d| detection(d, paths))
        }
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let parts: Vec<Pre> = named
                .iter()
                .filter(|(n, _)| match pattern {
                    SelectorPattern::Them => !n.starts_with('_'),
                    SelectorPattern::Pattern(p) => glob(p, n),
                })
                .map(|(_, d)| detection(d, paths))
                .collect();
            match quantifier {
                Quantifier::All => Pre::and(parts),
                Quantifier::Any | Quantifier::Count(_) => Pre::or(parts),
            }
        }
    }
}

/// `*` wildcards of a selector pattern.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

fn detection(d: &Detection, paths: &StoredPaths) -> Pre {
    match d {
        Detection::AllOf(items) => Pre::and(items.iter().map(|i| item(i, paths)).collect()),
        Detection::AnyOf(subs) => Pre::or(subs.iter().map(|s| detection(s, paths)).collect()),
        Detection::And(subs) => Pre::and(subs.iter().map(|s| detection(s, paths)).collect()),
        Detection::Keywords(values) => Pre::or(values.iter().map(|v| keyword(v, paths)).collect()),
        // Array scopes are left to the rule.
        Detection::ArrayMatch { .. } | Detection::Conditional { .. } => Pre::Open,
    }
}

/// A keyword is a case-insensitive substring of the message or of any string field: the message's
/// words through the word index, each string field through its column.
fn keyword(v: &SigmaValue, paths: &StoredPaths) -> Pre {
    let SigmaValue::String(s) = v else {
        return Pre::Open;
    };
    if paths.strings.len() > MAX_KEYWORD_FIELDS {
        return Pre::Open;
    }
    // Every plain part is in the text; a part's words are in the block's words.
    let in_message = Pre::and(
        s.parts
            .iter()
            .filter_map(|p| match p {
                StringPart::Plain(t) if !t.is_empty() => {
                    Some(Pre::Expr(format!("`@message` like {}", quote(t))))
                }
                _ => None,
            })
            .collect(),
    );
    let re = slash_escape(&format!("(?is){}", wildcard_regex(s)));
    let mut any = vec![in_message];
    any.extend(
        paths
            .strings
            .iter()
            .map(|p| Pre::Expr(format!("{} =~ /{re}/", field(p)))),
    );
    Pre::or(any)
}

/// Fields every event has, whatever its record holds (see `SigmaEvent`): not in the index.
fn virtual_field(name: &str) -> bool {
    name == "message" || name == "@message" || name.starts_with("kubernetes.")
}

fn item(it: &DetectionItem, paths: &StoredPaths) -> Pre {
    let Some(name) = it.field.name.as_deref() else {
        return Pre::Open;
    };
    let mods = &it.field.modifiers;
    let opens = [
        Modifier::Exists,
        Modifier::Neq,
        Modifier::FieldRef,
        Modifier::Base64,
        Modifier::Base64Offset,
        Modifier::Wide,
        Modifier::Utf16,
        Modifier::Utf16be,
        Modifier::WindAsh,
        Modifier::Expand,
        Modifier::Minute,
        Modifier::Hour,
        Modifier::Day,
        Modifier::Week,
        Modifier::Month,
        Modifier::Year,
    ];
    if virtual_field(name)
        || mods
            .iter()
            .any(|m| opens.contains(m) && *m != Modifier::Exists)
    {
        return Pre::Open;
    }
    let stored = paths.resolve(name);
    if mods.contains(&Modifier::Exists) {
        return match it.values.as_slice() {
            [SigmaValue::Bool(true)] => Pre::or(
                stored
                    .iter()
                    .map(|p| Pre::Expr(format!("ispresent({})", field(p))))
                    .collect(),
            ),
            _ => Pre::Open,
        };
    }
    if stored.is_empty() {
        // A null value matches a missing field.
        return if it.values.iter().any(|v| matches!(v, SigmaValue::Null)) {
            Pre::Open
        } else {
            Pre::Never
        };
    }
    let per_value: Vec<Pre> = it
        .values
        .iter()
        .map(|v| match value_predicate(v, mods) {
            Some(pred) => Pre::or(stored.iter().map(|p| Pre::Expr(pred(&field(p)))).collect()),
            None => Pre::Open,
        })
        .collect();
    if mods.contains(&Modifier::All) {
        Pre::and(per_value)
    } else {
        Pre::or(per_value)
    }
}

/// A field reference in the query language.
fn field(path: &str) -> String {
    format!("`{}`", path.replace('\\', "\\\\").replace('`', "\\`"))
}

type Predicate = Box<dyn Fn(&str) -> String>;

/// The predicate a value puts on a field, or `None` when the index cannot decide it.
fn value_predicate(v: &SigmaValue, mods: &[Modifier]) -> Option<Predicate> {
    let has = |m| mods.contains(&m);
    let cmp = [
        (Modifier::Gt, ">"),
        (Modifier::Gte, ">="),
        (Modifier::Lt, "<"),
        (Modifier::Lte, "<="),
    ]
    .into_iter()
    .find(|(m, _)| has(*m))
    .map(|(_, op)| op);
    let number = match v {
        SigmaValue::Integer(i) => Some(i.to_string()),
        SigmaValue::Float(f) if f.is_finite() => Some(format!("{f:?}")),
        _ => None,
    };
    if let Some(op) = cmp {
        let n = number?;
        return Some(Box::new(move |f| format!("{f} {op} {n}")));
    }
    if has(Modifier::Cidr) {
        let SigmaValue::String(s) = v else {
            return None;
        };
        let cidr = quote(&s.original);
        return Some(Box::new(move |f| format!("isIpInSubnet({f}, {cidr})")));
    }
    // Numbers and booleans match their text (numeric strings equal numbers), any case.
    let re = match v {
        SigmaValue::Integer(_) | SigmaValue::Float(_) => {
            return Some(Box::new(move |f| {
                format!("{f} = {}", number.clone().unwrap_or_default())
            }))
        }
        SigmaValue::Bool(b) => format!("(?i)^{b}$"),
        SigmaValue::Null => return None,
        SigmaValue::String(s) if has(Modifier::Re) => {
            let mut flags = String::new();
            for (m, f) in [
                (Modifier::IgnoreCase, 'i'),
                (Modifier::Multiline, 'm'),
                (Modifier::DotAll, 's'),
            ] {
                if has(m) {
                    flags.push(f);
                }
            }
            if flags.is_empty() {
                s.original.clone()
            } else {
                format!("(?{flags}){}", s.original)
            }
        }
        SigmaValue::String(s) => {
            let body = wildcard_regex(s);
            let (start, end) = if has(Modifier::Contains) {
                ("", "")
            } else if has(Modifier::StartsWith) {
                ("^", "")
            } else if has(Modifier::EndsWith) {
                ("", "$")
            } else {
                ("^", "$")
            };
            let flags = if has(Modifier::Cased) {
                "(?s)"
            } else {
                "(?is)"
            };
            format!("{flags}{start}{body}{end}")
        }
    };
    // Quarry's regular-expression literal ends at an unescaped `/`.
    let lit = slash_escape(&re);
    Some(Box::new(move |f| format!("{f} =~ /{lit}/")))
}

/// A Sigma string with wildcards as a regular expression (without anchors).
fn wildcard_regex(s: &SigmaString) -> String {
    let mut out = String::new();
    for part in &s.parts {
        match part {
            StringPart::Plain(t) => out.push_str(&regex_escape(t)),
            StringPart::Special(SpecialChar::WildcardMulti) => out.push_str(".*"),
            StringPart::Special(SpecialChar::WildcardSingle) => out.push('.'),
        }
    }
    out
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes every `/` that is not already escaped.
fn slash_escape(re: &str) -> String {
    let mut out = String::with_capacity(re.len());
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '/' => out.push_str("\\/"),
            c => out.push(c),
        }
    }
    out
}

/// A string literal of the query language.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What to hunt over.
#[derive(Debug, Clone)]
pub struct HuntOptions {
    /// Earliest event time, UTC ns (inclusive).
    pub from: i64,
    /// Latest event time, UTC ns (exclusive).
    pub to: i64,
    /// Most hits kept (the earliest); the rest are counted.
    pub max_hits: usize,
    /// Also report the matches of rules that only feed correlations (Sigma's `generate: false`), as
    /// `quarry rules test` does; by default they are counted per rule but, as in live alerts, not listed.
    pub base_matches: bool,
    /// Only events this scope allows are read (planned into the scan), so rules and correlations never
    /// see the rest; `None` reads everything.
    pub scope: Option<quarry_model::Scope>,
}

impl Default for HuntOptions {
    fn default() -> Self {
        HuntOptions {
            from: i64::MIN,
            to: i64::MAX,
            max_hits: 10_000,
            base_matches: false,
            scope: None,
        }
    }
}

/// How one rule went in a hunt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleReport {
    /// The rule's id.
    pub rule_id: String,
    /// Its index query.
    pub query: RuleQuery,
    /// Events its query left.
    pub candidates: u64,
    /// Events it matched.
    pub matches: u64,
}

/// A hunt's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HuntReport {
    /// The earliest hits, oldest first: rule matches and the first firing of each correlation group.
    pub hits: Vec<Hit>,
    /// All hits, including those past `max_hits`.
    pub total_hits: u64,
    /// Per rule, in the detector's order.
    pub rules: Vec<RuleReport>,
    /// How the store was read.
    pub scan: ScanStats,
}

/// Runs the rules of `set` (compiled as `detector`) over the store's events in the options' range.
pub fn hunt(
    store: &Store,
    set: &RuleSet,
    detector: &Detector,
    opts: &HuntOptions,
) -> Result<HuntReport, RunError> {
    let pipeline = crate::detector::quarry_pipeline();
    let mut reports = Vec::new();
    let mut filters = Vec::new();
    let mut owner = Vec::new();
    let mut paths_of: BTreeMap<Vec<Kind>, StoredPaths> = BTreeMap::new();
    for r in &set.rules {
        let key = r.rule.id.clone().unwrap_or_else(|| r.rule.title.clone());
        let Some(index) = detector.rule_index(&key) else {
            continue;
        };
        // A duplicate id loads only once, from its first file.
        if detector.rules()[index].origin != r.origin {
            continue;
        }
        let kinds: Vec<Kind> = match &r.route.kinds {
            Some(k) => k.clone(),
            None => Kind::ALL.to_vec(),
        };
        let paths = paths_of
            .entry(kinds.clone())
            .or_insert_with(|| StoredPaths::of(store, &kinds, opts.from, opts.to));
        let mut mapped = r.rule.clone();
        let query = match rsigma_eval::pipeline::apply_pipelines(
            std::slice::from_ref(&pipeline),
            &mut mapped,
        ) {
            Ok(()) => rule_query(&mapped, paths),
            Err(_) => RuleQuery::Scan,
        };
        match &query {
            RuleQuery::Filter(q) => {
                owner.push(reports.len());
                filters.push(ScanFilter {
                    kinds,
                    query: q.clone(),
                });
            }
            RuleQuery::Scan => {
                owner.push(reports.len());
                filters.push(ScanFilter {
                    kinds,
                    query: String::new(),
                });
            }
            RuleQuery::Nothing => {}
        }
        reports.push((
            index,
            RuleReport {
                rule_id: key,
                query,
                candidates: 0,
                matches: 0,
            },
        ));
    }

    let mut scratch = Scratch::default();
    let mut matches = Vec::new();
    let mut hits: Vec<Hit> = Vec::new();
    let mut total_hits = 0u64;
    let mut per_rule = vec![0u64; detector.rules().len()];
    let mut correlator = detector.correlator(0);
    let keep = opts.max_hits;
    let scan = quarry_query::scan(
        store,
        &filters,
        &RunOptions {
            from: opts.from,
            to: opts.to,
            scope: opts.scope.clone(),
            ..RunOptions::default()
        },
        &mut |source, ev| {
            matches.clear();
            detector.detect(source, ev, &mut scratch, &mut matches);
            let mut results = Vec::new();
            for m in &mut matches {
                per_rule[m.rule] += 1;
                if opts.base_matches || detector.rules()[m.rule].generate {
                    total_hits += 1;
                    hits.push(Hit::of_match(detector, m, source, ev));
                }
                results.extend(m.result.take());
            }
            if hits.len() > keep.saturating_mul(2).max(1024) {
                earliest(&mut hits, keep);
            }
            if let (Some(c), false) = (&mut correlator, results.is_empty()) {
                c.push(source, ev, results, 0);
            }
        },
    )?;
    if let Some(c) = &mut correlator {
        let firings = Hit::first_firings(&c.release(detector.field_table(), 0, true));
        total_hits += firings.len() as u64;
        hits.extend(firings);
    }
    earliest(&mut hits, keep);
    for (i, f) in owner.iter().enumerate() {
        reports[*f].1.candidates = scan.per_filter[i];
    }
    let rules = reports
        .into_iter()
        .map(|(index, mut r)| {
            r.matches = per_rule[index];
            r
        })
        .collect();
    Ok(HuntReport {
        hits,
        total_hits,
        rules,
        scan,
    })
}

/// Keeps the `n` earliest hits, oldest first.
fn earliest(hits: &mut Vec<Hit>, n: usize) {
    hits.sort_by_key(|h| h.ts);
    hits.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_of(yaml: &str, paths: &[&str]) -> RuleQuery {
        let mut stored = StoredPaths::default();
        for p in paths {
            stored.add(p);
        }
        let coll = rsigma_parser::parse_sigma_yaml(yaml).unwrap();
        rule_query(&coll.rules[0], &stored)
    }

    const HEAD: &str = "title: t\nlogsource: {product: kubernetes, service: audit}\n";

    #[test]
    fn selections_become_case_insensitive_column_matches() {
        let q = query_of(
            &format!("{HEAD}detection:\n  sel:\n    verb: create\n    objectRef.resource|startswith: ['pod', 'depl*']\n  condition: sel\n"),
            &["verb", "objectRef.resource"],
        );
        assert_eq!(
            q,
            RuleQuery::Filter(
                "filter (`verb` =~ /(?is)^create$/ and (`objectRef.resource` =~ /(?is)^pod/ or \
                 `objectRef.resource` =~ /(?is)^depl.*/))"
                    .into()
            )
        );
    }

    #[test]
    fn array_fields_read_every_element_and_missing_fields_read_nothing() {
        let yaml = format!(
            "{HEAD}detection:\n  sel:\n    requestObject.spec.containers.securityContext.privileged: true\n  condition: sel\n"
        );
        let q = query_of(
            &yaml,
            &[
                "requestObject.spec.containers.0.securityContext.privileged",
                "requestObject.spec.containers.1.securityContext.privileged",
            ],
        );
        let RuleQuery::Filter(f) = q else {
            panic!("{q:?}")
        };
        assert!(
            f.contains("containers.0.") && f.contains("containers.1."),
            "{f}"
        );
        assert_eq!(query_of(&yaml, &["verb"]), RuleQuery::Nothing);
    }

    #[test]
    fn what_the_index_cannot_decide_stays_open() {
        for detection in [
            "  sel:\n    verb: create\n  condition: not sel\n",
            "  sel:\n    verb|exists: false\n  condition: sel\n",
            "  sel:\n    verb|base64: create\n  condition: sel\n",
            "  a:\n    verb: create\n  b:\n    user.username: x\n  condition: a or not b\n",
        ] {
            let q = query_of(
                &format!("{HEAD}detection:\n{detection}"),
                &["verb", "user.username"],
            );
            assert_eq!(q, RuleQuery::Scan, "{detection}");
        }
        // Open parts of an `and` leave the rest to narrow.
        let q = query_of(
            &format!("{HEAD}detection:\n  a:\n    verb: create\n  b:\n    user.username: x\n  condition: a and not b\n"),
            &["verb", "user.username"],
        );
        assert_eq!(
            q,
            RuleQuery::Filter("filter `verb` =~ /(?is)^create$/".into())
        );
    }

    #[test]
    fn keywords_read_message_words_and_string_fields() {
        let mut stored = StoredPaths::default();
        stored.add("appname");
        stored.strings.insert("appname".into());
        let coll = rsigma_parser::parse_sigma_yaml(
            "title: t\nlogsource: {product: linux, service: sshd}\n\
             detection:\n  kw:\n    - 'Failed password for '\n    - 'Invalid*user'\n  condition: kw\n",
        )
        .unwrap();
        assert_eq!(
            rule_query(&coll.rules[0], &stored),
            RuleQuery::Filter(
                "filter (`@message` like \"Failed password for \" or `appname` =~ /(?is)Failed password for / \
                 or (`@message` like \"Invalid\" and `@message` like \"user\") or `appname` =~ /(?is)Invalid.*user/)"
                    .into()
            )
        );
        for _ in 0..MAX_KEYWORD_FIELDS {
            stored.strings.insert(format!("f{}", stored.strings.len()));
        }
        assert_eq!(rule_query(&coll.rules[0], &stored), RuleQuery::Scan);
    }

    #[test]
    fn queries_parse_with_awkward_values() {
        let q = query_of(
            &format!("{HEAD}detection:\n  sel:\n    requestURI|contains: '/api/v1/a\"b`c\\\\d'\n    code|gte: 400\n    ip|cidr: 10.0.0.0/8\n    verb|re: '^(get|list)/x$'\n    n: 5\n  condition: sel\n"),
            &["requestURI", "code", "ip", "verb", "n"],
        );
        let RuleQuery::Filter(f) = q else {
            panic!("{q:?}")
        };
        quarry_query::parse_query(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
    }

    #[test]
    fn selectors_pick_detections_by_pattern() {
        let q = query_of(
            &format!("{HEAD}detection:\n  sel_a:\n    verb: a\n  sel_b:\n    verb: b\n  other:\n    verb: c\n  condition: 1 of sel_*\n"),
            &["verb"],
        );
        let RuleQuery::Filter(f) = q else {
            panic!("{q:?}")
        };
        assert!(
            f.contains("^a$") && f.contains("^b$") && !f.contains("^c$"),
            "{f}"
        );
        assert!(glob("sel_*", "sel_x") && glob("*_x", "sel_x") && !glob("a*b", "ac"));
    }
}
