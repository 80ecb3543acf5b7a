//! Candidate events for many filters at once: what a retro-hunt reads.
//!
//! A hunt runs hundreds of rules over months of data. Each rule is compiled (by the detection crate) into
//! a filter that every event the rule can match passes; [`scan`] plans every filter like a query's leading
//! filters (index terms, column dictionaries, block words), takes the union of what they leave in each
//! segment and reads each candidate event once. The caller then evaluates its rules exactly on the
//! events it is given, so the filters only decide how much is read, never what matches.

use crate::ast::{Command, Query};
use crate::error::QueryError;
use crate::parse_query;
use crate::plan::Plan;
use crate::run::{scoped, scoped_views, Bits, RunError, RunOptions, Seg};
use quarry_model::{Event, Kind, Source};
use quarry_store::read::{block_of, block_starts, materialize, read_block};
use quarry_store::{Store, StoreError};
use std::time::Instant;

/// One filter and the kinds of source it applies to.
#[derive(Debug, Clone)]
pub struct ScanFilter {
    /// Partitions of these kinds are searched.
    pub kinds: Vec<Kind>,
    /// `filter` and `search` commands only, e.g. `filter verb = "create" and objectRef.resource = "pods"`;
    /// empty for every event.
    pub query: String,
}

/// How a scan went.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ScanStats {
    /// Partitions (kind and day) searched.
    pub partitions: usize,
    /// Segments searched.
    pub segments: usize,
    /// Events in the time range of the searched partitions.
    pub events_in_range: u64,
    /// Events some filter left (each read once).
    pub candidates: u64,
    /// Events each filter left, in the order given.
    pub per_filter: Vec<u64>,
    /// Blocks decompressed.
    pub blocks_read: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: f64,
}

/// Plans `filters`, then calls `visit` with every event of the time range that at least one of them
/// leaves, with the source it was stored under, segment by segment. Events outside `opts.scope` are
/// neither planned in nor visited.
pub fn scan(
    store: &Store,
    filters: &[ScanFilter],
    opts: &RunOptions,
    visit: &mut dyn FnMut(&Source, &Event),
) -> Result<ScanStats, RunError> {
    let start = Instant::now();
    let now = opts.now_ns.unwrap_or_else(quarry_model::time::now_nanos);
    let mut plans = Vec::with_capacity(filters.len());
    let scope = opts.scope.as_ref();
    for f in filters {
        // An empty filter keeps every event (planned as `And([])`, exact), within the scope.
        let q = if f.query.trim().is_empty() {
            Query { commands: vec![] }
        } else {
            parse_query(&f.query)?
        };
        if let Some(c) = q
            .commands
            .iter()
            .find(|c| !matches!(c, Command::Filter(_) | Command::Search(_)))
        {
            return Err(QueryError::at(
                c.span(),
                format!(
                    "a scan takes only filter and search commands, not {}",
                    c.keyword()
                ),
            )
            .into());
        }
        plans.push(Plan::new(&scoped(q, scope)?)?);
    }
    let mut kinds: Vec<Kind> = filters
        .iter()
        .flat_map(|f| f.kinds.clone())
        .filter(|k| scope.is_none_or(|s| s.allows_kind(*k)))
        .collect();
    kinds.sort_by_key(|k| k.code());
    kinds.dedup();
    let views = scoped_views(store, Some(&kinds), scope, opts.from, opts.to);
    let mut stats = ScanStats {
        partitions: views.len(),
        per_filter: vec![0; filters.len()],
        ..ScanStats::default()
    };
    for view in &views {
        let mine: Vec<usize> = (0..filters.len())
            .filter(|&i| filters[i].kinds.contains(&view.key.kind))
            .collect();
        for (ord, reader) in view.searcher.segment_readers().iter().enumerate() {
            let seg = Seg::new(view, ord as u32, reader, opts.from, opts.to)?;
            stats.segments += 1;
            stats.events_in_range += seg.universe.count();
            let mut union = Bits::empty(seg.universe.len);
            for &i in &mine {
                let (mut hits, _exact) = seg.eval(&plans[i].push, &plans[i].leaves, now)?;
                hits.and(&seg.universe);
                stats.per_filter[i] += hits.count();
                union.or(&hits);
            }
            stats.candidates += union.count();
            // The plan may leave a superset; the scope is checked exactly on every event read.
            let mut in_scope = |src: &Source, e: &Event| {
                if scope.is_none_or(|s| s.allows_event(src, e)) {
                    visit(src, e)
                }
            };
            read_events(&seg, &union, &mut stats.blocks_read, &mut in_scope)?;
        }
    }
    stats.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    Ok(stats)
}

/// Reads the events `docs` of a segment (in document order, so each block is decompressed once).
fn read_events(
    seg: &Seg<'_>,
    docs: &Bits,
    blocks_read: &mut u64,
    visit: &mut dyn FnMut(&Source, &Event),
) -> Result<(), RunError> {
    if docs.count() == 0 {
        return Ok(());
    }
    let starts = block_starts(seg.reader, &seg.view.fields)?;
    let mut current = None;
    for doc in docs.iter() {
        let Some((start, at)) = block_of(&starts, doc) else {
            return Err(StoreError::Corrupt(format!("event document {doc} has no block")).into());
        };
        let block = match &current {
            Some((s, b)) if *s == start => b,
            _ => {
                let b = read_block(&seg.view.searcher, &seg.view.fields, seg.ord, start)?;
                *blocks_read += 1;
                &current.insert((start, b)).1
            }
        };
        let (meta, events) = block;
        let Some(stored) = events.get(at) else {
            return Err(StoreError::Corrupt(format!(
                "block at {start} is shorter than its documents"
            ))
            .into());
        };
        let ts = seg.ts.first(doc).unwrap_or_default();
        visit(&meta.source, &materialize(meta, stored, ts));
    }
    Ok(())
}
