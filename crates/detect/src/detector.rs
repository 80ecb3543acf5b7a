//! The compiled matcher: every loaded rule compiled once, grouped by the source kind it reads, so an event
//! is only offered to the rules of its kind; within a kind, rsigma's candidate index (an inverted index over
//! the literals and fields rules require, with Aho-Corasick automata for substrings) picks the few rules
//! worth evaluating, instead of a loop over all rules.

use crate::correlate::{Correlator, DEFAULT_LATENESS_NS};
use crate::event::{FieldTable, Scratch, SigmaEvent};
use crate::logsource::Route;
use crate::rules::{Origin, Problem, ProblemKind, RuleSet};
use quarry_model::{Event, Kind, Source};
use rsigma_eval::{parse_pipeline, Engine, EvaluationResult, Pipeline, RuleFieldSet};
use rsigma_parser::SigmaCollection;
use rustc_hash::FxHashMap;
use serde::Serialize;

/// Quarry's field-mapping pipeline (see `src/pipeline.yml`).
const PIPELINE: &str = include_str!("pipeline.yml");

/// Severity of a rule, as Sigma names it; ordered from informational to critical.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `informational`
    Informational,
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `critical`
    Critical,
}

impl Level {
    /// The Sigma name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    fn from_sigma(l: Option<rsigma_parser::Level>) -> Level {
        use rsigma_parser::Level as L;
        match l {
            Some(L::Critical) => Level::Critical,
            Some(L::High) => Level::High,
            Some(L::Medium) | None => Level::Medium,
            Some(L::Low) => Level::Low,
            Some(L::Informational) => Level::Informational,
        }
    }
}

/// A rule's level; `medium` when it gives none.
impl From<Option<rsigma_parser::Level>> for Level {
    fn from(l: Option<rsigma_parser::Level>) -> Level {
        Level::from_sigma(l)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        [
            Level::Informational,
            Level::Low,
            Level::Medium,
            Level::High,
            Level::Critical,
        ]
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            format!("unknown level {s:?}: expected informational, low, medium, high or critical")
        })
    }
}

/// What Quarry knows of one loaded rule.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    /// The rule's `id`, or its title when it has none.
    pub id: String,
    /// Title.
    pub title: String,
    /// Severity (`medium` when the rule gives none).
    pub level: Level,
    /// Tags, ATT&CK ones included (`attack.t1609`).
    pub tags: Vec<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file it came from.
    pub origin: Origin,
    /// Custom top-level attributes (the built-in pack's `falco`, `guardduty`).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    route: Route,
    /// Whether a correlation rule names this rule.
    #[serde(skip)]
    pub correlated: bool,
    /// Whether its matches raise alerts of their own: Sigma's `generate`. A rule that correlations name
    /// only feeds them, unless one of them says `generate: true`.
    pub generate: bool,
}

impl RuleInfo {
    /// The strings of a list-valued custom attribute (`falco: [...]`); a single string counts as a list of
    /// one.
    pub fn attribute_list(&self, name: &str) -> Vec<&str> {
        match self.attributes.get(name) {
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// One rule matching one event.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    /// Index of the rule in [`Detector::rules`].
    pub rule: usize,
    /// The rule's named detections that matched.
    pub selections: Vec<String>,
    /// The event's values that made them match, as `(field, value)`.
    pub fields: Vec<(String, serde_json::Value)>,
    /// rsigma's result, kept for rules that correlations use (the correlation stage needs it).
    #[serde(skip)]
    pub result: Option<EvaluationResult>,
}

/// All rules, compiled.
pub struct Detector {
    rules: Vec<RuleInfo>,
    by_key: FxHashMap<String, usize>,
    /// One engine per [`Kind::code`]; `None` where no rule reads the kind.
    engines: Vec<Option<Engine>>,
    table: FieldTable,
    problems: Vec<Problem>,
    /// The loaded rules and correlations, for the correlation stage.
    collection: SigmaCollection,
}

impl Detector {
    /// Compiles `set`. Rules that do not compile, and duplicate ids, become [`Detector::problems`] (with the
    /// set's own problems); the rest load.
    pub fn new(set: &RuleSet) -> Detector {
        let pipeline = quarry_pipeline();
        let mut problems = set.problems.clone();
        let mut rules = Vec::new();
        let mut by_key = FxHashMap::default();
        let mut loaded = Vec::new();
        for r in &set.rules {
            let key = r.rule.id.clone().unwrap_or_else(|| r.rule.title.clone());
            if let Some(&first) = by_key.get(&key) {
                let first: &RuleInfo = &rules[first];
                problems.push(Problem {
                    origin: r.origin.clone(),
                    rule: Some(r.rule.title.clone()),
                    kind: ProblemKind::Error,
                    message: format!("rule id {key:?} is already used by {}", first.origin),
                });
                continue;
            }
            by_key.insert(key.clone(), rules.len());
            let naming: Vec<_> = set
                .correlations
                .iter()
                .filter(|c| {
                    c.rule.rules.iter().any(|x| {
                        r.rule.id.as_deref() == Some(x.as_str())
                            || r.rule.name.as_deref() == Some(x.as_str())
                    })
                })
                .collect();
            rules.push(RuleInfo {
                id: key,
                title: r.rule.title.clone(),
                level: Level::from_sigma(r.rule.level),
                tags: r.rule.tags.clone(),
                description: r.rule.description.clone(),
                origin: r.origin.clone(),
                attributes: r
                    .rule
                    .custom_attributes
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
                    .collect(),
                route: r.route.clone(),
                correlated: !naming.is_empty(),
                generate: naming.is_empty() || naming.iter().any(|c| c.rule.generate),
            });
            loaded.push(&r.rule);
        }

        // One engine per kind. A rule that does not compile fails alike in every engine it goes to; it is
        // reported once, and so is a filter.
        let mut failed = vec![false; rules.len()];
        let mut filter_failed = vec![false; set.filters.len()];
        let mut engines: Vec<Option<Engine>> = Vec::new();
        for kind in Kind::ALL {
            let mine: Vec<usize> = (0..rules.len())
                .filter(|&i| !failed[i] && rules[i].route.reads(kind))
                .collect();
            if mine.is_empty() {
                engines.push(None);
                continue;
            }
            let mut engine = Engine::new_with_pipeline(pipeline.clone());
            for (j, e) in engine.add_rules(mine.iter().map(|&i| loaded[i])) {
                let i = mine[j];
                failed[i] = true;
                problems.push(Problem {
                    origin: rules[i].origin.clone(),
                    rule: Some(rules[i].title.clone()),
                    kind: ProblemKind::Error,
                    message: e.to_string(),
                });
            }
            for (f, filter) in set.filters.iter().enumerate() {
                if let Err(e) = engine.apply_filter(filter) {
                    if !std::mem::replace(&mut filter_failed[f], true) {
                        problems.push(Problem {
                            origin: "filter".into(),
                            rule: Some(filter.title.clone()),
                            kind: ProblemKind::Error,
                            message: e.to_string(),
                        });
                    }
                }
            }
            engines.push(Some(engine));
        }

        let mut all = SigmaCollection::new();
        all.rules = loaded.iter().map(|r| (*r).clone()).collect();
        all.correlations = set.correlations.iter().map(|c| c.rule.clone()).collect();
        let fields = RuleFieldSet::collect(&all, std::slice::from_ref(&pipeline), true);
        let table = FieldTable::new(fields.names());
        // The correlation stage needs only the rules correlations name (it gets their matches from here).
        let mut collection = SigmaCollection::new();
        collection.rules = (0..rules.len())
            .filter(|&i| rules[i].correlated && !failed[i])
            .map(|i| loaded[i].clone())
            .collect();
        collection.correlations = all.correlations;
        if let Err(e) = Correlator::new(&collection, pipeline, DEFAULT_LATENESS_NS) {
            problems.push(Problem {
                origin: "correlations".into(),
                rule: None,
                kind: ProblemKind::Error,
                message: e,
            });
            collection.correlations.clear();
        }
        Detector {
            rules,
            by_key,
            engines,
            table,
            problems,
            collection,
        }
    }

    /// The correlation stage for the loaded correlation rules (`None` when there are none).
    pub fn correlator(&self, lateness_ns: i64) -> Option<Correlator> {
        Correlator::new(&self.collection, quarry_pipeline(), lateness_ns)
            .ok()
            .flatten()
    }

    /// The table of the fields rules name (for reading events outside [`Detector::detect`]).
    pub fn field_table(&self) -> &FieldTable {
        &self.table
    }

    /// The loaded rules.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// The index in [`Detector::rules`] of the rule with this id (or title, for a rule without an id).
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.by_key.get(id).copied()
    }

    /// Files and rules that did not load, and why.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Appends to `out` the rules `ev` (from `source`) matches.
    pub fn detect(&self, source: &Source, ev: &Event, scratch: &mut Scratch, out: &mut Vec<Match>) {
        let kind = source.kind;
        let Some(Some(engine)) = self.engines.get(kind.code() as usize) else {
            return;
        };
        let sev = SigmaEvent::new(&self.table, source, ev, scratch);
        for r in engine.evaluate(&sev) {
            let key = r.header.rule_id.as_deref().unwrap_or(&r.header.rule_title);
            let Some(&rule) = self.by_key.get(key) else {
                continue;
            };
            if !self.rules[rule].route.admits(kind, ev) {
                continue;
            }
            let Some(body) = r.as_detection() else {
                continue;
            };
            let selections = body.matched_selections.clone();
            let fields = body
                .matched_fields
                .iter()
                .map(|f| (f.field.clone(), f.value.clone()))
                .collect();
            out.push(Match {
                rule,
                selections,
                fields,
                result: self.rules[rule].correlated.then_some(r),
            });
        }
    }
}

/// The pipeline every rule goes through.
pub(crate) fn quarry_pipeline() -> Pipeline {
    parse_pipeline(PIPELINE).expect("the built-in pipeline parses (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(json: serde_json::Value) -> Event {
        let mut ev = Event::text(0, json.to_string());
        quarry_model::flatten_json("", &json, &mut ev.fields);
        ev
    }

    #[test]
    fn dispatches_by_kind_maps_fields_and_reports_bad_rules() {
        let mut set = RuleSet::new();
        set.add_yaml(
            "k.yml",
            "title: Hostpath\nid: hp\nlogsource: {product: kubernetes, service: audit}\nlevel: high\n\
             tags: [attack.t1611]\n\
             detection: {sel: {verb: create, objectRef.resource: pods, hostPath: '*'}, condition: sel}\n\
             ---\n\
             title: Broken\nlogsource: {product: kubernetes, service: audit}\n\
             detection: {sel: {verb|re: '(unclosed'}, condition: sel}\n\
             ---\n\
             title: Sshd\nlogsource: {product: linux, service: sshd}\n\
             detection: {keywords: ['Failed password'], condition: keywords}\n",
        );
        let d = Detector::new(&set);
        assert_eq!(d.rules().len(), 3);
        assert_eq!(d.problems().len(), 1, "{:?}", d.problems());
        assert!(d.problems()[0].to_string().contains("Broken"));

        let ev = audit(serde_json::json!({
            "verb": "create", "objectRef": {"resource": "pods"},
            "requestObject": {"spec": {"volumes": [{"name": "a"}, {"hostPath": {"path": "/etc"}}]}}
        }));
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        d.detect(&Source::of_kind(Kind::Audit), &ev, &mut scratch, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(d.rules()[out[0].rule].id, "hp");
        assert_eq!(d.rules()[out[0].rule].level, Level::High);
        // The same event as another kind reaches no audit rule.
        out.clear();
        d.detect(&Source::of_kind(Kind::Json), &ev, &mut scratch, &mut out);
        assert!(out.is_empty());

        let mut line = Event::text(0, "<38>Jan 1 00:00:00 h sshd[1]: Failed password for root");
        line.message = Some("Failed password for root".into());
        line.fields.push("appname", "sshd");
        d.detect(
            &Source::of_kind(Kind::Syslog),
            &line,
            &mut scratch,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        out.clear();
        line.fields = quarry_model::Fields::new();
        line.fields.push("appname", "sudo");
        d.detect(
            &Source::of_kind(Kind::Syslog),
            &line,
            &mut scratch,
            &mut out,
        );
        assert!(out.is_empty(), "service: sshd reads only sshd's lines");
    }

    #[test]
    fn pipeline_parses() {
        quarry_pipeline();
    }
}
