//! Shared helpers: rows over `(name, value)` pairs and a runner with a fixed clock.
#![allow(dead_code)]

use quarry_model::Value;
use quarry_query::{parse_query, Options, Pipeline, Table};

/// A row as the engine sees it.
pub type R = Vec<(String, Value)>;

/// 2024-05-01T12:00:00Z in nanoseconds.
pub const T0: i64 = 1_714_564_800 * 1_000_000_000;

/// A row at `T0 + secs` with a message and fields.
pub fn row(secs: i64, msg: &str, fields: &[(&str, Value)]) -> R {
    let mut r: R = vec![
        ("@timestamp".into(), Value::Int(T0 + secs * 1_000_000_000)),
        ("@message".into(), Value::from(msg)),
    ];
    r.extend(fields.iter().map(|(k, v)| (k.to_string(), v.clone())));
    r
}

/// Options with `now()` fixed at `T0`.
pub fn opts() -> Options {
    Options {
        now_ns: Some(T0),
        ..Options::default()
    }
}

/// Runs a query over rows (given newest first), with a fixed clock.
pub fn run(text: &str, rows: &[R]) -> Table {
    run_with(text, rows, opts())
}

pub fn run_with(text: &str, rows: &[R], o: Options) -> Table {
    let q = parse_query(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let mut p = Pipeline::with_options(&q, o).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    for r in rows {
        p.push(r).unwrap();
    }
    p.finish().unwrap()
}

/// The values of one column.
pub fn col(t: &Table, name: &str) -> Vec<Value> {
    let i = t
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", t.columns));
    t.rows.iter().map(|r| r[i].clone()).collect()
}

pub fn s(x: &str) -> Value {
    Value::from(x)
}

pub fn i(x: i64) -> Value {
    Value::Int(x)
}

pub fn f(x: f64) -> Value {
    Value::Float(x)
}

/// A one-row evaluation of `fields <expr> as v`.
pub fn eval1(expr: &str, fields: &[(&str, Value)]) -> Value {
    let t = run(&format!("fields {expr} as v"), &[row(0, "m", fields)]);
    col(&t, "v").remove(0)
}
