//! Parser tests: every command, expression form and function, and every error path with its position.

use quarry_query::ast::*;
use quarry_query::{parse_query, Pipeline, QueryError};

fn q(text: &str) -> Query {
    parse_query(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn one(text: &str) -> Command {
    let mut query = q(text);
    assert_eq!(query.commands.len(), 1, "{text}");
    query.commands.remove(0)
}

fn filter_expr(text: &str) -> Expr {
    match one(&format!("filter {text}")) {
        Command::Filter(f) => f.expr,
        other => panic!("not a filter: {other:?}"),
    }
}

fn err(text: &str) -> QueryError {
    match parse_query(text) {
        Ok(q) => match Pipeline::new(&q) {
            Ok(_) => panic!("{text:?} should fail"),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

#[track_caller]
fn err_at(text: &str, line: usize, column: usize, needle: &str) {
    let e = err(text);
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "{text:?} gave {e} (wanted line {line}, column {column})"
    );
    assert!(
        e.message.contains(needle),
        "{text:?} gave {:?}, wanted it to mention {needle:?}",
        e.message
    );
}

fn field(e: &Expr) -> &str {
    match &e.kind {
        ExprKind::Field(f) => f,
        other => panic!("not a field: {other:?}"),
    }
}

#[test]
fn empty_query_and_comments() {
    assert!(q("").commands.is_empty());
    assert!(q("  # only a comment\n").commands.is_empty());
    let query = q("# find errors\nfilter x = 1 # trailing\n| limit 5");
    assert_eq!(query.commands.len(), 2);
    assert_eq!(query.commands[1].span().line, 3);
}

#[test]
fn fields_with_aliases_and_names() {
    let Command::Fields(f) = one("fields @timestamp, `foo-bar`, abs(f3-f4), user.name as u") else {
        panic!()
    };
    let names: Vec<&str> = f.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["@timestamp", "foo-bar", "abs(f3-f4)", "u"]);
    assert_eq!(f.items[3].alias.as_deref(), Some("u"));
    assert_eq!(field(&f.items[1].expr), "foo-bar");
    assert_eq!(f.span.start, 0);
}

#[test]
fn display_with_expression() {
    let Command::Display(d) = one("DISPLAY loggingMessage, loggingType = \"ERROR\" as isError")
    else {
        panic!()
    };
    assert_eq!(d.items[1].name, "isError");
    assert!(matches!(
        d.items[1].expr.kind,
        ExprKind::Binary {
            op: BinaryOp::Eq,
            ..
        }
    ));
}

#[test]
fn filter_comparisons_and_logic() {
    for (op_text, op) in [
        ("=", BinaryOp::Eq),
        ("==", BinaryOp::Eq),
        ("!=", BinaryOp::Ne),
        ("<", BinaryOp::Lt),
        ("<=", BinaryOp::Le),
        (">", BinaryOp::Gt),
        (">=", BinaryOp::Ge),
    ] {
        let e = filter_expr(&format!("duration {op_text} 2000"));
        let ExprKind::Binary {
            op: got,
            left,
            right,
        } = e.kind
        else {
            panic!()
        };
        assert_eq!(got, op);
        assert_eq!(field(&left), "duration");
        assert_eq!(right.kind, ExprKind::Literal(Literal::Int(2000)));
    }
    let e = filter_expr("a = 1 and b = 2 and not c = 3 or d");
    let ExprKind::Or(terms) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(terms.len(), 2);
    let ExprKind::And(conj) = &terms[0].kind else {
        panic!()
    };
    assert_eq!(conj.len(), 3);
    assert!(matches!(conj[2].kind, ExprKind::Not(_)));
    // Parentheses group; keywords are case-insensitive.
    let e = filter_expr("(a OR b) AND c");
    let ExprKind::And(conj) = &e.kind else {
        panic!()
    };
    assert!(matches!(conj[0].kind, ExprKind::Or(_)));
}

#[test]
fn arithmetic_precedence() {
    let e = filter_expr("a + b * c ^ 2 ^ 3 - -d % 4 > 0");
    let ExprKind::Binary {
        op: BinaryOp::Gt,
        left,
        ..
    } = e.kind
    else {
        panic!()
    };
    // (a + (b * (c ^ (2 ^ 3)))) - ((-d) % 4)
    let ExprKind::Binary {
        op: BinaryOp::Sub,
        left: sum,
        right: rem,
    } = left.kind
    else {
        panic!()
    };
    let ExprKind::Binary {
        op: BinaryOp::Add,
        right: prod,
        ..
    } = sum.kind
    else {
        panic!()
    };
    let ExprKind::Binary {
        op: BinaryOp::Mul,
        right: pow,
        ..
    } = prod.kind
    else {
        panic!()
    };
    let ExprKind::Binary {
        op: BinaryOp::Pow,
        right: inner,
        ..
    } = pow.kind
    else {
        panic!()
    };
    assert!(matches!(
        inner.kind,
        ExprKind::Binary {
            op: BinaryOp::Pow,
            ..
        }
    ));
    let ExprKind::Binary {
        op: BinaryOp::Mod,
        left: neg,
        ..
    } = rem.kind
    else {
        panic!()
    };
    assert!(matches!(neg.kind, ExprKind::Neg(_)));
    // Negative literals fold.
    assert_eq!(filter_expr("x > -5").kind, filter_expr("x > -5").kind);
    let ExprKind::Binary { right, .. } = filter_expr("x > -5").kind else {
        panic!()
    };
    assert_eq!(right.kind, ExprKind::Literal(Literal::Int(-5)));
}

#[test]
fn literals() {
    let lit = |t: &str| match filter_expr(&format!("x = {t}")).kind {
        ExprKind::Binary { right, .. } => right.kind,
        _ => panic!(),
    };
    assert_eq!(
        lit("\"a\\\"b\""),
        ExprKind::Literal(Literal::Str("a\"b".into()))
    );
    assert_eq!(
        lit("'single'"),
        ExprKind::Literal(Literal::Str("single".into()))
    );
    assert_eq!(
        lit("'tab\\there'"),
        ExprKind::Literal(Literal::Str("tab\there".into()))
    );
    assert_eq!(lit("42"), ExprKind::Literal(Literal::Int(42)));
    assert_eq!(lit("4.5"), ExprKind::Literal(Literal::Float(4.5)));
    assert_eq!(lit("1e3"), ExprKind::Literal(Literal::Float(1000.0)));
    assert_eq!(lit("true"), ExprKind::Literal(Literal::Bool(true)));
    assert_eq!(lit("FALSE"), ExprKind::Literal(Literal::Bool(false)));
    assert_eq!(lit("null"), ExprKind::Literal(Literal::Null));
    assert_eq!(
        lit("99999999999999999999"),
        ExprKind::Literal(Literal::Float(1e20))
    );
}

#[test]
fn field_references() {
    for (text, name) in [
        ("user.username", "user.username"),
        ("sourceIPs.0", "sourceIPs.0"),
        ("@timestamp", "@timestamp"),
        ("@message", "@message"),
        ("@source", "@source"),
        (
            "`annotations.authorization.k8s.io/decision`",
            "annotations.authorization.k8s.io/decision",
        ),
        (
            "annotations.`authorization.k8s.io/decision`",
            "annotations.authorization.k8s.io/decision",
        ),
        ("`detail-type`", "detail-type"),
        ("`by`", "by"),
    ] {
        let e = filter_expr(&format!("ispresent({text})"));
        let ExprKind::Call { args, .. } = e.kind else {
            panic!()
        };
        assert_eq!(field(&args[0]), name, "{text}");
    }
}

#[test]
fn in_and_like_forms() {
    let e = filter_expr("verb in [\"create\",\"update\", 'patch']");
    let ExprKind::In {
        list,
        negated: false,
        ..
    } = e.kind
    else {
        panic!()
    };
    assert_eq!(list.len(), 3);
    let ExprKind::In {
        negated: true,
        list,
        ..
    } = filter_expr("code not in [401, 403]").kind
    else {
        panic!()
    };
    assert_eq!(list.len(), 2);
    assert!(matches!(filter_expr("x in []").kind, ExprKind::In { .. }));
    let like = |t: &str| match filter_expr(t).kind {
        ExprKind::Like {
            pattern, negated, ..
        } => (pattern, negated),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        like("f1 like \"Exception\""),
        (Pattern::Substring("Exception".into()), false)
    );
    assert_eq!(
        like("f1 like /Exception/"),
        (Pattern::Regex("Exception".into()), false)
    );
    assert_eq!(
        like("f1 =~ /^(?i)Exception$/"),
        (Pattern::Regex("^(?i)Exception$".into()), false)
    );
    assert_eq!(
        like("f1 =~ 'text'"),
        (Pattern::Substring("text".into()), false)
    );
    assert_eq!(
        like("@message not like /Exception/"),
        (Pattern::Regex("Exception".into()), true)
    );
    assert_eq!(
        like("dstAddr not like 'y.y.'"),
        (Pattern::Substring("y.y.".into()), true)
    );
    assert_eq!(
        like(r"path like /a\/b\d/"),
        (Pattern::Regex(r"a/b\d".into()), false)
    );
    // Division is still division.
    assert!(matches!(
        filter_expr("a / b > 2").kind,
        ExprKind::Binary {
            op: BinaryOp::Gt,
            ..
        }
    ));
}

#[test]
fn every_function_parses() {
    let calls = [
        ("ispresent(a)", Function::IsPresent),
        ("isPresent(a)", Function::IsPresent),
        ("isempty(a)", Function::IsEmpty),
        ("isblank(a)", Function::IsBlank),
        ("coalesce(a, b, 'c')", Function::Coalesce),
        ("strlen(a)", Function::Strlen),
        ("tolower(a)", Function::ToLower),
        ("toUpper(a)", Function::ToUpper),
        ("concat(a, '-', b)", Function::Concat),
        ("substr(a, 1)", Function::Substr),
        ("substr(a, 1, 2)", Function::Substr),
        ("replace(a, 'x', 'y')", Function::Replace),
        ("strcontains(a, 'x')", Function::StrContains),
        ("trim(a)", Function::Trim),
        ("ltrim(a, 'xy')", Function::Ltrim),
        ("rtrim(a)", Function::Rtrim),
        ("isValidIp(a)", Function::IsValidIp),
        ("isValidIpV4(a)", Function::IsValidIpV4),
        ("isValidIpV6(a)", Function::IsValidIpV6),
        ("isIpInSubnet(a, '10.0.0.0/8')", Function::IsIpInSubnet),
        ("isIpInSubnet(a, '2001:db8::/32')", Function::IsIpInSubnet),
        (
            "isIpv4InSubnet(a, '192.0.2.0/24')",
            Function::IsIpv4InSubnet,
        ),
        ("isIpv6InSubnet(a, 'fd00::/8')", Function::IsIpv6InSubnet),
        ("abs(a)", Function::Abs),
        ("ceil(a)", Function::Ceil),
        ("floor(a)", Function::Floor),
        ("greatest(a, b, 3)", Function::Greatest),
        ("least(a, b)", Function::Least),
        ("log(a)", Function::Log),
        ("sqrt(a)", Function::Sqrt),
        ("pow(a, 2)", Function::Pow),
        ("bin(5m)", Function::Bin),
        ("datefloor(@timestamp, 1h)", Function::DateFloor),
        ("dateceil(@timestamp, 1d)", Function::DateCeil),
        ("fromMillis(a)", Function::FromMillis),
        ("toMillis(@timestamp)", Function::ToMillis),
        ("now()", Function::Now),
    ];
    let mut seen = std::collections::HashSet::new();
    for (text, func) in calls {
        let Command::Fields(f) = one(&format!("fields {text}")) else {
            panic!()
        };
        match &f.items[0].expr.kind {
            ExprKind::Call { func: got, .. } => assert_eq!(*got, func, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
        assert_eq!(f.items[0].name, text);
        seen.insert(func);
    }
    assert_eq!(
        seen.len(),
        Function::ALL.len(),
        "a function has no parser test"
    );
    let Command::Fields(f) = one("fields bin(30s) as b") else {
        panic!()
    };
    let ExprKind::Call { args, .. } = &f.items[0].expr.kind else {
        panic!()
    };
    assert_eq!(
        args[0].kind,
        ExprKind::Period(Period {
            amount: 30,
            unit: TimeUnit::Second
        })
    );
}

#[test]
fn stats_forms() {
    let Command::Stats(s) = one(
        "stats count(*), count(x) as n, count_distinct(u), sum(b), avg(d), min(d), max(d), pct(d, 95), \
         earliest(m), latest(m), stddev(d), median(d), sortsFirst(m), sortsLast(m) by bin(5m), host as h",
    ) else {
        panic!()
    };
    let funcs: Vec<AggFunc> = s
        .items
        .iter()
        .map(|p| match &p.expr.kind {
            ExprKind::Agg { func, .. } => *func,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        funcs,
        [
            AggFunc::Count,
            AggFunc::Count,
            AggFunc::CountDistinct,
            AggFunc::Sum,
            AggFunc::Avg,
            AggFunc::Min,
            AggFunc::Max,
            AggFunc::Pct(95.0),
            AggFunc::Earliest,
            AggFunc::Latest,
            AggFunc::Stddev,
            AggFunc::Median,
            AggFunc::SortsFirst,
            AggFunc::SortsLast
        ]
    );
    assert!(matches!(
        &s.items[0].expr.kind,
        ExprKind::Agg { arg: None, .. }
    ));
    assert_eq!(s.items[0].name, "count(*)");
    assert_eq!(s.items[1].name, "n");
    assert_eq!(s.by[0].name, "bin(5m)");
    assert_eq!(s.by[1].name, "h");
    // `stats avg (f1) by f2`: a space before the parenthesis is allowed.
    let Command::Stats(s) = one("stats avg (f1) by f2") else {
        panic!()
    };
    assert_eq!(s.items[0].name, "avg (f1)");
    // Arithmetic over aggregates and over earlier statistics.
    let Command::Stats(s) =
        one("stats sum(a) / count(*) as ratio, max(x) as mx, min(x) as mn, mx - mn as spread")
    else {
        panic!()
    };
    assert_eq!(s.items.len(), 4);
    assert!(!s.items[3].expr.has_agg());
    // Chained stats.
    assert_eq!(
        q("stats count(*) as c by host | stats avg(c) as mean")
            .commands
            .len(),
        2
    );
    // count() means count(*).
    assert!(matches!(one("stats count()"), Command::Stats(_)));
}

#[test]
fn sort_limit_dedup_unnest() {
    let Command::Sort(s) = one("sort a, b asc, c DESC") else {
        panic!()
    };
    let orders: Vec<Order> = s.keys.iter().map(|k| k.order).collect();
    assert_eq!(orders, [Order::Desc, Order::Asc, Order::Desc]);
    let Command::Limit(l) = one("limit 25") else {
        panic!()
    };
    assert_eq!(l.count, 25);
    let Command::Dedup(d) = one("dedup server, severity") else {
        panic!()
    };
    assert_eq!(d.keys.len(), 2);
    let Command::Unnest(u) = one("unnest sourceIPs into ip") else {
        panic!()
    };
    assert_eq!((u.field.as_str(), u.alias.as_str()), ("sourceIPs", "ip"));
}

#[test]
fn parse_forms() {
    let Command::Parse(p) = one("parse @message \"user=*, action=*\" as user, action") else {
        panic!()
    };
    assert_eq!(field(&p.source), "@message");
    assert_eq!(
        p.pattern,
        ParsePattern::Glob {
            pattern: "user=*, action=*".into(),
            names: vec!["user".into(), "action".into()]
        }
    );
    let Command::Parse(p) = one(r"parse @message /user=(?<user>\S+) ip=(?<ip>[\d.]+)/") else {
        panic!()
    };
    assert_eq!(p.pattern.names(), ["user", "ip"]);
    let Command::Parse(p) = one("parse 'level=*' as level") else {
        panic!()
    };
    assert_eq!(field(&p.source), "@message");
    let Command::Parse(p) = one("parse log.line \"[*]\" as @level") else {
        panic!()
    };
    assert_eq!(field(&p.source), "log.line");
    assert_eq!(p.pattern.names(), ["@level"]);
}

#[test]
fn commands_are_case_insensitive_and_span_lines() {
    let query = q("FIELDS @message\n    | PARSE @message \"* [*] *\" as loggingTime, loggingType, loggingMessage\n    | FILTER loggingType IN [\"ERROR\", \"INFO\"]\n    | DISPLAY loggingMessage, loggingType = \"ERROR\" as isError");
    let kw: Vec<&str> = query.commands.iter().map(|c| c.keyword()).collect();
    assert_eq!(kw, ["fields", "parse", "filter", "display"]);
    let span = query.commands[2].span();
    assert_eq!((span.line, span.column), (3, 7));
}

#[test]
fn field_refs_for_planner() {
    let e = filter_expr("a = 1 and (b like /x/ or isIpInSubnet(c, '10.0.0.0/8')) and bin(1m) > 0");
    let mut refs = e.field_refs();
    refs.sort();
    assert_eq!(refs, ["@timestamp", "a", "b", "c"]);
}

// ---- errors ----

#[test]
fn error_unterminated_string() {
    err_at(
        "filter x = \"abc",
        1,
        12,
        "unterminated string: expected a closing \"",
    );
    err_at("filter x = 'abc", 1, 12, "expected a closing '");
}

#[test]
fn error_missing_by_expression() {
    err_at(
        "stats count(*) by",
        1,
        18,
        "expected an expression to group by after 'by', found end of query",
    );
    err_at("stats count(*) by | limit 2", 1, 19, "found '|'");
    err_at(
        "stats count(*) by a,",
        1,
        21,
        "expected an expression to group by",
    );
}

#[test]
fn error_bad_number() {
    err_at("limit 12ab", 1, 7, "bad number '12ab'");
    err_at("filter x > 1.2.3", 1, 12, "bad number '1.2.3'");
    err_at("stats count(*) by bin(5x)", 1, 23, "bad number '5x'");
    err_at("stats count(*) by bin(0m)", 1, 23, "bad time period '0m'");
    err_at("stats count(*) by bin(1.5h)", 1, 23, "bad number '1.5h'");
}

#[test]
fn error_unknown_command() {
    err_at(
        "fliter x = 1",
        1,
        1,
        "unknown command 'fliter': expected one of fields, filter",
    );
    err_at("filter x = 1\n| sorty x", 2, 3, "unknown command 'sorty'");
    err_at(
        "pattern @message",
        1,
        1,
        "command 'pattern' is not supported",
    );
    err_at("| filter x", 1, 1, "expected a command");
    err_at("\"fields\" x", 1, 1, "expected a command");
}

#[test]
fn error_unknown_function() {
    err_at("filter foo(x) = 1", 1, 8, "unknown function 'foo'");
    err_at(
        "fields a,\n  strlength(b)",
        2,
        3,
        "unknown function 'strlength'",
    );
}

#[test]
fn error_wrong_argument_count() {
    err_at(
        "fields substr(a)",
        1,
        8,
        "function substr() expects 2 to 3 arguments, found 1",
    );
    err_at(
        "fields strlen(a, b)",
        1,
        8,
        "function strlen() expects 1 argument, found 2",
    );
    err_at(
        "fields now(1)",
        1,
        8,
        "function now() expects 0 arguments, found 1",
    );
    err_at(
        "fields coalesce()",
        1,
        8,
        "expects at least 1 argument, found 0",
    );
    err_at("stats sum(a, b)", 1, 7, "function sum() expects 1 argument");
    err_at(
        "stats sum()",
        1,
        7,
        "function sum() expects 1 argument, found 0",
    );
    err_at("stats pct(a)", 1, 12, "',' and a percentile");
    err_at("stats pct(a, 101)", 1, 14, "percentile between 0 and 100");
    err_at("stats pct(a, b)", 1, 14, "percentile between 0 and 100");
}

#[test]
fn error_trailing_pipe() {
    err_at(
        "filter x = 1 |",
        1,
        15,
        "expected a command after '|', found end of query",
    );
    err_at(
        "filter x = 1 |\n  # nothing\n",
        3,
        1,
        "expected a command after '|'",
    );
    err_at("filter x = 1 | | limit 1", 1, 16, "expected a command");
}

#[test]
fn error_bad_regex() {
    err_at(
        "filter x like /a(b/",
        1,
        15,
        "invalid regular expression /a(b/",
    );
    err_at("filter x =~ /[z-a]/", 1, 13, "invalid regular expression");
    err_at(
        "parse @message /(?<x>a)(/",
        1,
        16,
        "invalid regular expression",
    );
    err_at(
        "filter x like /abc",
        1,
        15,
        "unterminated regular expression",
    );
}

#[test]
fn error_misc_positions() {
    err_at("filter x = ", 1, 12, "expected an expression");
    err_at(
        "filter (a = 1",
        1,
        14,
        "expected ')' to close the '(' at line 1, column 8, found end of query",
    );
    err_at(
        "filter a = 1 b",
        1,
        14,
        "expected '|' or end of query after the filter command, found 'b'",
    );
    err_at(
        "filter x in (1, 2)",
        1,
        13,
        "expected '[' to start the list after 'in'",
    );
    err_at("filter x in [1, 2", 1, 18, "expected ',' or ']'");
    err_at(
        "filter x like y",
        1,
        15,
        "expected a \"string\" or /regex/ after 'like'",
    );
    err_at(
        "filter x not y",
        1,
        14,
        "expected 'like' or 'in' after 'not'",
    );
    err_at(
        "filter count(*) > 1",
        1,
        8,
        "aggregate function count() can only be used in stats",
    );
    err_at("fields sum(x)", 1, 8, "can only be used in stats");
    err_at("stats sum(count(*))", 1, 11, "can only be used in stats");
    err_at(
        "stats count(*) by sum(x)",
        1,
        19,
        "can only be used in stats",
    );
    err_at(
        "stats x",
        1,
        7,
        "field 'x' in stats must be inside an aggregate function",
    );
    err_at("stats sum(a) as s, s2 - s as d", 1, 20, "field 's2'");
    err_at("stats 1", 1, 7, "expected an aggregate function");
    err_at(
        "limit 0",
        1,
        7,
        "expected a positive whole number after 'limit', found number 0",
    );
    err_at("limit -1", 1, 7, "found '-'");
    err_at("limit 2.5", 1, 7, "found number 2.5");
    err_at("limit", 1, 6, "found end of query");
    err_at("fields a as", 1, 12, "expected a name after 'as'");
    err_at(
        "fields a as by",
        1,
        13,
        "expected a name after 'as', found 'by'",
    );
    err_at("filter a = by", 1, 12, "found keyword 'by'");
    err_at(
        "fields 5m",
        1,
        8,
        "a time period such as 5m can only be an argument of bin()",
    );
    err_at(
        "stats count(*) by bin(5)",
        1,
        23,
        "expected a time period such as 5m or 1h as argument 1 of bin()",
    );
    err_at("fields datefloor(@timestamp, x)", 1, 30, "time period");
    err_at(
        "filter isIpInSubnet(a, '10.0.0.0/33')",
        1,
        24,
        "invalid subnet \"10.0.0.0/33\"",
    );
    err_at(
        "filter isIpv4InSubnet(a, 'fd00::/8')",
        1,
        26,
        "expects an IPv4 subnet",
    );
    err_at(
        "filter isIpv6InSubnet(a, '10.0.0.0/8')",
        1,
        26,
        "expects an IPv6 subnet",
    );
    err_at("filter x = `abc", 1, 12, "unterminated backquoted name");
    err_at("filter x ! 1", 1, 10, "expected '!='");
    err_at("filter x = 1;", 1, 13, "unexpected character ';'");
    err_at(
        "fields concat(a b)",
        1,
        17,
        "expected ',' or ')' in the arguments of concat()",
    );
    err_at(
        "unnest a",
        1,
        9,
        "expected 'into' after the field to unnest",
    );
    err_at(
        "unnest into x",
        1,
        8,
        "expected a field name after 'unnest'",
    );
    err_at("unnest a into", 1, 14, "expected a name after 'into'");
    err_at("sort", 1, 5, "expected an expression");
    err_at("dedup", 1, 6, "expected an expression");
}

#[test]
fn error_parse_command() {
    err_at(
        "parse @message \"a=*\"",
        1,
        21,
        "expected 'as' and 1 field name(s) after the glob pattern",
    );
    err_at(
        "parse @message \"a=* b=*\" as a",
        1,
        16,
        "the glob pattern has 2 '*' but 1 name(s) follow 'as'",
    );
    err_at(
        "parse @message \"abc\" as a",
        1,
        16,
        "expected at least one * in the glob pattern",
    );
    err_at(
        "parse @message /abc/",
        1,
        16,
        "expected a named group such as (?<user>",
    );
    err_at("parse @message /(?<a>x)/ as a", 1, 26, "not 'as'");
    err_at(
        "parse @message 5",
        1,
        16,
        "expected a \"glob * pattern\" or a /regex/ to parse with, found number 5",
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("filter {}x{}", "(".repeat(5000), ")".repeat(5000));
    assert!(err(&deep).message.contains("nested too deeply"));
    let nots = format!("filter {}x", "not ".repeat(5000));
    assert!(err(&nots).message.contains("nested too deeply"));
    let negs = format!("filter {}x > 0", "-".repeat(5000));
    assert!(err(&negs).message.contains("nested too deeply"));
    let chain = format!("filter x{} > 0", " + 1".repeat(5000));
    assert!(err(&chain).message.contains("too deeply nested"));
    // Long and/or chains and long lists are flat, so fine.
    let ors: Vec<String> = (0..3000).map(|i| format!("x = {i}")).collect();
    q(&format!("filter {}", ors.join(" or ")));
    let list: Vec<String> = (0..5000)
        .map(|i| format!("\"10.0.{}.{}\"", i / 256, i % 256))
        .collect();
    q(&format!("filter ip in [{}]", list.join(", ")));
}

#[test]
fn error_display_format() {
    let e = err("filter x = \"abc");
    assert_eq!(
        e.to_string(),
        "line 1, column 12: unterminated string: expected a closing \" before the end of the query"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    err_at("filter é = \"ü\" and ¿", 1, 20, "unexpected character '¿'");
}
