//! Runs a query's commands over rows pushed one at a time (newest first), and the [`Table`] it
//! produces with its JSON, CSV and terminal renderings.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use quarry_model::Value;
use regex::Regex;

use crate::ast::{AggFunc, Command, ExprKind, Function, Order, ParsePattern, Query};
use crate::error::{ExecError, QueryError};
use crate::eval::{
    compile_regex, glob_to_regex, AggSpec, CExpr, Compiler, Env, Interner, KeyVal, Name, Rec,
    SortVal, Val,
};
use crate::Row;

/// Bounds and settings of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Most rows returned when the query has no `limit` (Logs Insights returns at most 10,000).
    pub max_rows: usize,
    /// Most `stats` groups held before the run fails with [`ExecError::TooManyGroups`].
    pub max_groups: usize,
    /// Most rows a `sort` holds before the run fails with [`ExecError::TooManyRows`].
    pub max_buffered_rows: usize,
    /// The time `now()` returns (UTC nanoseconds); the clock when `None`.
    pub now_ns: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_rows: 10_000,
            max_groups: 1_000_000,
            max_buffered_rows: 10_000_000,
            now_ns: None,
        }
    }
}

/// The result of a query: named columns and rows of values (timestamps formatted as
/// `YYYY-MM-DD HH:MM:SS.mmm`, missing values null).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
}

/// Widest cell [`Table::to_text_table`] prints before cutting it short.
pub const TEXT_CELL_WIDTH: usize = 60;

impl Table {
    /// Rebuilds a table from its column names and [`Table::to_json`] rows (as a server returns them).
    pub fn from_json(
        columns: Vec<String>,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> Table {
        let value = |v: Option<&serde_json::Value>| match v {
            None | Some(serde_json::Value::Null) => Value::Null,
            Some(serde_json::Value::Bool(b)) => Value::Bool(*b),
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .map(Value::Int)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
            Some(serde_json::Value::String(s)) => Value::Str(s.clone()),
            Some(other) => Value::Str(other.to_string()),
        };
        let rows = rows
            .iter()
            .map(|r| columns.iter().map(|c| value(r.get(c))).collect())
            .collect();
        Table { columns, rows }
    }

    /// An array with one object per row (`column: value`, in column order); null cells are left out,
    /// as Logs Insights leaves out fields an event does not have.
    pub fn to_json(&self) -> serde_json::Value {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let obj: serde_json::Map<String, serde_json::Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !matches!(v, Value::Null))
                    .map(|(c, v)| (c.clone(), value_json(v)))
                    .collect();
                serde_json::Value::Object(obj)
            })
            .collect();
        serde_json::Value::Array(rows)
    }

    /// RFC 4180 CSV with a header line; null cells are empty.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = String>| {
            let mut first = true;
            for c in cells {
                if !first {
                    out.push(',');
                }
                first = false;
                if c.contains([',', '"', '\n', '\r']) {
                    out.push('"');
                    out.push_str(&c.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(&c);
                }
            }
            out.push_str("\r\n");
        };
        line(&mut out, &mut self.columns.iter().cloned());
        for row in &self.rows {
            line(&mut out, &mut row.iter().map(cell_text));
        }
        out
    }

    /// An aligned table for a terminal, cells cut to [`TEXT_CELL_WIDTH`] characters.
    pub fn to_text_table(&self) -> String {
        self.to_text_table_width(TEXT_CELL_WIDTH)
    }

    /// An aligned table for a terminal, cells cut to `max_cell` characters (at least 4) with `…`;
    /// line breaks and tabs in cells are shown as `\n`, `\t`.
    pub fn to_text_table_width(&self, max_cell: usize) -> String {
        let max_cell = max_cell.max(4);
        let fit = |s: &str| -> String {
            let s = s
                .replace('\r', "\\r")
                .replace('\n', "\\n")
                .replace('\t', "\\t");
            if s.chars().count() > max_cell {
                let mut t: String = s.chars().take(max_cell - 1).collect();
                t.push('…');
                t
            } else {
                s
            }
        };
        let header: Vec<String> = self.columns.iter().map(|c| fit(c)).collect();
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|v| fit(&cell_text(v))).collect())
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &body {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let push_row = |out: &mut String, cells: &[String]| {
            let mut line = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                if i + 1 < cells.len() {
                    line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        push_row(&mut out, &header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        push_row(&mut out, &rule);
        for row in &body {
            push_row(&mut out, row);
        }
        out
    }
}

fn value_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Field values a row must carry past a `sort` (which cannot keep the input row itself).
#[derive(Default)]
struct Needed {
    exact: Vec<Name>,
    prefixes: Vec<String>,
}

fn materialize(rec: &mut Rec, base: Option<&dyn Row>, needed: &Needed) {
    let Some(base) = base else { return };
    for n in &needed.exact {
        if rec.find(n).is_none() {
            if let Some(v) = base.get(n) {
                let v = Val::from_value(n, v);
                rec.vals.push((n.clone(), v));
            }
        }
    }
    if !needed.prefixes.is_empty() {
        for name in base.names() {
            if needed.prefixes.iter().any(|p| name.starts_with(p.as_str()))
                && rec.find(&name).is_none()
            {
                if let Some(v) = base.get(&name) {
                    let v = Val::from_value(&name, v);
                    rec.vals.push((Arc::from(name.as_str()), v));
                }
            }
        }
    }
}

enum AggState {
    Count(i64),
    Distinct(HashSet<KeyVal>),
    Sum {
        int: i64,
        float: f64,
        is_float: bool,
        any: bool,
    },
    Avg {
        sum: f64,
        n: u64,
    },
    Min(Option<(SortVal, Val)>),
    Max(Option<(SortVal, Val)>),
    Stddev {
        n: u64,
        mean: f64,
        m2: f64,
    },
    Pct {
        p: f64,
        vals: Vec<(f64, Val)>,
    },
    Earliest(Option<(Option<i64>, Val)>),
    Latest(Option<(Option<i64>, Val)>),
}

impl AggState {
    fn new(func: AggFunc) -> AggState {
        match func {
            AggFunc::Count => AggState::Count(0),
            AggFunc::CountDistinct => AggState::Distinct(HashSet::new()),
            AggFunc::Sum => AggState::Sum {
                int: 0,
                float: 0.0,
                is_float: false,
                any: false,
            },
            AggFunc::Avg => AggState::Avg { sum: 0.0, n: 0 },
            AggFunc::Min | AggFunc::SortsFirst => AggState::Min(None),
            AggFunc::Max | AggFunc::SortsLast => AggState::Max(None),
            AggFunc::Stddev => AggState::Stddev {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            },
            AggFunc::Pct(p) => AggState::Pct {
                p,
                vals: Vec::new(),
            },
            AggFunc::Median => AggState::Pct {
                p: 50.0,
                vals: Vec::new(),
            },
            AggFunc::Earliest => AggState::Earliest(None),
            AggFunc::Latest => AggState::Latest(None),
        }
    }

    /// Adds one row's value (`None` for `count(*)`); nulls are skipped.
    fn update(&mut self, v: Option<Val>, ts: Option<i64>) {
        let v = match v {
            None => {
                if let AggState::Count(c) = self {
                    *c += 1;
                }
                return;
            }
            Some(Val::Null) => return,
            Some(v) => v,
        };
        match self {
            AggState::Count(c) => *c += 1,
            AggState::Distinct(set) => {
                set.insert(KeyVal::of(&v));
            }
            AggState::Sum {
                int,
                float,
                is_float,
                any,
            } => match v.num() {
                Some(crate::eval::Num::I(i)) if !*is_float => {
                    *any = true;
                    match int.checked_add(i) {
                        Some(s) => *int = s,
                        None => {
                            *is_float = true;
                            *float = *int as f64 + i as f64;
                        }
                    }
                }
                Some(n) => {
                    if !*is_float {
                        *is_float = true;
                        *float = *int as f64;
                    }
                    *any = true;
                    *float += match n {
                        crate::eval::Num::I(i) => i as f64,
                        crate::eval::Num::F(f) => f,
                    };
                }
                None => {}
            },
            AggState::Avg { sum, n } => {
                if let Some(x) = num_f(&v) {
                    *sum += x;
                    *n += 1;
                }
            }
            AggState::Min(best) => keep_best(best, v, true),
            AggState::Max(best) => keep_best(best, v, false),
            AggState::Stddev { n, mean, m2 } => {
                if let Some(x) = num_f(&v) {
                    *n += 1;
                    let d = x - *mean;
                    *mean += d / *n as f64;
                    *m2 += d * (x - *mean);
                }
            }
            AggState::Pct { vals, .. } => {
                if let Some(x) = num_f(&v) {
                    vals.push((x, v));
                }
            }
            // Rows arrive newest first: on equal (or unknown) times the later arrival is the earlier.
            AggState::Earliest(best) => {
                let replace = match (best.as_ref(), ts) {
                    (None, _) => true,
                    (Some((Some(b), _)), Some(t)) => t <= *b,
                    (Some((None, _)), Some(_)) => true,
                    (Some(_), None) => true,
                };
                if replace {
                    *best = Some((ts, v));
                }
            }
            AggState::Latest(best) => {
                let replace = match (best.as_ref(), ts) {
                    (None, _) => true,
                    (Some((Some(b), _)), Some(t)) => t > *b,
                    (Some((None, _)), Some(_)) => true,
                    (Some(_), None) => false,
                };
                if replace {
                    *best = Some((ts, v));
                }
            }
        }
    }

    fn finish(self) -> Val {
        match self {
            AggState::Count(c) => Val::Int(c),
            AggState::Distinct(set) => Val::Int(set.len() as i64),
            AggState::Sum {
                int,
                float,
                is_float,
                any,
            } => match (any, is_float) {
                (false, _) => Val::Null,
                (true, false) => Val::Int(int),
                (true, true) => Val::Float(float),
            },
            AggState::Avg { sum, n } => {
                if n == 0 {
                    Val::Null
                } else {
                    Val::Float(sum / n as f64)
                }
            }
            AggState::Min(best) | AggState::Max(best) => best.map_or(Val::Null, |(_, v)| v),
            AggState::Stddev { n, m2, .. } => match n {
                0 => Val::Null,
                1 => Val::Float(0.0),
                n => Val::Float((m2 / (n - 1) as f64).sqrt()),
            },
            AggState::Pct { p, mut vals } => {
                if vals.is_empty() {
                    return Val::Null;
                }
                vals.sort_by(|a, b| a.0.total_cmp(&b.0));
                let n = vals.len();
                let rank = ((p / 100.0) * n as f64).ceil() as usize;
                let idx = rank.clamp(1, n) - 1;
                vals.swap_remove(idx).1
            }
            AggState::Earliest(best) | AggState::Latest(best) => best.map_or(Val::Null, |(_, v)| v),
        }
    }
}

fn keep_best(best: &mut Option<(SortVal, Val)>, v: Val, min: bool) {
    let key = SortVal::of(&v);
    if key == SortVal::Null {
        return;
    }
    let replace = match best {
        None => true,
        Some((k, _)) => {
            let o = key.cmp_asc(k);
            if min {
                o.is_lt()
            } else {
                o.is_gt()
            }
        }
    };
    if replace {
        *best = Some((key, v));
    }
}

fn num_f(v: &Val) -> Option<f64> {
    match v {
        // A time is averaged as itself, not as milliseconds.
        Val::Time(t) => Some(*t as f64),
        other => other.num().map(|n| match n {
            crate::eval::Num::I(i) => i as f64,
            crate::eval::Num::F(f) => f,
        }),
    }
}

struct Group {
    keys: Vec<Val>,
    states: Vec<AggState>,
}

struct StatsStage {
    keys: Vec<(Name, CExpr)>,
    items: Vec<(Name, CExpr)>,
    specs: Vec<AggSpec>,
    index: rustc_hash::FxHashMap<Vec<KeyVal>, usize>,
    groups: Vec<Group>,
    bin_key: Option<usize>,
    needs_ts: bool,
    max_groups: usize,
    /// Reused per row: the group key being looked up, and its values.
    scratch: Vec<KeyVal>,
    vals: Vec<Val>,
}

impl StatsStage {
    fn push(&mut self, env: &Env) -> Result<(), ExecError> {
        self.scratch.clear();
        self.vals.clear();
        for (_, e) in &self.keys {
            let v = e.eval(env);
            self.scratch.push(KeyVal::of(&v));
            self.vals.push(v);
        }
        let gi = match self.index.get(self.scratch.as_slice()) {
            Some(i) => *i,
            None => {
                let keys = std::mem::take(&mut self.vals);
                let kv = self.scratch.clone();
                if self.groups.len() >= self.max_groups {
                    return Err(ExecError::TooManyGroups {
                        limit: self.max_groups,
                    });
                }
                self.groups.push(Group {
                    keys,
                    states: self.specs.iter().map(|s| AggState::new(s.func)).collect(),
                });
                self.index.insert(kv, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let ts = if self.needs_ts {
            env.lookup("@timestamp").time_ns()
        } else {
            None
        };
        let group = &mut self.groups[gi];
        for (spec, state) in self.specs.iter().zip(group.states.iter_mut()) {
            state.update(spec.arg.as_ref().map(|a| a.eval(env)), ts);
        }
        Ok(())
    }

    fn flush(&mut self, now: i64) -> Vec<Rec> {
        self.index.clear();
        let mut groups = std::mem::take(&mut self.groups);
        if let Some(k) = self.bin_key {
            groups.sort_by(|a, b| SortVal::of(&b.keys[k]).cmp_asc(&SortVal::of(&a.keys[k])));
        }
        groups
            .into_iter()
            .map(|g| {
                let aggs: Vec<Val> = g.states.into_iter().map(AggState::finish).collect();
                let mut rec = Rec::default();
                for ((name, _), v) in self.keys.iter().zip(g.keys) {
                    rec.set(name.clone(), v);
                }
                for (name, e) in &self.items {
                    let v = e.eval(&Env {
                        rec: &rec,
                        base: None,
                        aggs: &aggs,
                        now,
                    });
                    rec.set(name.clone(), v);
                }
                rec
            })
            .collect()
    }
}

struct SortStage {
    keys: Vec<(CExpr, Order)>,
    buf: Vec<(Vec<SortVal>, u64, Rec)>,
    seq: u64,
    keep: Option<usize>,
    needed: Needed,
    max: usize,
}

fn cmp_entries(
    orders: &[Order],
    a: &(Vec<SortVal>, u64, Rec),
    b: &(Vec<SortVal>, u64, Rec),
) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    for (i, order) in orders.iter().enumerate() {
        let o = match (&a.0[i], &b.0[i]) {
            (SortVal::Null, SortVal::Null) => Equal,
            (SortVal::Null, _) => Greater,
            (_, SortVal::Null) => Less,
            (x, y) => {
                let o = x.cmp_asc(y);
                if *order == Order::Desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != Equal {
            return o;
        }
    }
    a.1.cmp(&b.1)
}

impl SortStage {
    fn push(&mut self, mut rec: Rec, base: Option<&dyn Row>, now: i64) -> Result<(), ExecError> {
        let env = Env {
            rec: &rec,
            base,
            aggs: &[],
            now,
        };
        let keys: Vec<SortVal> = self
            .keys
            .iter()
            .map(|(e, _)| SortVal::of(&e.eval(&env)))
            .collect();
        materialize(&mut rec, base, &self.needed);
        self.buf.push((keys, self.seq, rec));
        self.seq += 1;
        if let Some(k) = self.keep {
            if self.buf.len() >= 2 * k.max(512) {
                self.compact(k);
            }
        }
        if self.buf.len() > self.max {
            return Err(ExecError::TooManyRows { limit: self.max });
        }
        Ok(())
    }

    fn compact(&mut self, k: usize) {
        let orders: Vec<Order> = self.keys.iter().map(|(_, o)| *o).collect();
        if self.buf.len() > k && k > 0 {
            self.buf
                .select_nth_unstable_by(k - 1, |a, b| cmp_entries(&orders, a, b));
            self.buf.truncate(k);
        }
    }

    fn flush(&mut self) -> Vec<Rec> {
        let orders: Vec<Order> = self.keys.iter().map(|(_, o)| *o).collect();
        let mut buf = std::mem::take(&mut self.buf);
        buf.sort_unstable_by(|a, b| cmp_entries(&orders, a, b));
        if let Some(k) = self.keep {
            buf.truncate(k);
        }
        buf.into_iter().map(|(_, _, r)| r).collect()
    }
}

struct UnnestStage {
    field: Name,
    prefix: String,
    alias: Name,
}

impl UnnestStage {
    /// The element rows: each a list of fields to set (the alias, or `alias.rest` for object elements).
    fn expand(&self, rec: &Rec, base: Option<&dyn Row>) -> Vec<Vec<(Name, Val)>> {
        let env = Env {
            rec,
            base,
            aggs: &[],
            now: 0,
        };
        let direct = env.lookup(&self.field);
        if !direct.is_null() {
            return vec![vec![(self.alias.clone(), direct)]];
        }
        let mut children: Vec<(String, Val)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (n, v) in &rec.vals {
            if let Some(rest) = n.strip_prefix(self.prefix.as_str()) {
                if seen.insert(rest.to_string()) {
                    children.push((rest.to_string(), v.clone()));
                }
            }
        }
        if let Some(b) = base {
            for n in b.names() {
                if let Some(rest) = n.strip_prefix(self.prefix.as_str()) {
                    if seen.insert(rest.to_string()) {
                        if let Some(v) = b.get(&n) {
                            children.push((rest.to_string(), Val::from_value(&n, v)));
                        }
                    }
                }
            }
        }
        if children.is_empty() {
            return Vec::new();
        }
        let sub = |rest: &str| -> Name {
            if rest.is_empty() {
                self.alias.clone()
            } else {
                Arc::from(format!("{}.{rest}", self.alias).as_str())
            }
        };
        let split = |c: &str| -> (String, String) {
            match c.split_once('.') {
                Some((a, b)) => (a.to_string(), b.to_string()),
                None => (c.to_string(), String::new()),
            }
        };
        let is_list = children
            .iter()
            .all(|(c, _)| split(c).0.parse::<usize>().is_ok());
        if !is_list {
            // A map is a list of one element.
            return vec![children.into_iter().map(|(c, v)| (sub(&c), v)).collect()];
        }
        let mut items: BTreeMap<usize, Vec<(Name, Val)>> = BTreeMap::new();
        for (c, v) in children {
            let (idx, rest) = split(&c);
            let idx = idx.parse::<usize>().unwrap_or(0);
            items.entry(idx).or_default().push((sub(&rest), v));
        }
        items.into_values().collect()
    }
}

enum Stage {
    Filter(CExpr),
    Assign(Vec<(Name, CExpr)>),
    Parse {
        source: CExpr,
        re: Regex,
        names: Vec<(usize, Name)>,
    },
    Unnest(UnnestStage),
    Search(Vec<String>),
    Dedup {
        keys: Vec<CExpr>,
        seen: HashSet<Vec<KeyVal>>,
    },
    Limit {
        n: u64,
        seen: u64,
    },
    Sort(SortStage),
    Stats(StatsStage),
}

impl Stage {
    fn is_blocking(&self) -> bool {
        matches!(self, Stage::Sort(_) | Stage::Stats(_))
    }
}

struct Sink {
    columns: Vec<Name>,
    rows: Vec<Vec<Value>>,
    cap: Option<usize>,
}

impl Sink {
    fn full(&self) -> bool {
        self.cap.is_some_and(|c| self.rows.len() >= c)
    }
}

fn feed(
    stages: &mut [Stage],
    sink: &mut Sink,
    now: i64,
    mut rec: Rec,
    base: Option<&dyn Row>,
) -> Result<(), ExecError> {
    let Some((stage, rest)) = stages.split_first_mut() else {
        if sink.full() {
            return Ok(());
        }
        let env = Env {
            rec: &rec,
            base,
            aggs: &[],
            now,
        };
        let row = sink
            .columns
            .iter()
            .map(|c| env.lookup(c).into_value())
            .collect();
        sink.rows.push(row);
        return Ok(());
    };
    match stage {
        Stage::Filter(e) => {
            let keep = e
                .eval(&Env {
                    rec: &rec,
                    base,
                    aggs: &[],
                    now,
                })
                .truthy();
            if keep {
                feed(rest, sink, now, rec, base)?;
            }
        }
        Stage::Assign(items) => {
            for (name, e) in items.iter() {
                let v = e.eval(&Env {
                    rec: &rec,
                    base,
                    aggs: &[],
                    now,
                });
                rec.set(name.clone(), v);
            }
            feed(rest, sink, now, rec, base)?;
        }
        Stage::Parse { source, re, names } => {
            let text = source.eval(&Env {
                rec: &rec,
                base,
                aggs: &[],
                now,
            });
            let caps = text.text().and_then(|t| {
                re.captures(&t).map(|c| {
                    names
                        .iter()
                        .map(|(i, _)| c.get(*i).map(|m| m.as_str().to_string()))
                        .collect::<Vec<_>>()
                })
            });
            for (k, (_, name)) in names.iter().enumerate() {
                let v = caps
                    .as_ref()
                    .and_then(|c| c[k].clone())
                    .map_or(Val::Null, Val::Str);
                rec.set(name.clone(), v);
            }
            feed(rest, sink, now, rec, base)?;
        }
        Stage::Unnest(u) => {
            for item in u.expand(&rec, base) {
                let mut r = rec.clone();
                for (n, v) in item {
                    r.set(n, v);
                }
                feed(rest, sink, now, r, base)?;
            }
        }
        Stage::Search(words) => {
            let msg = Env {
                rec: &rec,
                base,
                aggs: &[],
                now,
            }
            .lookup("@message");
            let found = msg.text().is_some_and(|m| {
                let have = quarry_store::tokenizer::tokens(&m);
                words.iter().all(|w| have.contains(w))
            });
            if found {
                feed(rest, sink, now, rec, base)?;
            }
        }
        Stage::Dedup { keys, seen } => {
            let env = Env {
                rec: &rec,
                base,
                aggs: &[],
                now,
            };
            let vals: Vec<Val> = keys.iter().map(|k| k.eval(&env)).collect();
            // Rows with a null key are never duplicates.
            let pass =
                vals.iter().any(Val::is_null) || seen.insert(vals.iter().map(KeyVal::of).collect());
            if pass {
                feed(rest, sink, now, rec, base)?;
            }
        }
        Stage::Limit { n, seen } => {
            if *seen < *n {
                *seen += 1;
                feed(rest, sink, now, rec, base)?;
            }
        }
        Stage::Sort(s) => s.push(rec, base, now)?,
        Stage::Stats(s) => s.push(&Env {
            rec: &rec,
            base,
            aggs: &[],
            now,
        })?,
    }
    Ok(())
}

/// The result columns of a query: the last `display`; else the statistics of the last `stats`, or
/// the `fields` items, or `@timestamp` and `@message` when there is no `fields`; then the fields
/// `parse` and `unnest` add.
pub fn output_columns(q: &Query) -> Vec<String> {
    fn add(v: &mut Vec<String>, n: &str) {
        if !v.iter().any(|x| x == n) {
            v.push(n.to_string());
        }
    }
    let mut display: Option<Vec<String>> = None;
    let mut base: Option<Vec<String>> = None;
    let mut fields: Option<Vec<String>> = None;
    let mut extra = Vec::new();
    for c in &q.commands {
        match c {
            Command::Fields(f) => {
                let list = fields.get_or_insert_with(Vec::new);
                f.items.iter().for_each(|p| add(list, &p.name));
            }
            Command::Parse(p) => p.pattern.names().iter().for_each(|n| add(&mut extra, n)),
            Command::Unnest(u) => add(&mut extra, &u.alias),
            Command::Stats(s) => {
                let mut cols = Vec::new();
                s.by.iter()
                    .chain(&s.items)
                    .for_each(|p| add(&mut cols, &p.name));
                base = Some(cols);
                fields = None;
                extra.clear();
                display = None;
            }
            Command::Display(d) => {
                display = Some(d.items.iter().map(|p| p.name.clone()).collect());
            }
            _ => {}
        }
    }
    if let Some(d) = display {
        return d;
    }
    let mut cols = match (base, fields) {
        (Some(mut b), Some(f)) => {
            f.iter().for_each(|n| add(&mut b, n));
            b
        }
        (Some(b), None) => b,
        (None, Some(f)) => f,
        (None, None) => vec!["@timestamp".to_string(), "@message".to_string()],
    };
    for a in extra {
        add(&mut cols, &a);
    }
    cols
}

/// A query ready to run: push rows (newest first), then [`Pipeline::finish`].
pub struct Pipeline {
    stages: Vec<Stage>,
    sink: Sink,
    now: i64,
}

impl Pipeline {
    /// Prepares a query with the default [`Options`].
    pub fn new(q: &Query) -> Result<Pipeline, QueryError> {
        Pipeline::with_options(q, Options::default())
    }

    /// Prepares a query: compiles expressions, regexes and subnets once (in
    /// [`Query::execution_order`]), and checks what the parser cannot (for a hand-built [`Query`]).
    pub fn with_options(q: &Query, opts: Options) -> Result<Pipeline, QueryError> {
        let q = &q.execution_order();
        let now = opts.now_ns.unwrap_or_else(quarry_model::time::now_nanos);
        let mut names = Interner::default();
        let columns: Vec<Name> = output_columns(q).iter().map(|c| names.name(c)).collect();
        let has_limit = q.commands.iter().any(|c| matches!(c, Command::Limit(_)));
        let cap = (!has_limit).then_some(opts.max_rows);
        let mut stages = Vec::with_capacity(q.commands.len());
        for (i, cmd) in q.commands.iter().enumerate() {
            let mut comp = Compiler {
                names: &mut names,
                aggs: None,
            };
            let stage = match cmd {
                Command::Filter(f) => Stage::Filter(comp.compile(&f.expr)?),
                Command::Fields(f) => Stage::Assign(assignments(&mut comp, &f.items)?),
                Command::Display(d) => Stage::Assign(assignments(&mut comp, &d.items)?),
                Command::Limit(l) => Stage::Limit {
                    n: l.count,
                    seen: 0,
                },
                Command::Dedup(d) => Stage::Dedup {
                    keys: d
                        .keys
                        .iter()
                        .map(|k| comp.compile(k))
                        .collect::<Result<_, _>>()?,
                    seen: HashSet::new(),
                },
                Command::Parse(p) => {
                    let source = comp.compile(&p.source)?;
                    let (re, names) = match &p.pattern {
                        ParsePattern::Glob { pattern, names: ns } => {
                            let re = compile_regex(&glob_to_regex(pattern))
                                .map_err(|m| QueryError::at(p.span, m))?;
                            if re.captures_len() != ns.len() + 1 {
                                return Err(QueryError::at(
                                    p.span,
                                    format!(
                                        "the glob pattern has {} '*' but {} names follow 'as'",
                                        re.captures_len() - 1,
                                        ns.len()
                                    ),
                                ));
                            }
                            let names = ns
                                .iter()
                                .enumerate()
                                .map(|(i, n)| (i + 1, comp.names.name(n)))
                                .collect();
                            (re, names)
                        }
                        ParsePattern::Regex { pattern, .. } => {
                            let re =
                                compile_regex(pattern).map_err(|m| QueryError::at(p.span, m))?;
                            let names = re
                                .capture_names()
                                .enumerate()
                                .filter_map(|(i, n)| n.map(|n| (i, comp.names.name(n))))
                                .collect();
                            (re, names)
                        }
                    };
                    Stage::Parse { source, re, names }
                }
                Command::Search(c) => Stage::Search(c.words.clone()),
                Command::Unnest(u) => Stage::Unnest(UnnestStage {
                    field: comp.names.name(&u.field),
                    prefix: format!("{}.", u.field),
                    alias: comp.names.name(&u.alias),
                }),
                Command::Sort(s) => {
                    let keys = s
                        .keys
                        .iter()
                        .map(|k| Ok((comp.compile(&k.expr)?, k.order)))
                        .collect::<Result<_, QueryError>>()?;
                    Stage::Sort(SortStage {
                        keys,
                        buf: Vec::new(),
                        seq: 0,
                        keep: sort_keep(&q.commands[i + 1..], cap),
                        needed: needed_after(&q.commands[i + 1..], &columns, comp.names),
                        max: opts.max_buffered_rows,
                    })
                }
                Command::Stats(s) => {
                    let mut specs = Vec::new();
                    let keys =
                        s.by.iter()
                            .map(|p| Ok((comp.names.name(&p.name), comp.compile(&p.expr)?)))
                            .collect::<Result<Vec<_>, QueryError>>()?;
                    let mut items = Vec::new();
                    for p in &s.items {
                        let mut c = Compiler {
                            names: comp.names,
                            aggs: Some(&mut specs),
                        };
                        let e = c.compile(&p.expr)?;
                        items.push((c.names.name(&p.name), e));
                    }
                    let bin_key = s.by.iter().position(|p| {
                        matches!(
                            p.expr.kind,
                            ExprKind::Call {
                                func: Function::Bin,
                                ..
                            }
                        )
                    });
                    let needs_ts = specs
                        .iter()
                        .any(|s| matches!(s.func, AggFunc::Earliest | AggFunc::Latest));
                    Stage::Stats(StatsStage {
                        keys,
                        items,
                        specs,
                        index: Default::default(),
                        groups: Vec::new(),
                        bin_key,
                        needs_ts,
                        max_groups: opts.max_groups,
                        scratch: Vec::new(),
                        vals: Vec::new(),
                    })
                }
            };
            stages.push(stage);
        }
        Ok(Pipeline {
            stages,
            sink: Sink {
                columns,
                rows: Vec::new(),
                cap,
            },
            now,
        })
    }

    /// Feeds one input row (rows must come newest first, as Logs Insights orders events).
    pub fn push(&mut self, row: &dyn Row) -> Result<(), ExecError> {
        if self.is_satisfied() {
            return Ok(());
        }
        feed(
            &mut self.stages,
            &mut self.sink,
            self.now,
            Rec::default(),
            Some(row),
        )
    }

    /// True when more input cannot change the result (a `limit` or the row bound is reached with
    /// no `sort` or `stats` before it), so the caller can stop scanning.
    pub fn is_satisfied(&self) -> bool {
        for s in &self.stages {
            match s {
                Stage::Limit { n, seen } if seen >= n => return true,
                s if s.is_blocking() => return false,
                _ => {}
            }
        }
        self.sink.full()
    }

    /// Runs the buffered commands (`sort`, `stats`) and returns the result.
    pub fn finish(mut self) -> Result<Table, ExecError> {
        let now = self.now;
        for i in 0..self.stages.len() {
            let out = match &mut self.stages[i] {
                Stage::Sort(s) => s.flush(),
                Stage::Stats(s) => s.flush(now),
                _ => continue,
            };
            let rest = &mut self.stages[i + 1..];
            for rec in out {
                feed(rest, &mut self.sink, now, rec, None)?;
            }
        }
        Ok(Table {
            columns: self.sink.columns.iter().map(|c| c.to_string()).collect(),
            rows: self.sink.rows,
        })
    }
}

/// `fields`/`display` items that compute something (a plain field under its own name needs nothing).
fn assignments(
    comp: &mut Compiler,
    items: &[crate::ast::Projection],
) -> Result<Vec<(Name, CExpr)>, QueryError> {
    let mut out = Vec::new();
    for p in items {
        if matches!(&p.expr.kind, ExprKind::Field(f) if *f == p.name) {
            continue;
        }
        let e = comp.compile(&p.expr)?;
        out.push((comp.names.name(&p.name), e));
    }
    Ok(out)
}

/// How many rows a `sort` must keep: the next `limit` (or the row bound) when only
/// row-preserving commands come between.
fn sort_keep(after: &[Command], cap: Option<usize>) -> Option<usize> {
    for c in after {
        match c {
            Command::Fields(_) | Command::Display(_) | Command::Parse(_) => {}
            Command::Limit(l) => return usize::try_from(l.count).ok(),
            _ => return None,
        }
    }
    cap
}

fn needed_after(after: &[Command], columns: &[Name], names: &mut Interner) -> Needed {
    let mut exact: HashSet<String> = columns.iter().map(|c| c.to_string()).collect();
    exact.insert("@timestamp".into());
    let mut prefixes = Vec::new();
    for c in after {
        for e in c.exprs() {
            exact.extend(e.field_refs().into_iter().map(str::to_string));
        }
        if let Command::Unnest(u) = c {
            exact.insert(u.field.clone());
            prefixes.push(format!("{}.", u.field));
        }
    }
    let mut exact: Vec<String> = exact.into_iter().collect();
    exact.sort();
    Needed {
        exact: exact.iter().map(|n| names.name(n)).collect(),
        prefixes,
    }
}
