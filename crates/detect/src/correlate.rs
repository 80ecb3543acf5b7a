//! Correlation rules (Sigma `event_count`, `value_count`, `temporal`, `temporal_ordered`, and the numeric
//! aggregations) on **event time**, with bounded lateness.
//!
//! rsigma's correlation engine keeps per-group windows and expects events in time order. Batches from many
//! agents arrive interleaved and a little out of order, so matches of rules that correlations use are held
//! in a reorder buffer and released in event-time order once they are older than the newest event seen
//! minus the allowed lateness ([`DEFAULT_LATENESS_NS`], 5 s), or once they have waited that long on the
//! wall clock (so a quiet stream still fires). A match older than what was already released is too late
//! for the windows: it still raises its own alert, is left out of correlations, and is counted
//! (`quarry_correlation_late_total`).

use crate::event::{FieldTable, Scratch, SigmaEvent};
use quarry_model::{Event, Source};
use rsigma_eval::{
    CorrelationConfig, CorrelationEngine, CorrelationEventMode, EvaluationResult, Pipeline,
};
use rsigma_parser::SigmaCollection;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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
}

/// The correlation stage.
pub struct Correlator {
    engine: CorrelationEngine,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    lateness_ns: i64,
    /// Newest event time seen.
    max_seen: i64,
    /// Event time of the last match released to the windows.
    released: i64,
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
        let config = CorrelationConfig {
            correlation_event_mode: CorrelationEventMode::Full,
            max_correlation_events: crate::alerts::MAX_EVIDENCE,
            ..CorrelationConfig::default()
        };
        let mut engine = CorrelationEngine::new(config);
        engine.add_pipeline(pipeline);
        engine
            .add_collection(collection)
            .map_err(|e| e.to_string())?;
        Ok(Some(Correlator {
            engine,
            heap: BinaryHeap::new(),
            seq: 0,
            lateness_ns,
            max_seen: i64::MIN,
            released: i64::MIN,
            late: 0,
        }))
    }

    /// Matches that came too late for the windows.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Takes the detection results of one event (only those of rules correlations use).
    pub fn push(&mut self, source: &Source, ev: &Event, results: Vec<EvaluationResult>, now: i64) {
        self.max_seen = self.max_seen.max(ev.ts);
        if ev.ts < self.released {
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
        let horizon = self.max_seen.saturating_sub(self.lateness_ns);
        let mut fired = Vec::new();
        let mut scratch = Scratch::default();
        while let Some(Reverse(p)) = self.heap.peek() {
            let due = flush || p.ts <= horizon || now - p.arrived >= self.lateness_ns;
            if !due {
                break;
            }
            let Reverse(p) = self.heap.pop().expect("peeked");
            self.released = self.released.max(p.ts);
            let ev = SigmaEvent::new(table, &p.source, &p.event, &mut scratch);
            let out =
                self.engine
                    .process_with_detections(&ev, p.results, p.ts.div_euclid(1_000_000_000));
            fired.extend(
                out.into_iter()
                    .filter(|r| r.is_correlation())
                    .map(|result| Fired {
                        result,
                        ts: p.ts,
                        source: p.source.clone(),
                    }),
            );
        }
        fired
    }

    /// The windows' state, to keep across a restart.
    pub fn export(&self) -> serde_json::Value {
        serde_json::to_value(self.engine.export_state()).unwrap_or_default()
    }

    /// Restores windows saved by [`Correlator::export`]; false when the snapshot does not fit.
    pub fn import(&mut self, state: serde_json::Value) -> bool {
        serde_json::from_value(state).is_ok_and(|s| self.engine.import_state(s))
    }
}
