//! Quarry's query language: the CloudWatch Logs Insights dialect users already know.
//!
//! [`parse_query`] reads a pipe-separated query (`filter ... | stats ... by ... | sort ... | limit ...`)
//! into a [`Query`] tree whose nodes carry [`Span`]s, reporting mistakes as a [`QueryError`] with line,
//! column and what was expected. [`Pipeline`] runs a query over rows pushed one at a time, newest first
//! (as the store yields them), and produces a [`Table`]. [`run`] runs a query over the store: the
//! planner (`plan.rs`) turns the leading filters into index lookups and column scans, and `run.rs`
//! feeds the pipeline the events that are left, read from columns or from their blocks; simple counts
//! are made straight from the columns. `search "text"` is Quarry's addition: words through the index.
//! [`scan`] gives a retro-hunt the events any of many filters can match, each read once.
//!
//! Semantics follow Logs Insights: numeric strings compare with numbers as numbers
//! (`responseStatus.code in ["401","403"]` matches 403); a missing field is null, comparisons with
//! null are false and aggregates skip nulls; `like "text"` is a case-sensitive substring test;
//! `sort` is descending unless `asc`, text before numbers in natural order, nulls last; without a
//! `limit` at most [`Options::max_rows`] rows (10,000) are returned; `@timestamp` (UTC nanoseconds
//! inside) is shown as `YYYY-MM-DD HH:MM:SS.mmm` ([`format_timestamp`]).
//!
//! Dependencies: `regex` for `like /re/`, `=~` and `parse` (linear-time, so no query can hang the
//! server); `memchr` for the precompiled substring search behind `like "text"`; `ipnet` for CIDR
//! parsing and containment (`isIpInSubnet`, v4 and v6); `thiserror` for the error types;
//! `serde_json` for [`Table::to_json`]; `quarry-model` for [`quarry_model::Value`] and time helpers;
//! `quarry-store` and `tantivy` for the segments queries run over; `rustc-hash` for fast group maps;
//! `serde` for the run statistics the API returns.

pub mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
mod pipeline;
mod plan;
mod range;
mod run;
mod scan;

pub use ast::{Command, Expr, ExprKind, Query, Span};
pub use error::{ExecError, QueryError};
pub use eval::format_timestamp;
pub use parser::parse_query;
pub use pipeline::{output_columns, Options, Pipeline, Table, TEXT_CELL_WIDTH};
pub use range::{parse_duration, parse_instant, parse_time_range, TimeRangeError};
pub use run::{run, RunError, RunOptions, RunOutput, RunStats};
pub use scan::{scan, ScanFilter, ScanStats};

use quarry_model::{Event, Value};

/// One input row: named values. `@timestamp` is UTC nanoseconds as [`Value::Int`] (RFC 3339 text is
/// also read), `@message` the event text, other names the flattened fields (`user.username`,
/// `sourceIPs.0`).
pub trait Row {
    /// The value of a field, `None` when the row does not have it.
    fn get(&self, name: &str) -> Option<Value>;
    /// The names of all fields the row has (for `unnest` of flattened lists).
    fn names(&self) -> Vec<String>;
}

/// A row over `(name, value)` pairs (the first pair with a name wins).
impl Row for Vec<(String, Value)> {
    fn get(&self, name: &str) -> Option<Value> {
        self.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn names(&self) -> Vec<String> {
        self.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// An event as a row: `@timestamp`, `@message` and its structured fields.
impl Row for Event {
    fn get(&self, name: &str) -> Option<Value> {
        match name {
            "@timestamp" => Some(Value::Int(self.ts)),
            "@message" => Some(Value::Str(self.message().to_string())),
            _ => self.fields.get(name).cloned(),
        }
    }

    fn names(&self) -> Vec<String> {
        ["@timestamp", "@message"]
            .into_iter()
            .map(str::to_string)
            .chain(self.fields.iter().map(|(n, _)| n.to_string()))
            .collect()
    }
}

/// Parses `text` and runs it over `rows` (newest first) with default options: a convenience for tests
/// and small in-memory inputs.
pub fn run_query<'a, R: Row + 'a>(
    text: &str,
    rows: impl IntoIterator<Item = &'a R>,
) -> Result<Table, RunError> {
    let q = parse_query(text)?;
    let mut p = Pipeline::new(&q)?;
    for r in rows {
        if p.is_satisfied() {
            break;
        }
        p.push(r)?;
    }
    Ok(p.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn types_cross_threads() {
        send_sync::<Query>();
        send_sync::<QueryError>();
        send_sync::<Table>();
        send::<Pipeline>();
    }
}
