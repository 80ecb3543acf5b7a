//! Execution tests over small in-memory rows: every command and function.

mod common;

use common::*;
use quarry_model::{Event, Fields, Value};
use quarry_query::{parse_query, run_query, ExecError, Options, Pipeline, Table};

fn events() -> Vec<R> {
    // Newest first, as the store yields them.
    vec![
        row(
            40,
            "GET /a 403",
            &[("code", i(403)), ("user", s("bob")), ("bytes", i(10))],
        ),
        row(
            30,
            "GET /b 200",
            &[("code", s("200")), ("user", s("alice")), ("bytes", i(20))],
        ),
        row(
            20,
            "POST /c 401 Exception",
            &[("code", i(401)), ("user", s("bob")), ("bytes", s("5"))],
        ),
        row(10, "GET /d 500", &[("code", i(500))]),
    ]
}

#[test]
fn default_columns_newest_first_and_timestamp_format() {
    let t = run("filter code >= 400", &events());
    assert_eq!(t.columns, ["@timestamp", "@message"]);
    assert_eq!(
        col(&t, "@timestamp"),
        [
            s("2024-05-01 12:00:40.000"),
            s("2024-05-01 12:00:20.000"),
            s("2024-05-01 12:00:10.000")
        ]
    );
    assert_eq!(col(&t, "@message")[0], s("GET /a 403"));
    let all = run("", &events());
    assert_eq!(all.rows.len(), 4);
}

#[test]
fn numeric_strings_compare_with_numbers() {
    let t = run("filter code in [\"401\",\"403\"] | fields user", &events());
    assert_eq!(col(&t, "user"), [s("bob"), s("bob")]);
    // A string field against a number literal, and a number field against a string literal.
    let t = run("filter code = 200 | fields user", &events());
    assert_eq!(col(&t, "user"), [s("alice")]);
    let rows = vec![
        row(0, "m", &[("srcPort", i(443))]),
        row(0, "m", &[("srcPort", s("80"))]),
    ];
    assert_eq!(run("filter srcPort = \"443\"", &rows).rows.len(), 1);
    assert_eq!(run("filter srcPort > \"100\"", &rows).rows.len(), 1);
    assert_eq!(run("filter srcPort < 100", &rows).rows.len(), 1);
    assert_eq!(run("filter srcPort in [443, 80]", &rows).rows.len(), 2);
}

#[test]
fn missing_fields_are_null() {
    let ev = events();
    // Comparisons with a missing field are false, both ways.
    assert_eq!(run("filter user = \"bob\"", &ev).rows.len(), 2);
    assert_eq!(run("filter user != \"bob\"", &ev).rows.len(), 1);
    assert_eq!(run("filter user not in [\"bob\"]", &ev).rows.len(), 1);
    assert_eq!(run("filter user not like \"b\"", &ev).rows.len(), 1);
    assert_eq!(run("filter not ispresent(user)", &ev).rows.len(), 1);
    assert_eq!(run("filter nothing > 0 or nothing <= 0", &ev).rows.len(), 0);
    let t = run(
        "stats count(*) as rows, count(user) as users, count_distinct(user) as distinct",
        &ev,
    );
    assert_eq!(t.rows, [vec![i(4), i(3), i(2)]]);
    let t = run("fields user", &ev);
    assert_eq!(col(&t, "user")[3], Value::Null);
}

#[test]
fn like_and_regex() {
    let ev = events();
    assert_eq!(run("filter @message like \"Exception\"", &ev).rows.len(), 1);
    assert_eq!(
        run("filter @message like \"exception\"", &ev).rows.len(),
        0,
        "like is case-sensitive"
    );
    assert_eq!(
        run("filter @message like /(?i)exception/", &ev).rows.len(),
        1
    );
    assert_eq!(run("filter @message =~ /^GET \\/[ab]/", &ev).rows.len(), 2);
    assert_eq!(run("filter @message =~ 'POST'", &ev).rows.len(), 1);
    assert_eq!(
        run("filter @message not like /Exception/", &ev).rows.len(),
        3
    );
    // Numbers match as text.
    assert_eq!(run("filter code like /^4\\d\\d$/", &ev).rows.len(), 2);
    assert_eq!(run("filter code like '20'", &ev).rows.len(), 1);
}

#[test]
fn fields_and_display() {
    let ev = events();
    let t = run(
        "fields user, bytes * 2 as double, @timestamp | filter code = 403",
        &ev,
    );
    assert_eq!(t.columns, ["user", "double", "@timestamp"]);
    assert_eq!(
        t.rows,
        [vec![s("bob"), i(20), s("2024-05-01 12:00:40.000")]]
    );
    // `fields` does not hide other fields from later commands; later fields see earlier ones.
    let t = run(
        "fields bytes + 1 as b1, b1 * 10 as b2 | filter user = 'alice'",
        &ev,
    );
    assert_eq!(t.rows, [vec![i(21), i(210)]]);
    // display picks the columns (last one wins), and may compute.
    let t = run(
        "fields user, code | display code, code = 403 as forbidden",
        &ev,
    );
    assert_eq!(t.columns, ["code", "forbidden"]);
    assert_eq!(
        col(&t, "forbidden"),
        [
            Value::Bool(true),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false)
        ]
    );
    let t = run("display user | display code", &ev);
    assert_eq!(t.columns, ["code"]);
    // Backquoted odd names.
    let rows = vec![row(
        0,
        "m",
        &[("annotations.authorization.k8s.io/decision", s("forbid"))],
    )];
    let t = run(
        "fields `annotations.authorization.k8s.io/decision` as d",
        &rows,
    );
    assert_eq!(col(&t, "d"), [s("forbid")]);
}

#[test]
fn arithmetic_and_unary() {
    let fs = [("a", i(7)), ("b", i(2)), ("x", f(1.5)), ("n", s("10"))];
    assert_eq!(eval1("a + b", &fs), i(9));
    assert_eq!(eval1("a - b", &fs), i(5));
    assert_eq!(eval1("a * b", &fs), i(14));
    assert_eq!(eval1("a / b", &fs), f(3.5));
    assert_eq!(eval1("a % b", &fs), i(1));
    assert_eq!(eval1("a ^ b", &fs), i(49));
    assert_eq!(eval1("-a", &fs), i(-7));
    assert_eq!(eval1("x * 2", &fs), f(3.0));
    assert_eq!(eval1("n + 1", &fs), i(11));
    assert_eq!(eval1("(a + b) * 2", &fs), i(18));
    assert_eq!(eval1("a / 0", &fs), Value::Null);
    assert_eq!(eval1("missing + 1", &fs), Value::Null);
    assert_eq!(eval1("a > b and not (a < 0)", &fs), Value::Bool(true));
}

#[test]
fn general_and_string_functions() {
    let fs = [
        ("s", s("  Hello World  ")),
        ("e", s("")),
        ("b", s("   ")),
        ("w", s("xyZfooxyZ")),
        ("u", s("ünï")),
        ("n", i(42)),
    ];
    assert_eq!(eval1("ispresent(s)", &fs), Value::Bool(true));
    assert_eq!(eval1("ispresent(nope)", &fs), Value::Bool(false));
    assert_eq!(eval1("isempty(e)", &fs), Value::Bool(true));
    assert_eq!(eval1("isempty(nope)", &fs), Value::Bool(true));
    assert_eq!(eval1("isempty(b)", &fs), Value::Bool(false));
    assert_eq!(eval1("isblank(b)", &fs), Value::Bool(true));
    assert_eq!(eval1("isblank(s)", &fs), Value::Bool(false));
    assert_eq!(eval1("coalesce(nope, e, s)", &fs), s(""));
    assert_eq!(eval1("coalesce(nope, n)", &fs), i(42));
    assert_eq!(eval1("coalesce(nope)", &fs), Value::Null);
    assert_eq!(eval1("strlen(u)", &fs), i(3));
    assert_eq!(eval1("strlen(n)", &fs), i(2));
    assert_eq!(eval1("strlen(nope)", &fs), Value::Null);
    assert_eq!(eval1("tolower(w)", &fs), s("xyzfooxyz"));
    assert_eq!(eval1("toupper(w)", &fs), s("XYZFOOXYZ"));
    assert_eq!(eval1("concat(w, '-', n, nope)", &fs), s("xyZfooxyZ-42"));
    assert_eq!(eval1("substr(w, 3, 3)", &fs), s("foo"));
    assert_eq!(eval1("substr(w, 6)", &fs), s("xyZ"));
    assert_eq!(eval1("substr(w, 100)", &fs), s(""));
    assert_eq!(eval1("substr(u, 1, 1)", &fs), s("n"));
    assert_eq!(eval1("replace('foo', 'o', '0')", &fs), s("f00"));
    assert_eq!(eval1("strcontains(w, 'foo')", &fs), i(1));
    assert_eq!(eval1("strcontains(w, 'bar')", &fs), i(0));
    assert_eq!(eval1("trim(s)", &fs), s("Hello World"));
    assert_eq!(eval1("ltrim(s)", &fs), s("Hello World  "));
    assert_eq!(eval1("rtrim(s)", &fs), s("  Hello World"));
    assert_eq!(eval1("trim(w, 'xyZ')", &fs), s("foo"));
    assert_eq!(eval1("ltrim(w, 'xyZ')", &fs), s("fooxyZ"));
    assert_eq!(eval1("rtrim(w, 'xyZ')", &fs), s("xyZfoo"));
}

#[test]
fn ip_functions() {
    let fs = [
        ("v4", s("10.1.2.3")),
        ("v6", s("2001:db8::1")),
        ("mapped", s("::ffff:10.9.9.9")),
        ("bad", s("10.1.2.300")),
        ("net", s("10.0.0.0/8")),
    ];
    assert_eq!(eval1("isValidIp(v4)", &fs), Value::Bool(true));
    assert_eq!(eval1("isValidIp(v6)", &fs), Value::Bool(true));
    assert_eq!(eval1("isValidIp(bad)", &fs), Value::Bool(false));
    assert_eq!(eval1("isValidIp(nope)", &fs), Value::Bool(false));
    assert_eq!(eval1("isValidIpV4(v4)", &fs), Value::Bool(true));
    assert_eq!(eval1("isValidIpV4(v6)", &fs), Value::Bool(false));
    assert_eq!(eval1("isValidIpV6(v6)", &fs), Value::Bool(true));
    assert_eq!(eval1("isValidIpV6(v4)", &fs), Value::Bool(false));
    assert_eq!(
        eval1("isIpInSubnet(v4, '10.0.0.0/8')", &fs),
        Value::Bool(true)
    );
    assert_eq!(
        eval1("isIpInSubnet(v4, '10.1.3.0/24')", &fs),
        Value::Bool(false)
    );
    assert_eq!(
        eval1("isIpInSubnet(v6, '2001:db8::/32')", &fs),
        Value::Bool(true)
    );
    assert_eq!(
        eval1("isIpInSubnet(v6, '10.0.0.0/8')", &fs),
        Value::Bool(false)
    );
    assert_eq!(
        eval1("isIpInSubnet(mapped, '10.0.0.0/8')", &fs),
        Value::Bool(true)
    );
    assert_eq!(
        eval1("isIpInSubnet(bad, '10.0.0.0/8')", &fs),
        Value::Bool(false)
    );
    assert_eq!(
        eval1("isIpInSubnet(v4, net)", &fs),
        Value::Bool(true),
        "subnet from a field"
    );
    assert_eq!(
        eval1("isIpv4InSubnet(v4, '10.1.2.0/24')", &fs),
        Value::Bool(true)
    );
    assert_eq!(
        eval1("isIpv4InSubnet(v6, '10.0.0.0/8')", &fs),
        Value::Bool(false)
    );
    assert_eq!(
        eval1("isIpv6InSubnet(v6, '2001:db8::/64')", &fs),
        Value::Bool(true)
    );
    assert_eq!(eval1("isIpv6InSubnet(v4, '::/0')", &fs), Value::Bool(false));
}

#[test]
fn numeric_functions() {
    let fs = [
        ("neg", i(-3)),
        ("x", f(2.5)),
        ("sq", i(16)),
        ("t", s("-2.5")),
    ];
    assert_eq!(eval1("abs(neg)", &fs), i(3));
    assert_eq!(eval1("abs(t)", &fs), f(2.5));
    assert_eq!(eval1("ceil(x)", &fs), i(3));
    assert_eq!(eval1("floor(x)", &fs), i(2));
    assert_eq!(eval1("floor(t)", &fs), i(-3));
    assert_eq!(eval1("greatest(neg, x, 1)", &fs), f(2.5));
    assert_eq!(eval1("least(neg, x, nope)", &fs), i(-3));
    assert_eq!(eval1("log(1)", &fs), f(0.0));
    assert_eq!(eval1("log(0)", &fs), Value::Null);
    assert_eq!(eval1("sqrt(sq)", &fs), f(4.0));
    assert_eq!(eval1("sqrt(neg)", &fs), Value::Null);
    assert_eq!(eval1("pow(2, 10)", &fs), i(1024));
    assert_eq!(eval1("pow(x, 2)", &fs), f(6.25));
}

#[test]
fn time_functions() {
    // T0 + 40s + 123ms
    let ts = T0 + 40_123_000_000;
    let rows = vec![vec![
        ("@timestamp".to_string(), Value::Int(ts)),
        ("ms".to_string(), i(1_714_564_800_500)),
        ("iso".to_string(), s("2024-05-01T12:34:56Z")),
    ]];
    let one = |e: &str| col(&run(&format!("fields {e} as v"), &rows), "v").remove(0);
    assert_eq!(one("bin(5m)"), s("2024-05-01 12:00:00.000"));
    assert_eq!(one("bin(30s)"), s("2024-05-01 12:00:30.000"));
    assert_eq!(one("bin(100ms)"), s("2024-05-01 12:00:40.100"));
    assert_eq!(one("bin(1d)"), s("2024-05-01 00:00:00.000"));
    assert_eq!(one("bin(1mo)"), s("2024-05-01 00:00:00.000"));
    assert_eq!(one("bin(1q)"), s("2024-04-01 00:00:00.000"));
    assert_eq!(one("bin(1y)"), s("2024-01-01 00:00:00.000"));
    assert_eq!(
        one("datefloor(@timestamp, 1h)"),
        s("2024-05-01 12:00:00.000")
    );
    assert_eq!(
        one("dateceil(@timestamp, 1h)"),
        s("2024-05-01 13:00:00.000")
    );
    assert_eq!(
        one("dateceil(@timestamp, 1mo)"),
        s("2024-06-01 00:00:00.000")
    );
    assert_eq!(one("datefloor(iso, 1m)"), s("2024-05-01 12:34:00.000"));
    assert_eq!(one("toMillis(@timestamp)"), i(1_714_564_840_123));
    assert_eq!(one("fromMillis(ms)"), s("2024-05-01 12:00:00.500"));
    assert_eq!(one("toMillis(fromMillis(ms))"), i(1_714_564_800_500));
    assert_eq!(one("now()"), s("2024-05-01 12:00:00.000"));
    // Comparing times with epoch milliseconds and with RFC 3339 text.
    assert_eq!(
        run("filter @timestamp > 1714564840000", &rows).rows.len(),
        1
    );
    assert_eq!(
        run("filter @timestamp < '2024-05-01T12:00:41Z'", &rows)
            .rows
            .len(),
        1
    );
    assert_eq!(
        run("filter @timestamp < '2024-05-01T12:00:40Z'", &rows)
            .rows
            .len(),
        0
    );
    assert_eq!(run("filter @timestamp <= now()", &rows).rows.len(), 0);
}

#[test]
fn stats_aggregates() {
    let t = run(
        "stats count(*) as n, sum(bytes) as total, avg(bytes) as mean, min(code) as lo, max(code) as hi, \
         earliest(user) as first, latest(user) as last, count_distinct(user) as users by user",
        &events(),
    );
    assert_eq!(
        t.columns,
        ["user", "n", "total", "mean", "lo", "hi", "first", "last", "users"]
    );
    // Groups in order of first appearance.
    assert_eq!(col(&t, "user"), [s("bob"), s("alice"), Value::Null]);
    assert_eq!(col(&t, "n"), [i(2), i(1), i(1)]);
    assert_eq!(col(&t, "total"), [i(15), i(20), Value::Null]);
    assert_eq!(col(&t, "mean"), [f(7.5), f(20.0), Value::Null]);
    assert_eq!(col(&t, "lo"), [i(401), s("200"), i(500)]);
    assert_eq!(col(&t, "hi"), [i(403), s("200"), i(500)]);
    assert_eq!(col(&t, "users"), [i(1), i(1), i(0)]);
    let t = run("stats sum(bytes) as b, pct(bytes, 50) as p50, pct(code, 100) as p100, median(code) as med, stddev(bytes) as sd", &events());
    assert_eq!(t.rows[0][0], i(35));
    assert_eq!(t.rows[0][1], i(10));
    assert_eq!(t.rows[0][2], i(500));
    assert_eq!(t.rows[0][3], i(401));
    let Value::Float(sd) = t.rows[0][4] else {
        panic!()
    };
    assert!((sd - 7.637626158259733).abs() < 1e-9, "{sd}");
}

#[test]
fn pct_is_exact_nearest_rank() {
    let rows: Vec<R> = (1..=100)
        .rev()
        .map(|k| row(k, "m", &[("d", i(k))]))
        .collect();
    let t = run(
        "stats pct(d, 95) as p95, pct(d, 50) as p50, pct(d, 0) as p0, pct(d, 99.5) as p995",
        &rows,
    );
    assert_eq!(t.rows, [vec![i(95), i(50), i(1), i(100)]]);
}

#[test]
fn earliest_latest_use_timestamps() {
    // Not newest-first on purpose: earliest/latest must look at @timestamp, not arrival order.
    let rows = vec![
        row(20, "m", &[("v", s("middle"))]),
        row(30, "m", &[("v", s("newest"))]),
        row(10, "m", &[("v", s("oldest"))]),
        row(40, "m", &[]),
    ];
    let t = run("stats earliest(v) as e, latest(v) as l, earliest(@timestamp) as et, latest(@timestamp) as lt, sortsFirst(v) as sf, sortsLast(v) as sl", &rows);
    assert_eq!(
        t.rows,
        [vec![
            s("oldest"),
            s("newest"),
            s("2024-05-01 12:00:10.000"),
            s("2024-05-01 12:00:40.000"),
            s("middle"),
            s("oldest")
        ]]
    );
}

#[test]
fn stats_by_bin_five_minutes() {
    let rows: Vec<R> = [900, 620, 610, 299, 5, 1]
        .iter()
        .map(|&sec| row(sec, "m", &[]))
        .collect();
    let t = run("stats count(*) by bin(5m)", &rows);
    assert_eq!(t.columns, ["bin(5m)", "count(*)"]);
    assert_eq!(
        t.rows,
        [
            vec![s("2024-05-01 12:15:00.000"), i(1)],
            vec![s("2024-05-01 12:10:00.000"), i(2)],
            vec![s("2024-05-01 12:00:00.000"), i(3)],
        ]
    );
    let t = run("stats count(*) as c by bin(10m) as t | sort t asc", &rows);
    assert_eq!(
        col(&t, "t"),
        [s("2024-05-01 12:00:00.000"), s("2024-05-01 12:10:00.000")]
    );
    assert_eq!(col(&t, "c"), [i(3), i(3)]);
}

#[test]
fn stats_expressions_and_chained_stats() {
    let t = run(
        "stats sum(bytes) / count(*) as per_row, max(code) as hi, min(code) as lo, hi - lo as spread, abs(sum(bytes)) as a",
        &events(),
    );
    assert_eq!(t.rows, [vec![f(8.75), i(500), s("200"), i(300), i(35)]]);
    let rows: Vec<R> = vec![
        row(5, "m", &[("host", s("a")), ("svc", s("x"))]),
        row(4, "m", &[("host", s("a")), ("svc", s("y"))]),
        row(3, "m", &[("host", s("a")), ("svc", s("y"))]),
        row(2, "m", &[("host", s("b")), ("svc", s("x"))]),
    ];
    let t = run(
        "stats count(*) as c by host, svc | stats avg(c) as mean, count(*) as pairs by host",
        &rows,
    );
    assert_eq!(t.columns, ["host", "mean", "pairs"]);
    assert_eq!(
        t.rows,
        [vec![s("a"), f(1.5), i(2)], vec![s("b"), f(1.0), i(1)]]
    );
    // fields after stats work on the statistics.
    let t = run(
        "stats count(*) as c by host | fields c * 10 as c10 | display host, c10",
        &rows,
    );
    assert_eq!(t.rows, [vec![s("a"), i(30)], vec![s("b"), i(10)]]);
    // No rows in, no rows out.
    assert!(run("stats count(*)", &[]).rows.is_empty());
}

#[test]
fn sort_orders_and_nulls() {
    let rows = vec![
        row(1, "m", &[("k", i(10))]),
        row(2, "m", &[("k", s("b"))]),
        row(3, "m", &[]),
        row(4, "m", &[("k", s("9"))]),
        row(5, "m", &[("k", s("a10"))]),
        row(6, "m", &[("k", f(9.5))]),
        row(7, "m", &[("k", s("a9"))]),
    ];
    let t = run("sort k asc | fields k", &rows);
    assert_eq!(
        col(&t, "k"),
        [
            s("a9"),
            s("a10"),
            s("b"),
            s("9"),
            f(9.5),
            i(10),
            Value::Null
        ]
    );
    let t = run("sort k desc | fields k", &rows);
    assert_eq!(
        col(&t, "k"),
        [
            i(10),
            f(9.5),
            s("9"),
            s("b"),
            s("a10"),
            s("a9"),
            Value::Null
        ]
    );
    // Default is descending.
    assert_eq!(run("sort k | fields k", &rows), t);
    // Several keys, ties keep input order.
    let rows = vec![
        row(1, "first", &[("g", i(1)), ("h", i(2))]),
        row(2, "second", &[("g", i(1)), ("h", i(2))]),
        row(3, "third", &[("g", i(1)), ("h", i(3))]),
        row(4, "fourth", &[("g", i(2)), ("h", i(1))]),
    ];
    let t = run("sort g asc, h desc | fields @message", &rows);
    assert_eq!(
        col(&t, "@message"),
        [s("third"), s("first"), s("second"), s("fourth")]
    );
    let t = run("sort @timestamp asc | limit 2", &rows);
    assert_eq!(col(&t, "@message"), [s("first"), s("second")]);
}

#[test]
fn sort_with_limit_keeps_only_the_top() {
    // Large enough to trigger the bounded buffer.
    let rows: Vec<R> = (0..5000)
        .map(|k| row(k, &format!("m{k}"), &[("v", i((k * 7919) % 5003))]))
        .collect();
    let t = run("sort v desc | fields v | limit 5", &rows);
    let mut all: Vec<i64> = (0..5000).map(|k| (k * 7919) % 5003).collect();
    all.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        col(&t, "v"),
        all[..5].iter().map(|&x| i(x)).collect::<Vec<_>>()
    );
    let t = run("sort v asc | limit 3", &rows);
    assert_eq!(t.rows.len(), 3);
}

#[test]
fn limit_and_is_satisfied() {
    let q = parse_query("filter code >= 400 | limit 2").unwrap();
    let mut p = Pipeline::new(&q).unwrap();
    let ev = events();
    p.push(&ev[0]).unwrap();
    assert!(!p.is_satisfied());
    p.push(&ev[1]).unwrap();
    assert!(!p.is_satisfied(), "the 200 row did not count");
    p.push(&ev[2]).unwrap();
    assert!(p.is_satisfied());
    p.push(&ev[3]).unwrap();
    assert_eq!(p.finish().unwrap().rows.len(), 2);

    // A sort or stats before the limit needs all input.
    for text in ["sort code | limit 1", "stats count(*) by user | limit 1"] {
        let mut p = Pipeline::new(&parse_query(text).unwrap()).unwrap();
        for r in &ev {
            p.push(r).unwrap();
            assert!(!p.is_satisfied(), "{text}");
        }
    }
    // A limit before stats bounds its input.
    let mut p = Pipeline::new(&parse_query("limit 1 | stats count(*)").unwrap()).unwrap();
    p.push(&ev[0]).unwrap();
    assert!(p.is_satisfied());
    assert_eq!(p.finish().unwrap().rows, [vec![i(1)]]);

    // The default row bound is a parameter; a limit overrides it.
    let o = Options {
        max_rows: 2,
        ..opts()
    };
    let mut p = Pipeline::with_options(&parse_query("fields user").unwrap(), o.clone()).unwrap();
    p.push(&ev[0]).unwrap();
    p.push(&ev[1]).unwrap();
    assert!(p.is_satisfied());
    p.push(&ev[2]).unwrap();
    assert_eq!(p.finish().unwrap().rows.len(), 2);
    assert_eq!(run_with("limit 3", &ev, o.clone()).rows.len(), 3);
    assert_eq!(run_with("sort code asc", &ev, o.clone()).rows.len(), 2);
    assert_eq!(run_with("stats count(*) by code", &ev, o).rows.len(), 2);
    assert_eq!(Options::default().max_rows, 10_000);
}

#[test]
fn parse_glob_and_regex() {
    let rows = vec![
        row(3, "2024-05-01 INFO user=bob, action=login ip=10.0.0.1", &[]),
        row(2, "no match here", &[]),
        row(1, "user=eve, action=delete\nsecond line", &[]),
    ];
    let t = run(
        "parse @message \"user=*, action=*\" as user, action | display user, action",
        &rows,
    );
    assert_eq!(
        t.rows,
        [
            vec![s("bob"), s("login ip=10.0.0.1")],
            vec![Value::Null, Value::Null],
            vec![s("eve"), s("delete")],
        ]
    );
    let t = run(
        r"parse @message /user=(?<user>\w+), action=(?<action>\w+)/ | filter ispresent(user) | stats count(*) by user, action",
        &rows,
    );
    assert_eq!(
        t.rows,
        [
            vec![s("bob"), s("login"), i(1)],
            vec![s("eve"), s("delete"), i(1)]
        ]
    );
    // Parsed fields join the default columns.
    let t = run("parse @message 'ip=*' as ip", &rows);
    assert_eq!(t.columns, ["@timestamp", "@message", "ip"]);
    assert_eq!(col(&t, "ip"), [s("10.0.0.1"), Value::Null, Value::Null]);
    // Parsing another field, and parse output compared numerically.
    let rows = vec![row(0, "m", &[("line", s("[ERROR] took 250ms"))])];
    let t = run(
        "parse line '[*] took *ms' as level, ms | filter ms > 99 | fields level, ms",
        &rows,
    );
    assert_eq!(t.rows, [vec![s("ERROR"), s("250")]]);
}

#[test]
fn dedup_keeps_first_and_nulls() {
    let rows = vec![
        row(6, "a1", &[("server", s("a")), ("sev", s("hi"))]),
        row(5, "b1", &[("server", s("b")), ("sev", s("hi"))]),
        row(4, "a2", &[("server", s("a")), ("sev", s("lo"))]),
        row(3, "n1", &[("sev", s("lo"))]),
        row(2, "n2", &[("sev", s("lo"))]),
        row(1, "a3", &[("server", s("a")), ("sev", s("hi"))]),
    ];
    let t = run("dedup server", &rows);
    assert_eq!(col(&t, "@message"), [s("a1"), s("b1"), s("n1"), s("n2")]);
    let t = run("dedup server, sev", &rows);
    assert_eq!(
        col(&t, "@message"),
        [s("a1"), s("b1"), s("a2"), s("n1"), s("n2")]
    );
    let t = run("sort @timestamp asc | dedup server | limit 2", &rows);
    assert_eq!(col(&t, "@message"), [s("a3"), s("n2")]);
}

#[test]
fn unnest_flattened_arrays() {
    let rows = vec![
        row(
            2,
            "two ips",
            &[
                ("sourceIPs.0", s("10.0.0.1")),
                ("sourceIPs.1", s("192.168.0.9")),
                ("user", s("bob")),
            ],
        ),
        row(1, "no list", &[("user", s("eve"))]),
        row(0, "scalar", &[("sourceIPs", s("172.16.0.1"))]),
    ];
    let t = run("unnest sourceIPs into ip | fields user, ip", &rows);
    assert_eq!(t.columns, ["user", "ip"]);
    assert_eq!(
        t.rows,
        [
            vec![s("bob"), s("10.0.0.1")],
            vec![s("bob"), s("192.168.0.9")],
            vec![Value::Null, s("172.16.0.1")],
        ]
    );
    let t = run(
        "unnest sourceIPs into ip | filter isIpInSubnet(ip, '10.0.0.0/8') | stats count(*)",
        &rows,
    );
    assert_eq!(t.rows, [vec![i(1)]]);
    // Lists of objects, numeric order (10 after 9), and a map as a one-element list.
    let mut fields: Vec<(&str, Value)> = Vec::new();
    let names: Vec<(String, String)> = (0..11)
        .map(|k| (format!("events.{k}.name"), format!("e{k}")))
        .collect();
    for (n, v) in &names {
        fields.push((n.as_str(), s(v)));
    }
    fields.push(("events.3.level", i(3)));
    let rows = vec![row(0, "m", &fields)];
    let t = run(
        "unnest events into event | display event.name, event.level",
        &rows,
    );
    assert_eq!(t.rows.len(), 11);
    assert_eq!(t.rows[3], vec![s("e3"), i(3)]);
    assert_eq!(t.rows[10], vec![s("e10"), Value::Null]);
    let rows = vec![row(0, "m", &[("user.name", s("bob")), ("user.uid", i(7))])];
    let t = run("unnest user into u | display u.name, u.uid", &rows);
    assert_eq!(t.rows, [vec![s("bob"), i(7)]]);
    // After a sort the list still unnests (its fields are carried).
    let rows = vec![
        row(1, "m", &[("l.0", i(1)), ("l.1", i(2))]),
        row(2, "m", &[("l.0", i(3))]),
    ];
    let t = run("sort @timestamp asc | unnest l into x | display x", &rows);
    assert_eq!(col(&t, "x"), [i(1), i(2), i(3)]);
}

#[test]
fn table_renderings() {
    let t = Table {
        columns: vec!["a".into(), "b, c".into()],
        rows: vec![
            vec![i(1), s("say \"hi\"")],
            vec![Value::Null, s("line\nbreak")],
            vec![f(1.5), Value::Bool(true)],
        ],
    };
    assert_eq!(
        t.to_json(),
        serde_json::json!([{"a": 1, "b, c": "say \"hi\""}, {"b, c": "line\nbreak"}, {"a": 1.5, "b, c": true}])
    );
    assert_eq!(
        t.to_csv(),
        "a,\"b, c\"\r\n1,\"say \"\"hi\"\"\"\r\n,\"line\nbreak\"\r\n1.5,true\r\n"
    );
    assert_eq!(
        t.to_text_table(),
        "a    b, c\n---  -----------\n1    say \"hi\"\n     line\\nbreak\n1.5  true\n"
    );
    let long = Table {
        columns: vec!["m".into()],
        rows: vec![vec![s(&"x".repeat(100))]],
    };
    let text = long.to_text_table_width(10);
    assert_eq!(text.lines().nth(2), Some("xxxxxxxxx…"));
    assert!(
        long.to_text_table().lines().nth(2).unwrap().chars().count()
            == quarry_query::TEXT_CELL_WIDTH
    );
}

#[test]
fn events_are_rows() {
    let mut fields = Fields::new();
    fields.push("verb", "delete");
    fields.push("sourceIPs.0", "10.0.0.7");
    let mut ev = Event::text(T0, "raw line");
    ev.message = Some("the message".into());
    ev.fields = fields;
    let t = run_query(
        "filter verb = 'delete' | fields @timestamp, @message, sourceIPs.0",
        [&ev],
    )
    .unwrap();
    assert_eq!(
        t.rows,
        [vec![
            s("2024-05-01 12:00:00.000"),
            s("the message"),
            s("10.0.0.7")
        ]]
    );
    let t = run_query("unnest sourceIPs into ip | display ip", [&ev]).unwrap();
    assert_eq!(t.rows, [vec![s("10.0.0.7")]]);
    assert!(run_query::<Event>("filter (", []).is_err());
}

#[test]
fn resource_bounds_fail_cleanly() {
    let rows: Vec<R> = (0..50).map(|k| row(k, "m", &[("k", i(k))])).collect();
    let o = Options {
        max_groups: 10,
        ..opts()
    };
    let q = parse_query("stats count(*) by k").unwrap();
    let mut p = Pipeline::with_options(&q, o).unwrap();
    let err = rows.iter().map(|r| p.push(r)).find_map(Result::err);
    assert_eq!(err, Some(ExecError::TooManyGroups { limit: 10 }));
    let o = Options {
        max_buffered_rows: 10,
        ..opts()
    };
    let q = parse_query("sort k").unwrap();
    let mut p = Pipeline::with_options(&q, o).unwrap();
    let err = rows.iter().map(|r| p.push(r)).find_map(Result::err);
    assert!(matches!(err, Some(ExecError::TooManyRows { limit: 10 })));
    assert!(err.unwrap().to_string().contains("add a limit"));
}
