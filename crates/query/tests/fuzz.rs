//! No input makes the parser or the engine panic: random strings, random token soup, and mutations of
//! valid queries, each parsed and (when it parses) run over a few rows. Errors must point inside the
//! text.

mod common;

use common::*;
use quarry_model::Value;
use quarry_query::{parse_query, Options, Pipeline};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "fields",
    "filter",
    "stats",
    "sort",
    "limit",
    "parse",
    "dedup",
    "display",
    "unnest",
    "into",
    "by",
    "as",
    "asc",
    "desc",
    "and",
    "or",
    "not",
    "in",
    "like",
    "true",
    "null",
    "|",
    ",",
    "(",
    ")",
    "[",
    "]",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "\"a*b\"",
    "'x'",
    "/a(?<g>b)/",
    "/(/",
    "5m",
    "0m",
    "1.5",
    "-3",
    "99999999999999999999999",
    "@timestamp",
    "@message",
    "user.name",
    "sourceIPs.0",
    "`odd-name`",
    "count(*)",
    "sum(",
    "pct(x, 50)",
    "bin(",
    "bin(1h)",
    "isIpInSubnet(",
    "'10.0.0.0/8'",
    "concat(",
    "substr(",
    "datefloor(@timestamp, 1mo)",
    "earliest(x)",
    "#c\n",
    "\n",
    " ",
    "é",
    "\"",
    "'",
    "`",
    "\\",
    "x",
    "y",
    "1",
    "0",
    "1e308",
    "9223372036854775807",
];

fn rows() -> Vec<R> {
    vec![
        row(
            3,
            "user=bob, action=login ip=10.0.0.1",
            &[
                ("x", i(i64::MAX)),
                ("y", i(i64::MIN)),
                ("user.name", s("bob")),
                ("sourceIPs.0", s("10.0.0.1")),
                ("sourceIPs.1", s("::1")),
                ("odd-name", f(f64::NAN)),
                ("a", s("")),
            ],
        ),
        row(
            2,
            "",
            &[
                ("x", f(1e308)),
                ("y", f(-0.0)),
                ("user.name", Value::Null),
                ("a", Value::Bool(true)),
            ],
        ),
        row(
            1,
            "é\n\t\"",
            &[
                ("x", s("1e400")),
                ("y", s("-9223372036854775808")),
                ("a", s("2001:db8::1")),
            ],
        ),
        vec![("@timestamp".into(), s("not a time")), ("x".into(), i(0))],
        vec![
            ("@timestamp".into(), i(i64::MIN)),
            ("@message".into(), i(5)),
        ],
        vec![("@timestamp".into(), i(i64::MAX))],
    ]
}

fn exercise(text: &str, rows: &[R]) {
    match parse_query(text) {
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{text:?}: {e:?}");
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                e.line <= lines.len(),
                "{text:?}: line {} of {}",
                e.line,
                lines.len()
            );
            assert!(
                e.column <= lines[e.line - 1].chars().count() + 1,
                "{text:?}: column {} past the line",
                e.column
            );
            assert!(!e.message.is_empty());
        }
        Ok(q) => {
            let o = Options {
                max_rows: 50,
                max_groups: 50,
                max_buffered_rows: 50,
                now_ns: Some(T0),
            };
            if let Ok(mut p) = Pipeline::with_options(&q, o) {
                for r in rows {
                    if p.push(r).is_err() {
                        return;
                    }
                }
                if let Ok(t) = p.finish() {
                    let _ = (t.to_json(), t.to_csv(), t.to_text_table());
                }
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let rows = rows();
    let alphabet: Vec<char> = "abcxyz019 .,|()[]'\"`/\\*=!<>~+-%^#@_\n\téß€😀"
        .chars()
        .collect();
    for _ in 0..20_000 {
        let len = rng.below(40);
        let text: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        exercise(&text, &rows);
    }
}

#[test]
fn token_soup_never_panics() {
    let mut rng = Rng(42);
    let rows = rows();
    for _ in 0..20_000 {
        let n = 1 + rng.below(14);
        let mut text = String::new();
        for _ in 0..n {
            text.push_str(TOKENS[rng.below(TOKENS.len())]);
            if rng.below(3) > 0 {
                text.push(' ');
            }
        }
        exercise(&text, &rows);
    }
}

#[test]
fn mutated_valid_queries_never_panic() {
    let seeds = [
        "fields @timestamp, @message, sourceIPs.0 | filter user.name=\"bob\" and x in [\"1\",2] | sort @timestamp desc | limit 5",
        "stats count(*) as c, sum(x) / count(*) as r, pct(x, 90), earliest(user.name) by bin(5m), user.name | sort c desc",
        "parse @message \"user=*, action=*\" as u, act | stats count(*) by u, act | stats count(*) as n",
        r"parse @message /user=(?<u>\w+)/ | dedup u | unnest sourceIPs into ip | display ip, u",
        "filter isIpInSubnet(a, '2001:db8::/32') or not isValidIp(a) | fields concat(a, '-', x) as k, substr(a, 1, 2), datefloor(@timestamp, 1q), toMillis(@timestamp) - x as d",
        "fields abs(x), ceil(y), floor(x), greatest(x, y), least(x, y), log(x), sqrt(x), pow(x, y), x ^ y, -x % y, strlen(@message), trim(a), replace(a, 'b', 'c')",
    ];
    let mut rng = Rng(7);
    let rows = rows();
    for seed in seeds {
        exercise(seed, &rows);
        let chars: Vec<char> = seed.chars().collect();
        for _ in 0..1_500 {
            let mut c = chars.clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 if !c.is_empty() => {
                        c.remove(rng.below(c.len()));
                    }
                    1 => {
                        let at = rng.below(c.len() + 1);
                        let tok = TOKENS[rng.below(TOKENS.len())];
                        for (k, ch) in tok.chars().enumerate() {
                            c.insert(at + k, ch);
                        }
                    }
                    2 if !c.is_empty() => {
                        let at = rng.below(c.len());
                        c.truncate(at);
                    }
                    _ if !c.is_empty() => {
                        let (a, b) = (rng.below(c.len()), rng.below(c.len()));
                        c.swap(a, b);
                    }
                    _ => {}
                }
            }
            let text: String = c.into_iter().collect();
            exercise(&text, &rows);
        }
    }
}

#[test]
fn huge_inputs_are_handled() {
    let rows = rows();
    exercise(&"(".repeat(100_000), &rows);
    exercise(&format!("filter {}", "not ".repeat(100_000)), &rows);
    exercise(&format!("filter x{}", " + x".repeat(50_000)), &rows);
    exercise(&format!("fields {}", vec!["x"; 20_000].join(", ")), &rows);
    exercise(&"| ".repeat(10_000), &rows);
    exercise(
        &format!("filter x like \"{}\"", "a".repeat(1_000_000)),
        &rows,
    );
    exercise(r"filter x like /(a{1000}){1000}/", &rows);
}
