//! Correlation rules (Sigma `event_count`, `value_count`, `temporal`, `temporal_ordered`, and the numeric
//! aggregations) on **event time**, with bounded lateness.
//!
//! rsigma's correlation engine keeps per-group windows and expects events in time order. Batches from many
//! agents arrive interleaved and a little out of order, so matches of rules that correlations use are held
//! in a reorder buffer and released in event-time order once they are older than the newest event seen
//! from their source minus the allowed lateness ([`DEFAULT_LATENESS_NS`], 5 s), or once they have waited
//! that long on the wall clock (so a quiet stream still fires). A match older than what was already
//! released from its own source is too late for the windows: it still raises its own alert, is left out
//! of correlations, and is counted (`quarry_correlation_late_total`).
//!
//! Time order is kept per source (kind and coordinates), not across them: flow logs delivered from S3
//! minutes behind the audit log, or a file imported after another, still reach the windows. Each rule
//! reads one kind of log and rsigma judges `temporal_ordered` on each match's own time, so sources that
//! lag each other do not fake an order; a lagging source can only stretch a sliding window by its lag.

use crate::event::{FieldTable, Scratch, SigmaEvent};
use quarry_model::{Event, Source};
use rsigma_eval::{
    CorrelationConfig, CorrelationEngine, CorrelationEventMode, EvaluationResult, Pipeline,
};
use rsigma_parser::SigmaCollection;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// How far behind the newest event a match may arrive and still count in correlations.
pub const DEFAULT_LATENESS_NS: i64 = 5_000_000_000;

/// A match waiting for its turn.
struct Pending {
    ts: i64,
    seq: u64,
    arrived: i64,
    source: Source,
    event: Event,
    results: Vec<EvaluationResult>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

/// A correlation that fired.
#[derive(Debug, Clone)]
pub struct Fired {
    /// rsigma's result: the correlation rule's header, its group key, the aggregated value and the
    /// contributing events.
    pub result: EvaluationResult,
    /// Event time of the match that completed it (UTC ns).
    pub ts: i64,
    /// The source of that match.
    pub source: Source,
    /// That match's event (the one that completed the correlation), as evidence.
    pub event: serde_json::Value,
}

/// Event-time progress of one source.
struct Clock {
    max_seen: i64,
    released: i64,
}

/// The correlation stage.
pub struct Correlator {
    /// Two engines: one keeping the contributing events of each window (for `temporal` and
    /// `temporal_ordered` chains and the correlations they build on: few, telling matches), one keeping
    /// only counts (`event_count`, `value_count`, ... over base rules that can match a large share of the
    /// stream, where copying every match would cost more than detection itself).
    engines: Vec<CorrelationEngine>,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    lateness_ns: i64,
    /// Per source: the newest event time seen and the time of the last match released to the windows.
    clocks: HashMap<Source, Clock>,
    late: u64,
}

impl Correlator {
    /// A correlator for the correlations of `collection` (whose detection rules it names), or `None` when
    /// there are none. Errors name the correlation that cannot be used.
    pub fn new(
        collection: &SigmaCollection,
        pipeline: Pipeline,
        lateness_ns: i64,
    ) -> Result<Option<Correlator>, String> {
        if collection.correlations.is_empty() {
            return Ok(None);
        }
        let keeps = keeps_events(&collection.correlations);
        let mut engines = Vec::new();
        for (mode, keep) in [
            (CorrelationEventMode::Full, true),
            (CorrelationEventMode::None, false),
        ] {
            let mut part = SigmaCollection::new();
            part.rules = collection.rules.clone();
            part.correlations = collection
                .correlations
                .iter()
                .zip(&keeps)
                .filter(|(_, k)| **k == keep)
                .map(|(c, _)| c.clone())
                .collect();
            let config = CorrelationConfig {
                correlation_event_mode: mode,
                max_correlation_events: crate::alerts::MAX_EVIDENCE,
                ..CorrelationConfig::default()
            };
            let mut engine = CorrelationEngine::new(config);
            engine.add_pipeline(pipeline.clone());
            engine.add_collection(&part).map_err(|e| e.to_string())?;
            engines.push(engine);
        }
        Ok(Some(Correlator {
            engines,
            heap: BinaryHeap::new(),
            seq: 0,
            lateness_ns,
            clocks: HashMap::new(),
            late: 0,
        }))
    }

    /// Matches that came too late for the windows.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Takes the detection results of one event (only those of rules correlations use).
    pub fn push(&mut self, source: &Source, ev: &Event, results: Vec<EvaluationResult>, now: i64) {
        if !self.clocks.contains_key(source) {
            self.clocks.insert(
                source.clone(),
                Clock {
                    max_seen: i64::MIN,
                    released: i64::MIN,
                },
            );
        }
        let clock = self.clocks.get_mut(source).expect("inserted");
        clock.max_seen = clock.max_seen.max(ev.ts);
        if ev.ts < clock.released {
            self.late += 1;
            return;
        }
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            ts: ev.ts,
            seq: self.seq,
            arrived: now,
            source: source.clone(),
            event: ev.clone(),
            results,
        }));
    }

    /// Feeds the windows with every match that is due (all of them with `flush`), in event-time order;
    /// returns the correlations that fired.
    pub fn release(&mut self, table: &FieldTable, now: i64, flush: bool) -> Vec<Fired> {
        let mut fired = Vec::new();
        let mut scratch = Scratch::default();
        while let Some(Reverse(p)) = self.heap.peek() {
            let clock = self.clocks.get(&p.source);
            let horizon = clock.map_or(i64::MIN, |c| c.max_seen.saturating_sub(self.lateness_ns));
            let due = flush || p.ts <= horizon || now - p.arrived >= self.lateness_ns;
            if !due {
                break;
            }
            let Reverse(p) = self.heap.pop().expect("peeked");
            if let Some(c) = self.clocks.get_mut(&p.source) {
                c.released = c.released.max(p.ts);
            }
            let ev = SigmaEvent::new(table, &p.source, &p.event, &mut scratch);
            let secs = p.ts.div_euclid(1_000_000_000);
            let (last, rest) = self.engines.split_last_mut().expect("two engines");
            let mut out = Vec::new();
            for e in rest {
                out.extend(e.process_with_detections(&ev, p.results.clone(), secs));
            }
            out.extend(last.process_with_detections(&ev, p.results, secs));
            let mut evidence = None;
            for result in out.into_iter().filter(|r| r.is_correlation()) {
                let event = evidence
                    .get_or_insert_with(|| crate::evidence(&p.source, &p.event))
                    .clone();
                fired.push(Fired {
                    result,
                    ts: p.ts,
                    source: p.source.clone(),
                    event,
                });
            }
        }
        fired
    }

    /// The windows' state, to keep across a restart.
    pub fn export(&self) -> serde_json::Value {
        self.engines
            .iter()
            .map(|e| serde_json::to_value(e.export_state()).unwrap_or_default())
            .collect()
    }

    /// Restores windows saved by [`Correlator::export`]; false when the snapshot does not fit.
    pub fn import(&mut self, state: serde_json::Value) -> bool {
        let serde_json::Value::Array(parts) = state else {
            return false;
        };
        parts.len() == self.engines.len()
            && parts
                .into_iter()
                .zip(&mut self.engines)
                .all(|(s, e)| serde_json::from_value(s).is_ok_and(|s| e.import_state(s)))
    }
}

/// Which correlations keep their contributing events: those joined (through the rules they name) to a
/// `temporal` or `temporal_ordered` correlation, which must stay in one engine with it.
fn keeps_events(correlations: &[rsigma_parser::CorrelationRule]) -> Vec<bool> {
    use rsigma_parser::CorrelationType as T;
    let names = |c: &rsigma_parser::CorrelationRule| -> Vec<String> {
        c.id.iter().chain(c.name.iter()).cloned().collect()
    };
    let mut keep: Vec<bool> = correlations
        .iter()
        .map(|c| matches!(c.correlation_type, T::Temporal | T::TemporalOrdered))
        .collect();
    // Spread along references in both directions until nothing changes.
    loop {
        let mut changed = false;
        for i in 0..correlations.len() {
            for j in 0..correlations.len() {
                let linked = names(&correlations[j])
                    .iter()
                    .any(|n| correlations[i].rules.contains(n))
                    || names(&correlations[i])
                        .iter()
                        .any(|n| correlations[j].rules.contains(n));
                if linked && keep[i] != keep[j] {
                    keep[i] = true;
                    keep[j] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            return keep;
        }
    }
}
