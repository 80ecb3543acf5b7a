//! Running a query over the store: the planned predicate narrows each segment's events, then the
//! pipeline gets rows, newest first when the result depends on order.
//!
//! Rows come in one of two ways. When every field the query reads is in the segments' columns (and
//! none is `@message`), rows are read lazily from the columns ("columnar" mode: a `stats` over millions
//! of events touches no stored text). Otherwise each candidate event is read from its block and parsed
//! again ("events" mode).

use crate::ast::{BinaryOp, Command, Query};
use crate::error::{ExecError, QueryError};
use crate::eval::{compare, parse_num, Env, Rec, Val};
use crate::pipeline::{Options, Pipeline, Table};
use crate::plan::{is_builtin, Leaf, Plan, Push, Target};
use crate::{parse_query, Row};
use quarry_model::{Event, Kind, Scope, Value};
use quarry_store::block::{BlockMeta, StoredEvent};
use quarry_store::partition::PartView;
use quarry_store::read::{block_range, block_starts, materialize, read_block};
use quarry_store::schema::{column_names, field_term, MAX_FIELD_STR, TS};
use quarry_store::{Store, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tantivy::columnar::{Column, DynamicColumn};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, SegmentReader, Term, TERMINATED};

/// What to run a query over.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Earliest event time, UTC ns (inclusive).
    pub from: i64,
    /// Latest event time, UTC ns (exclusive).
    pub to: i64,
    /// Most rows returned when the query has no `limit`.
    pub max_rows: usize,
    /// The time `now()` and relative ranges use; the clock when `None`.
    pub now_ns: Option<i64>,
    /// What the caller may see: its filter is planned with the query (see [`Scope::filter_text`]), so
    /// events outside it are never read. `None` restricts nothing.
    pub scope: Option<Scope>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            from: i64::MIN,
            to: i64::MAX,
            max_rows: Options::default().max_rows,
            now_ns: None,
            scope: None,
        }
    }
}

/// `query` with the scope's filter put first, so it is planned (pushed into the index) and evaluated
/// before anything else.
pub(crate) fn scoped(mut query: Query, scope: Option<&Scope>) -> Result<Query, QueryError> {
    if let Some(text) = scope.and_then(Scope::filter_text) {
        let mut commands = parse_query(&text)?.commands;
        commands.append(&mut query.commands);
        query.commands = commands;
    }
    Ok(query)
}

/// The partitions of `kinds` (`None`: every kind the scope leaves searchable) in `[from, to)` that the
/// scope may see: a namespace's own partitions outside it are not even opened (the scope filter would
/// find nothing in them).
pub(crate) fn scoped_views(
    store: &Store,
    kinds: Option<&[Kind]>,
    scope: Option<&Scope>,
    from: i64,
    to: i64,
) -> Vec<PartView> {
    let scope_kinds = scope.and_then(|s| s.kinds.clone());
    let mut views = store.views(kinds.or(scope_kinds.as_deref()), from, to);
    if let Some(s) = scope {
        views.retain(|v| {
            v.key
                .namespace
                .as_deref()
                .is_none_or(|ns| s.allows_namespace(ns))
        });
    }
    views
}

/// How a query ran.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    /// Partitions (kind and day) in the time range.
    pub partitions: usize,
    /// Segments searched.
    pub segments: usize,
    /// Events in the time range.
    pub events_in_range: u64,
    /// Events left after the index narrowed them.
    pub candidates: u64,
    /// Rows given to the pipeline.
    pub rows_read: u64,
    /// Blocks decompressed.
    pub blocks_read: u64,
    /// `columnar` or `events`.
    pub mode: &'static str,
    /// Wall time in milliseconds.
    pub elapsed_ms: f64,
}

/// A query's result and how it ran.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The rows.
    pub table: Table,
    /// Statistics.
    pub stats: RunStats,
}

/// Failures of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The query text is wrong (has line and column).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The run hit a bound.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Reading the store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<tantivy::TantivyError> for RunError {
    fn from(e: tantivy::TantivyError) -> Self {
        RunError::Store(StoreError::Index(e))
    }
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        RunError::Store(StoreError::Io(e))
    }
}

/// Parses and runs a query over the store.
pub fn run(store: &Store, text: &str, opts: &RunOptions) -> Result<RunOutput, RunError> {
    let start = Instant::now();
    let query = scoped(parse_query(text)?, opts.scope.as_ref())?;
    let now = opts.now_ns.unwrap_or_else(quarry_model::time::now_nanos);
    let mut pipeline = Pipeline::with_options(
        &query,
        Options {
            max_rows: opts.max_rows,
            now_ns: Some(now),
            ..Options::default()
        },
    )?;
    let order = query.execution_order();
    let plan = Plan::new(&order)?;
    let views = scoped_views(store, None, opts.scope.as_ref(), opts.from, opts.to);
    let columnar = columnar_ok(&query, &views);
    let ordered = needs_order(&order);
    let mut stats = RunStats {
        partitions: views.len(),
        mode: if columnar { "columnar" } else { "events" },
        ..RunStats::default()
    };

    let mut segs: Vec<Seg<'_>> = Vec::new();
    for view in &views {
        for (ord, reader) in view.searcher.segment_readers().iter().enumerate() {
            let seg = Seg::new(view, ord as u32, reader, opts.from, opts.to)?;
            stats.events_in_range += seg.universe.count();
            let (mut hits, exact) = seg.eval(&plan.push, &plan.leaves, now)?;
            hits.and(&seg.universe);
            stats.candidates += hits.count();
            segs.push(Seg { hits, exact, ..seg });
        }
    }
    stats.segments = segs.len();

    // Counting from the index alone trusts it for fields with several values in one event; under a
    // namespace scope every row is judged instead.
    let scoped_ns = opts
        .scope
        .as_ref()
        .is_some_and(|s| s.filter_text().is_some());
    if let Some(table) = (!scoped_ns)
        .then(|| count_fast_path(&order, &segs, &views, now, opts))
        .transpose()?
        .flatten()
    {
        stats.mode = "columnar counts";
        stats.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        return Ok(RunOutput { table, stats });
    }
    let mut feeder = Feeder {
        pipeline: &mut pipeline,
        blocks: HashMap::new(),
        stats: &mut stats,
    };
    if ordered {
        feeder.newest_first(&segs, columnar)?;
    } else {
        for (i, seg) in segs.iter().enumerate() {
            if feeder.pipeline.is_satisfied() {
                break;
            }
            feeder.segment(i, seg, columnar)?;
        }
    }
    let table = pipeline.finish()?;
    stats.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    Ok(RunOutput { table, stats })
}

/// True when rows must arrive newest first for the result to be right: events are returned (or cut by
/// `limit`, or deduplicated) before any `stats` or `sort` reorders them.
fn needs_order(q: &Query) -> bool {
    for c in &q.commands {
        match c {
            Command::Stats(_) | Command::Sort(_) => return false,
            Command::Limit(_) | Command::Dedup(_) => return true,
            _ => {}
        }
    }
    true
}

/// True when every field the query reads can come from the columns of every partition.
fn columnar_ok(q: &Query, views: &[PartView]) -> bool {
    let mut names: Vec<&str> = Vec::new();
    for c in &q.commands {
        match c {
            Command::Unnest(_) | Command::Search(_) => return false,
            _ => c.exprs().iter().for_each(|e| names.extend(e.field_refs())),
        }
    }
    let outputs = crate::pipeline::output_columns(q);
    names.extend(outputs.iter().map(String::as_str));
    names.iter().all(|n| match *n {
        "@timestamp" | "@source" => true,
        n if is_builtin(n) => false,
        path => views
            .iter()
            .all(|v| v.meta.paths.get(path).is_none_or(|p| !p.partial)),
    })
}

/// A small bit set over a segment's documents.
#[derive(Clone)]
pub(crate) struct Bits {
    words: Vec<u64>,
    pub(crate) len: u32,
}

impl Bits {
    pub(crate) fn empty(len: u32) -> Bits {
        Bits {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    fn full(len: u32) -> Bits {
        let mut words = vec![u64::MAX; (len as usize).div_ceil(64)];
        if !len.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last = (1u64 << (len % 64)) - 1;
            }
        }
        Bits { words, len }
    }

    fn unset(&mut self, i: DocId) {
        self.words[(i / 64) as usize] &= !(1 << (i % 64));
    }

    fn set(&mut self, i: DocId) {
        self.words[(i / 64) as usize] |= 1 << (i % 64);
    }

    pub(crate) fn and(&mut self, o: &Bits) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= b);
    }

    pub(crate) fn or(&mut self, o: &Bits) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a |= b);
    }

    /// `universe` minus this set.
    fn complement_in(&self, universe: &Bits) -> Bits {
        Bits {
            words: universe
                .words
                .iter()
                .zip(&self.words)
                .map(|(u, s)| u & !s)
                .collect(),
            len: self.len,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = DocId> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }
}

/// One segment being searched.
pub(crate) struct Seg<'a> {
    pub(crate) view: &'a PartView,
    pub(crate) ord: u32,
    pub(crate) reader: &'a SegmentReader,
    pub(crate) ts: Column<i64>,
    /// Event documents in the time range.
    pub(crate) universe: Bits,
    /// Candidates after the plan.
    hits: Bits,
    /// True when `hits` are exactly the events the leading filters keep.
    exact: bool,
    columns: RefCell<HashMap<String, Rc<PathColumns>>>,
}

/// The fast columns (one per value type) of a field path, with the strings of its dictionary decoded
/// once each as rows ask for them.
struct PathColumns {
    cols: Vec<DynamicColumn>,
    strings: RefCell<HashMap<u64, String>>,
}

impl PathColumns {
    /// The strings of many ordinals of string column `ci`: one pass over the dictionary when there are
    /// many (a lookup by ordinal decodes a whole dictionary block each time).
    fn strings_of(&self, ci: usize, ords: &mut Vec<u64>) -> Result<HashMap<u64, String>, RunError> {
        let mut out = HashMap::with_capacity(ords.len());
        let Some(DynamicColumn::Str(sc)) = self.cols.get(ci) else {
            return Ok(out);
        };
        ords.sort_unstable();
        ords.dedup();
        if ords.len() < 64 {
            for &ord in ords.iter() {
                let mut s = String::new();
                if sc.ord_to_str(ord, &mut s)? {
                    out.insert(ord, s);
                }
            }
            return Ok(out);
        }
        let mut stream = sc.dictionary().stream()?;
        let mut want = ords.iter().peekable();
        while let Some(&&ord) = want.peek() {
            if !stream.advance() {
                break;
            }
            if stream.term_ord() == ord {
                out.insert(ord, String::from_utf8_lossy(stream.key()).into_owned());
                want.next();
            }
        }
        Ok(out)
    }

    fn value(&self, doc: DocId) -> Option<Value> {
        for c in &self.cols {
            if let DynamicColumn::Str(sc) = c {
                let Some(ord) = sc.term_ords(doc).next() else {
                    continue;
                };
                if let Some(s) = self.strings.borrow().get(&ord) {
                    return Some(Value::Str(s.clone()));
                }
                let mut s = String::new();
                if sc.ord_to_str(ord, &mut s).ok()? {
                    self.strings.borrow_mut().insert(ord, s.clone());
                    return Some(Value::Str(s));
                }
            } else if let Some(v) = column_value(c, doc) {
                return Some(v);
            }
        }
        None
    }
}

impl<'a> Seg<'a> {
    pub(crate) fn new(
        view: &'a PartView,
        ord: u32,
        reader: &'a SegmentReader,
        from: i64,
        to: i64,
    ) -> Result<Self, RunError> {
        let ts = reader.fast_fields().i64(TS)?;
        let max_doc = reader.max_doc();
        let universe = if view.meta.min_ts >= from && view.meta.max_ts < to {
            // The whole partition is in range: every document but the block documents.
            let mut all = Bits::full(max_doc);
            for &b in block_starts(reader, &view.fields)?.iter() {
                all.unset(b);
            }
            all
        } else {
            let mut some = Bits::empty(max_doc);
            for doc in 0..max_doc {
                if ts.first(doc).is_some_and(|t| t >= from && t < to) {
                    some.set(doc);
                }
            }
            some
        };
        Ok(Seg {
            view,
            ord,
            reader,
            ts,
            hits: Bits::empty(0),
            exact: false,
            universe,
            columns: RefCell::new(HashMap::new()),
        })
    }

    fn kind(&self) -> Kind {
        self.view.key.kind
    }

    /// The fast columns of a field path.
    fn columns(&self, path: &str) -> Result<Rc<PathColumns>, RunError> {
        if let Some(c) = self.columns.borrow().get(path) {
            return Ok(c.clone());
        }
        let mut cols = Vec::new();
        for name in column_names(path) {
            for h in self.reader.fast_fields().dynamic_column_handles(&name)? {
                cols.push(h.open()?);
            }
        }
        let cols = Rc::new(PathColumns {
            cols,
            strings: RefCell::new(HashMap::new()),
        });
        self.columns
            .borrow_mut()
            .insert(path.to_string(), cols.clone());
        Ok(cols)
    }

    /// The value of a field path in a document.
    fn value(&self, path: &str, doc: DocId) -> Option<Value> {
        self.columns(path).ok()?.value(doc)
    }

    /// Evaluates a predicate: the documents it keeps and whether that set is exact (else a superset).
    pub(crate) fn eval(
        &self,
        push: &Push,
        leaves: &[Leaf],
        now: i64,
    ) -> Result<(Bits, bool), RunError> {
        Ok(match push {
            Push::All => (self.universe.clone(), false),
            Push::Leaf(i) => self.leaf(&leaves[*i], now)?,
            Push::Words(words) => (self.words(words)?, false),
            Push::And(parts) => {
                let mut acc = self.universe.clone();
                let mut exact = true;
                for p in parts {
                    let (b, e) = self.eval(p, leaves, now)?;
                    acc.and(&b);
                    exact &= e;
                }
                (acc, exact)
            }
            Push::Or(parts) => {
                let mut acc = Bits::empty(self.universe.len);
                let mut exact = true;
                for p in parts {
                    let (b, e) = self.eval(p, leaves, now)?;
                    acc.or(&b);
                    exact &= e;
                }
                (acc, exact)
            }
            Push::Not(inner) => match self.eval(inner, leaves, now)? {
                (b, true) => (b.complement_in(&self.universe), true),
                (_, false) => (self.universe.clone(), false),
            },
        })
    }

    fn leaf(&self, leaf: &Leaf, now: i64) -> Result<(Bits, bool), RunError> {
        let mut rec = Rec {
            vals: vec![(leaf.name.clone(), Val::Null)],
        };
        let mut test = |v: Val| {
            rec.vals[0].1 = v;
            leaf.expr
                .eval(&Env {
                    rec: &rec,
                    base: None,
                    aggs: &[],
                    now,
                })
                .truthy()
        };
        let mut out = Bits::empty(self.universe.len);
        match &leaf.target {
            Target::Source => {
                if test(Val::Str(self.kind().as_str().to_string())) {
                    out = self.universe.clone();
                }
            }
            Target::Time => {
                for doc in self.universe.iter() {
                    if self.ts.first(doc).is_some_and(|t| test(Val::Time(t))) {
                        out.set(doc);
                    }
                }
            }
            Target::Field(path) => {
                let Some(info) = self.view.meta.paths.get(path) else {
                    // No event here has the field: it is null everywhere.
                    return Ok((
                        if test(Val::Null) {
                            self.universe.clone()
                        } else {
                            out
                        },
                        true,
                    ));
                };
                if info.partial {
                    return Ok((self.universe.clone(), false));
                }
                if let Some(lits) = leaf.eq_lits.as_ref().filter(|_| terms_answer(leaf)) {
                    self.term_hits(path, lits, &mut out)?;
                } else {
                    let mut has = Bits::empty(self.universe.len);
                    for col in self.columns(path)?.cols.iter() {
                        self.scan_column(col, leaf, &mut test, &mut has, &mut out)?;
                    }
                    if test(Val::Null) {
                        out.or(&has.complement_in(&self.universe));
                    }
                }
            }
        }
        Ok((out, true))
    }

    /// Documents whose field equals one of the literals, from index terms.
    /// Documents whose string or boolean field equals one of the literals, from index terms (see
    /// [`terms_answer`] for when that is exact).
    fn term_hits(&self, path: &str, lits: &[Val], out: &mut Bits) -> Result<(), RunError> {
        let fields = &self.view.fields;
        let inv = self.reader.inverted_index(fields.f)?;
        for lit in lits {
            let values: Vec<Value> = match lit {
                Val::Str(s) if s == "true" || s == "false" => {
                    vec![Value::Str(s.clone()), Value::Bool(s == "true")]
                }
                Val::Str(s) => vec![Value::Str(s.clone())],
                Val::Bool(b) => vec![Value::Bool(*b), Value::Str(b.to_string())],
                _ => Vec::new(),
            };
            for v in values {
                if let Some(term) = field_term(fields, path, &v) {
                    postings_into(&inv, &term, out)?;
                }
            }
        }
        Ok(())
    }

    fn scan_column(
        &self,
        col: &DynamicColumn,
        leaf: &Leaf,
        test: &mut dyn FnMut(Val) -> bool,
        has: &mut Bits,
        out: &mut Bits,
    ) -> Result<(), RunError> {
        let num_test = |x: f64| match leaf.num_cmp {
            Some((BinaryOp::Lt, y)) => Some(x < y),
            Some((BinaryOp::Le, y)) => Some(x <= y),
            Some((BinaryOp::Gt, y)) => Some(x > y),
            Some((BinaryOp::Ge, y)) => Some(x >= y),
            _ => None,
        };
        // `f = n` and `f in [..]` compare each value with the literals directly.
        let equals = |v: &Val| {
            leaf.eq_lits.as_ref().map(|lits| {
                lits.iter()
                    .any(|l| compare(v, l) == Some(std::cmp::Ordering::Equal))
            })
        };
        let mut numeric = |v: Option<Val>, x: f64, doc: DocId, has: &mut Bits, out: &mut Bits| {
            let Some(v) = v else { return };
            has.set(doc);
            if num_test(x)
                .or_else(|| equals(&v))
                .unwrap_or_else(|| test(v))
            {
                out.set(doc);
            }
        };
        match col {
            DynamicColumn::Str(c) => {
                let mut matching = vec![false; c.num_terms()];
                let mut stream = c.dictionary().stream()?;
                while stream.advance() {
                    let s = String::from_utf8_lossy(stream.key()).into_owned();
                    if let Some(slot) = matching.get_mut(stream.term_ord() as usize) {
                        *slot = test(Val::Str(s));
                    }
                }
                for doc in self.universe.iter() {
                    if let Some(ord) = c.term_ords(doc).next() {
                        has.set(doc);
                        if matching.get(ord as usize).copied().unwrap_or(false) {
                            out.set(doc);
                        }
                    }
                }
            }
            DynamicColumn::I64(c) => {
                for doc in self.universe.iter() {
                    if let Some(v) = c.first(doc) {
                        numeric(Some(Val::Int(v)), v as f64, doc, has, out);
                    }
                }
            }
            DynamicColumn::U64(c) => {
                for doc in self.universe.iter() {
                    if let Some(v) = c.first(doc) {
                        let val = i64::try_from(v)
                            .map(Val::Int)
                            .unwrap_or(Val::Float(v as f64));
                        numeric(Some(val), v as f64, doc, has, out);
                    }
                }
            }
            DynamicColumn::F64(c) => {
                for doc in self.universe.iter() {
                    if let Some(v) = c.first(doc) {
                        numeric(Some(Val::Float(v)), v, doc, has, out);
                    }
                }
            }
            DynamicColumn::Bool(c) => {
                for doc in self.universe.iter() {
                    if let Some(v) = c.first(doc) {
                        has.set(doc);
                        if test(Val::Bool(v)) {
                            out.set(doc);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Event documents of blocks whose messages hold every word.
    fn words(&self, words: &[String]) -> Result<Bits, RunError> {
        let fields = &self.view.fields;
        let inv = self.reader.inverted_index(fields.msg)?;
        let mut blocks: Option<Bits> = None;
        for w in words {
            let mut b = Bits::empty(self.universe.len);
            postings_into(&inv, &Term::from_field_text(fields.msg, w), &mut b)?;
            match &mut blocks {
                Some(acc) => acc.and(&b),
                None => blocks = Some(b),
            }
        }
        let mut out = Bits::empty(self.universe.len);
        let Some(blocks) = blocks else {
            return Ok(self.universe.clone());
        };
        let starts = block_starts(self.reader, fields)?;
        for start in blocks.iter() {
            for doc in block_range(&starts, start, self.reader.max_doc()) {
                out.set(doc);
            }
        }
        out.and(&self.universe);
        Ok(out)
    }
}

/// Index terms answer `f = lit` exactly when every literal is a non-numeric string or a boolean: such a
/// literal equals only strings and booleans (which are indexed), never a number. A numeric literal also
/// equals numbers and numeric strings such as "0403", which only a column scan finds.
fn terms_answer(leaf: &Leaf) -> bool {
    leaf.eq_lits.iter().flatten().all(|lit| match lit {
        Val::Str(s) => s.len() <= MAX_FIELD_STR && parse_num(s).is_none(),
        Val::Bool(_) | Val::Null => true,
        _ => false,
    })
}

fn postings_into(
    inv: &tantivy::InvertedIndexReader,
    term: &Term,
    out: &mut Bits,
) -> Result<(), RunError> {
    if let Some(mut p) = inv.read_postings(term, IndexRecordOption::Basic)? {
        let mut d = p.doc();
        while d != TERMINATED {
            if d < out.len {
                out.set(d);
            }
            d = p.advance();
        }
    }
    Ok(())
}

fn column_value(c: &DynamicColumn, doc: DocId) -> Option<Value> {
    match c {
        DynamicColumn::I64(c) => c.first(doc).map(Value::Int),
        DynamicColumn::U64(c) => c.first(doc).map(|v| {
            i64::try_from(v)
                .map(Value::Int)
                .unwrap_or(Value::Float(v as f64))
        }),
        DynamicColumn::F64(c) => c.first(doc).map(Value::Float),
        DynamicColumn::Bool(c) => c.first(doc).map(Value::Bool),
        _ => None,
    }
}

/// A row read lazily from a segment's columns.
struct ColumnRow<'s, 'a> {
    seg: &'s Seg<'a>,
    doc: DocId,
}

impl Row for ColumnRow<'_, '_> {
    fn get(&self, name: &str) -> Option<Value> {
        match name {
            "@timestamp" => self.seg.ts.first(self.doc).map(Value::Int),
            "@source" => Some(Value::Str(self.seg.kind().as_str().to_string())),
            path => self.seg.value(path, self.doc),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names = vec!["@timestamp".to_string(), "@source".to_string()];
        for path in self.seg.view.meta.paths.keys() {
            if self.seg.value(path, self.doc).is_some() {
                names.push(path.clone());
            }
        }
        names
    }
}

/// A row of an event read from its block.
pub(crate) struct EventRow<'m> {
    event: Event,
    meta: &'m BlockMeta,
}

impl Row for EventRow<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        let src = &self.meta.source;
        match name {
            "@timestamp" => Some(Value::Int(self.event.ts)),
            "@message" => Some(Value::Str(self.event.message().to_string())),
            "@source" => Some(Value::Str(src.kind.as_str().to_string())),
            "@log" => Some(Value::Str(
                src.cluster
                    .clone()
                    .unwrap_or_else(|| src.kind.as_str().to_string()),
            )),
            "@logStream" => Some(Value::Str(log_stream(self.meta, &self.event))),
            "@parseError" => self.event.parse_error.clone().map(Value::Str),
            _ => match src.coordinates().find(|(k, _)| *k == name) {
                Some((_, v)) => Some(Value::Str(v.to_string())),
                None => self.event.fields.get(name).cloned(),
            },
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = ["@timestamp", "@message", "@source", "@log", "@logStream"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(self.meta.source.coordinates().map(|(k, _)| k.to_string()));
        if self.event.parse_error.is_some() {
            names.push("@parseError".into());
        }
        names.extend(self.event.fields.iter().map(|(k, _)| k.to_string()));
        names
    }
}

/// `@logStream` as CloudWatch would name the event's stream.
fn log_stream(meta: &BlockMeta, e: &Event) -> String {
    let s = &meta.source;
    match s.kind {
        Kind::Container => format!(
            "{}_{}_{}",
            s.pod.as_deref().unwrap_or("-"),
            s.namespace.as_deref().unwrap_or("-"),
            s.container.as_deref().unwrap_or("-")
        ),
        Kind::Audit => "kube-apiserver-audit".to_string(),
        Kind::VpcFlow => e
            .fields
            .get("interfaceId")
            .map(|v| v.to_string())
            .unwrap_or_else(|| "vpcflow".into()),
        _ => s
            .node
            .clone()
            .unwrap_or_else(|| s.kind.as_str().to_string()),
    }
}

type DecodedBlock = Arc<(BlockMeta, Vec<StoredEvent>)>;

struct Feeder<'p, 's> {
    pipeline: &'p mut Pipeline,
    blocks: HashMap<(usize, DocId), DecodedBlock>,
    stats: &'s mut RunStats,
}

impl Feeder<'_, '_> {
    fn block(&mut self, i: usize, seg: &Seg<'_>, start: DocId) -> Result<DecodedBlock, RunError> {
        if let Some(b) = self.blocks.get(&(i, start)) {
            return Ok(b.clone());
        }
        if self.blocks.len() >= 256 {
            self.blocks.clear();
        }
        let b = Arc::new(read_block(
            &seg.view.searcher,
            &seg.view.fields,
            seg.ord,
            start,
        )?);
        self.stats.blocks_read += 1;
        self.blocks.insert((i, start), b.clone());
        Ok(b)
    }

    fn push_event(
        &mut self,
        i: usize,
        seg: &Seg<'_>,
        starts: &[DocId],
        doc: DocId,
    ) -> Result<(), RunError> {
        let Some((start, at)) = quarry_store::read::block_of(starts, doc) else {
            return Err(StoreError::Corrupt(format!("event document {doc} has no block")).into());
        };
        let block = self.block(i, seg, start)?;
        let Some(stored) = block.1.get(at) else {
            return Err(StoreError::Corrupt(format!(
                "block at {start} is shorter than its documents"
            ))
            .into());
        };
        let ts = seg.ts.first(doc).unwrap_or_default();
        let row = EventRow {
            event: materialize(&block.0, stored, ts),
            meta: &block.0,
        };
        self.stats.rows_read += 1;
        self.pipeline.push(&row)?;
        Ok(())
    }

    /// Feeds a segment's candidates in document order.
    fn segment(&mut self, i: usize, seg: &Seg<'_>, columnar: bool) -> Result<(), RunError> {
        let starts = if columnar {
            Arc::new(Vec::new())
        } else {
            block_starts(seg.reader, &seg.view.fields)?
        };
        for doc in seg.hits.iter() {
            if self.pipeline.is_satisfied() {
                break;
            }
            if columnar {
                self.stats.rows_read += 1;
                self.pipeline.push(&ColumnRow { seg, doc })?;
            } else {
                self.push_event(i, seg, &starts, doc)?;
            }
        }
        Ok(())
    }

    /// Feeds all candidates newest first, sorting only as many as the pipeline takes.
    fn newest_first(&mut self, segs: &[Seg<'_>], columnar: bool) -> Result<(), RunError> {
        let mut all: Vec<(i64, u32, DocId)> = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            for doc in seg.hits.iter() {
                if let Some(ts) = seg.ts.first(doc) {
                    all.push((ts, i as u32, doc));
                }
            }
        }
        let mut starts: HashMap<usize, Arc<Vec<DocId>>> = HashMap::new();
        let mut chunk = 1024usize;
        let mut rest = &mut all[..];
        while !rest.is_empty() && !self.pipeline.is_satisfied() {
            let k = chunk.min(rest.len());
            if k < rest.len() {
                rest.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
            }
            let (head, tail) = rest.split_at_mut(k);
            head.sort_unstable_by(|a, b| b.cmp(a));
            for &(_, i, doc) in head.iter() {
                if self.pipeline.is_satisfied() {
                    break;
                }
                let seg = &segs[i as usize];
                if columnar {
                    self.stats.rows_read += 1;
                    self.pipeline.push(&ColumnRow { seg, doc })?;
                } else {
                    let st = match starts.get(&(i as usize)) {
                        Some(s) => s.clone(),
                        None => {
                            let s = block_starts(seg.reader, &seg.view.fields)?;
                            starts.insert(i as usize, s.clone());
                            s
                        }
                    };
                    self.push_event(i as usize, seg, &st, doc)?;
                }
            }
            rest = tail;
            chunk = chunk.saturating_mul(4);
        }
        Ok(())
    }
}

/// A group key of the counting fast path, per document.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum KeyCode {
    Null,
    Ord(u16, u64),
    Int(i64),
    Float(u64),
    Bool(bool),
    Time(i64),
}

/// What a `by` key of the counting fast path reads.
enum CountKey {
    Bin(crate::ast::Period),
    Field(String),
    Source,
}

/// `[filters |] stats count(*) [as n] by <bin(period) | field> ... [| sort ...] [| limit n]`, with the
/// filters answered exactly by the index and the keys in the columns: counted per segment straight from
/// the columns into a hash map, without building rows. Other queries return `None`.
fn count_fast_path(
    order: &Query,
    segs: &[Seg<'_>],
    views: &[PartView],
    now: i64,
    opts: &RunOptions,
) -> Result<Option<Table>, RunError> {
    use crate::ast::{AggFunc, ExprKind, FieldsCommand, Function, Projection};
    let Some(i) = order
        .commands
        .iter()
        .position(|c| !matches!(c, Command::Filter(_)))
    else {
        return Ok(None);
    };
    let Command::Stats(st) = &order.commands[i] else {
        return Ok(None);
    };
    let rest = &order.commands[i + 1..];
    if !rest
        .iter()
        .all(|c| matches!(c, Command::Sort(_) | Command::Limit(_)))
        || segs.iter().any(|s| !s.exact)
    {
        return Ok(None);
    }
    let counts_only = st.items.iter().all(|p| {
        matches!(
            p.expr.kind,
            ExprKind::Agg {
                func: AggFunc::Count,
                arg: None
            }
        )
    });
    if !counts_only || st.by.is_empty() || st.by.len() > 3 {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for p in &st.by {
        keys.push(match &p.expr.kind {
            ExprKind::Call {
                func: Function::Bin,
                args,
            } => match args.first().map(|a| &a.kind) {
                Some(ExprKind::Period(period)) => CountKey::Bin(*period),
                _ => return Ok(None),
            },
            ExprKind::Field(f) if f == "@source" => CountKey::Source,
            ExprKind::Field(f) if !is_builtin(f) => {
                if views
                    .iter()
                    .any(|v| v.meta.paths.get(f).is_some_and(|p| p.partial))
                {
                    return Ok(None);
                }
                CountKey::Field(f.clone())
            }
            _ => return Ok(None),
        });
    }
    // Count per segment, then merge the groups by their values.
    let mut merged: HashMap<Vec<crate::eval::KeyVal>, (Vec<Value>, i64)> = HashMap::new();
    let mut group_order: Vec<Vec<crate::eval::KeyVal>> = Vec::new();
    for seg in segs {
        let cols: Vec<Option<Rc<PathColumns>>> = keys
            .iter()
            .map(|k| match k {
                CountKey::Field(p) => seg.columns(p).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        // Mixed numeric columns would make 5 and 5.0 two groups where the pipeline has one.
        if cols
            .iter()
            .flatten()
            .any(|c| c.cols.iter().filter(|c| c.is_numerical()).count() > 1)
        {
            return Ok(None);
        }
        let mut counts: rustc_hash::FxHashMap<[KeyCode; 3], i64> = Default::default();
        for doc in seg.hits.iter() {
            let mut key = [KeyCode::Null; 3];
            for (k, (spec, col)) in keys.iter().zip(&cols).enumerate() {
                key[k] = match spec {
                    CountKey::Bin(p) => seg
                        .ts
                        .first(doc)
                        .and_then(|t| p.floor(t))
                        .map_or(KeyCode::Null, KeyCode::Time),
                    CountKey::Source => KeyCode::Null,
                    CountKey::Field(_) => col.as_ref().map_or(KeyCode::Null, |c| key_code(c, doc)),
                };
            }
            *counts.entry(key).or_insert(0) += 1;
        }
        let mut strings: Vec<HashMap<u64, String>> = Vec::with_capacity(keys.len());
        for (k, col) in cols.iter().enumerate() {
            let mut by_col: HashMap<u16, Vec<u64>> = HashMap::new();
            for key in counts.keys() {
                if let KeyCode::Ord(ci, ord) = key[k] {
                    by_col.entry(ci).or_default().push(ord);
                }
            }
            let mut found = HashMap::new();
            if let Some(c) = col {
                for (ci, mut ords) in by_col {
                    found.extend(c.strings_of(ci as usize, &mut ords)?);
                }
            }
            strings.push(found);
        }
        for (key, n) in counts {
            let mut values = Vec::with_capacity(keys.len());
            for (k, spec) in keys.iter().enumerate() {
                values.push(match (spec, key[k]) {
                    (CountKey::Source, _) => Value::Str(seg.kind().as_str().to_string()),
                    (_, KeyCode::Time(t)) => Value::Str(crate::format_timestamp(t)),
                    (_, KeyCode::Ord(_, ord)) => strings[k]
                        .get(&ord)
                        .cloned()
                        .map_or(Value::Null, Value::Str),
                    (_, KeyCode::Int(v)) => Value::Int(v),
                    (_, KeyCode::Float(b)) => Value::Float(f64::from_bits(b)),
                    (_, KeyCode::Bool(b)) => Value::Bool(b),
                    (_, KeyCode::Null) => Value::Null,
                });
            }
            let kv: Vec<crate::eval::KeyVal> = values
                .iter()
                .map(|v| crate::eval::KeyVal::of(&Val::from_value("", v.clone())))
                .collect();
            match merged.get_mut(&kv) {
                Some(g) => g.1 += n,
                None => {
                    group_order.push(kv.clone());
                    merged.insert(kv, (values, n));
                }
            }
        }
    }
    // Rows as the pipeline's stats would give them (newest bin first), through the rest of the query.
    let bin_at = keys.iter().position(|k| matches!(k, CountKey::Bin(_)));
    let mut groups: Vec<(Vec<Value>, i64)> = group_order
        .into_iter()
        .filter_map(|k| merged.remove(&k))
        .collect();
    if let Some(b) = bin_at {
        groups.sort_by(|x, y| y.0[b].to_string().cmp(&x.0[b].to_string()));
    }
    let names: Vec<String> = st
        .by
        .iter()
        .chain(&st.items)
        .map(|p| p.name.clone())
        .collect();
    let mut commands = vec![Command::Fields(FieldsCommand {
        items: names
            .iter()
            .map(|n| Projection {
                expr: crate::ast::Expr {
                    kind: ExprKind::Field(n.clone()),
                    span: st.span,
                },
                alias: None,
                name: n.clone(),
                span: st.span,
            })
            .collect(),
        span: st.span,
    })];
    commands.extend(rest.iter().cloned());
    let sub = Query { commands };
    if crate::pipeline::output_columns(&sub) != crate::pipeline::output_columns(order) {
        return Ok(None);
    }
    let mut p = Pipeline::with_options(
        &sub,
        Options {
            max_rows: opts.max_rows,
            now_ns: Some(now),
            ..Options::default()
        },
    )?;
    for (values, n) in groups {
        let mut row: Vec<(String, Value)> =
            st.by.iter().map(|p| p.name.clone()).zip(values).collect();
        row.extend(st.items.iter().map(|p| (p.name.clone(), Value::Int(n))));
        p.push(&row)?;
    }
    Ok(Some(p.finish()?))
}

fn key_code(c: &PathColumns, doc: DocId) -> KeyCode {
    for (i, col) in c.cols.iter().enumerate() {
        let code = match col {
            DynamicColumn::Str(sc) => sc.term_ords(doc).next().map(|o| KeyCode::Ord(i as u16, o)),
            DynamicColumn::I64(x) => x.first(doc).map(KeyCode::Int),
            DynamicColumn::U64(x) => x.first(doc).map(|v| {
                i64::try_from(v)
                    .map(KeyCode::Int)
                    .unwrap_or(KeyCode::Float((v as f64).to_bits()))
            }),
            DynamicColumn::F64(x) => x.first(doc).map(|v| KeyCode::Float(v.to_bits())),
            DynamicColumn::Bool(x) => x.first(doc).map(KeyCode::Bool),
            _ => None,
        };
        if let Some(code) = code {
            return code;
        }
    }
    KeyCode::Null
}
