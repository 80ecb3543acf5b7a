//! Expressions compiled once (functions resolved, regexes, substrings and subnets prepared) and
//! evaluated per row, with the comparison, ordering and time rules of Logs Insights.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use memchr::memmem::Finder;
use quarry_model::time::{civil_from_days, parse_rfc3339};
use quarry_model::Value;
use regex::Regex;

use crate::ast::{AggFunc, BinaryOp, Expr, ExprKind, Function, Literal, Pattern, Period};
use crate::error::QueryError;
use crate::Row;

const NANOS_PER_MILLI: i64 = 1_000_000;

/// Formats UTC nanoseconds as Logs Insights shows `@timestamp`: `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn format_timestamp(ns: i64) -> String {
    let (secs, sub) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        sub / NANOS_PER_MILLI
    )
}

/// Compiles a regex as queries use them, with a size bound; the error says what is wrong.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(4 << 20)
        .dfa_size_limit(4 << 20)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let detail = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .map(str::to_string)
                .unwrap_or_else(|| text.replace('\n', " "));
            format!("invalid regular expression /{pattern}/: {detail}")
        })
}

/// The regex for a `parse` glob: `*` captures (lazily, the last one to the end of the line), all else
/// is literal; the match may start anywhere.
pub(crate) fn glob_to_regex(glob: &str) -> String {
    let parts: Vec<&str> = glob.split('*').collect();
    let mut re = String::new();
    for (i, part) in parts.iter().enumerate() {
        re.push_str(&regex::escape(part));
        if i + 1 < parts.len() {
            let last = i + 2 == parts.len();
            re.push_str(if last && parts[i + 1].is_empty() {
                "(.*)"
            } else {
                "(.*?)"
            });
        }
    }
    re
}

/// Parses the subnet argument of an `is*InSubnet` function (CIDR, or a bare address as a host).
pub(crate) fn parse_subnet(func: Function, text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("invalid subnet \"{text}\": expected CIDR notation such as 10.0.0.0/8 or 2001:db8::/32")
        })?;
    match (func, net) {
        (Function::IsIpv4InSubnet, IpNet::V6(_)) => Err(format!(
            "isIpv4InSubnet() expects an IPv4 subnet such as 10.0.0.0/8, found \"{text}\""
        )),
        (Function::IsIpv6InSubnet, IpNet::V4(_)) => Err(format!(
            "isIpv6InSubnet() expects an IPv6 subnet such as 2001:db8::/32, found \"{text}\""
        )),
        _ => Ok(net),
    }
}

/// A field name shared between compiled expressions and records.
pub(crate) type Name = Arc<str>;

/// Gives every distinct field name one shared allocation.
#[derive(Default)]
pub(crate) struct Interner {
    names: HashMap<String, Name>,
}

impl Interner {
    pub(crate) fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n: Name = Arc::from(s);
        self.names.insert(s.to_string(), n.clone());
        n
    }
}

/// A value inside the engine: a model value, or a timestamp (UTC nanoseconds) that is shown as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Time(i64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

pub(crate) fn parse_num(s: &str) -> Option<Num> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Num::I(i));
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::F)
}

impl Val {
    /// Converts a row's value; `@timestamp` becomes a time.
    pub(crate) fn from_value(name: &str, v: Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Int(i) if name == "@timestamp" => Val::Time(i),
            Value::Int(i) => Val::Int(i),
            Value::Float(f) => Val::Float(f),
            Value::Str(s) if name == "@timestamp" => match parse_rfc3339(&s) {
                Ok(t) => Val::Time(t),
                Err(_) => Val::Str(s),
            },
            Value::Str(s) => Val::Str(s),
        }
    }

    /// The value as it appears in results (times formatted).
    pub(crate) fn into_value(self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => Value::Int(i),
            Val::Float(f) => Value::Float(f),
            Val::Str(s) => Value::Str(s),
            Val::Time(t) => Value::Str(format_timestamp(t)),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// The value as a number; numeric strings count, times are milliseconds.
    pub(crate) fn num(&self) -> Option<Num> {
        match self {
            Val::Int(i) => Some(Num::I(*i)),
            Val::Float(f) if f.is_nan() => None,
            Val::Float(f) => Some(Num::F(*f)),
            Val::Str(s) => parse_num(s),
            Val::Time(t) => Some(Num::I(t.div_euclid(NANOS_PER_MILLI))),
            Val::Null | Val::Bool(_) => None,
        }
    }

    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Null => None,
            Val::Str(s) => Some(Cow::Borrowed(s)),
            Val::Bool(b) => Some(Cow::Owned(b.to_string())),
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::Float(f) => Some(Cow::Owned(f.to_string())),
            Val::Time(t) => Some(Cow::Owned(format_timestamp(*t))),
        }
    }

    pub(crate) fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0 && !f.is_nan(),
            Val::Str(s) => !s.is_empty(),
            Val::Time(_) => true,
        }
    }

    /// The value as a time: times as they are, numbers as epoch milliseconds, RFC 3339 text.
    pub(crate) fn time_ns(&self) -> Option<i64> {
        match self {
            Val::Time(t) => Some(*t),
            Val::Int(ms) => ms.checked_mul(NANOS_PER_MILLI),
            Val::Float(ms) => {
                let ns = ms * NANOS_PER_MILLI as f64;
                (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64)
            }
            Val::Str(s) => parse_rfc3339(s.trim())
                .ok()
                .or_else(|| match parse_num(s)? {
                    Num::I(ms) => ms.checked_mul(NANOS_PER_MILLI),
                    Num::F(f) => Val::Float(f).time_ns(),
                }),
            Val::Null | Val::Bool(_) => None,
        }
    }
}

/// Compares two values the way Logs Insights does: null compares with nothing; numbers and numeric
/// strings numerically; times with times, epoch milliseconds or RFC 3339 text; otherwise as text.
pub(crate) fn compare(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Time(x), other) => Some(x.cmp(&other.time_ns()?)),
        (other, Val::Time(y)) => Some(other.time_ns()?.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Str(x), Val::Str(y)) => match (parse_num(x), parse_num(y)) {
            (Some(p), Some(q)) => cmp_num(p, q),
            _ => Some(x.as_str().cmp(y.as_str())),
        },
        _ => match (a.num(), b.num()) {
            (Some(p), Some(q)) => cmp_num(p, q),
            _ => Some(a.text()?.as_ref().cmp(b.text()?.as_ref())),
        },
    }
}

fn cmp_num(p: Num, q: Num) -> Option<Ordering> {
    match (p, q) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        _ => p.f().partial_cmp(&q.f()),
    }
}

/// A value's position in `sort` order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortVal {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl SortVal {
    pub(crate) fn of(v: &Val) -> SortVal {
        match v {
            Val::Null => SortVal::Null,
            Val::Int(i) | Val::Time(i) => SortVal::Int(*i),
            Val::Float(f) if f.is_nan() => SortVal::Null,
            Val::Float(f) => SortVal::Float(*f),
            Val::Bool(b) => SortVal::Text(b.to_string()),
            Val::Str(s) => match parse_num(s) {
                Some(Num::I(i)) => SortVal::Int(i),
                Some(Num::F(f)) => SortVal::Float(f),
                None => SortVal::Text(s.clone()),
            },
        }
    }

    /// Ascending order as documented for Logs Insights: text (in natural order) before numbers;
    /// nulls after everything (callers keep nulls last in both directions).
    pub(crate) fn cmp_asc(&self, other: &SortVal) -> Ordering {
        use SortVal::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Text(a), Text(b)) => natural_cmp(a, b),
            (Text(_), _) => Ordering::Less,
            (_, Text(_)) => Ordering::Greater,
            (Int(a), Int(b)) => a.cmp(b),
            (a, b) => {
                let f = |v: &SortVal| match v {
                    Int(i) => *i as f64,
                    Float(f) => *f,
                    _ => 0.0,
                };
                f(a).total_cmp(&f(b))
            }
        }
    }
}

/// Natural order of text: runs of digits compare by length, then by value; everything else by
/// Unicode code point.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    loop {
        match (ab.get(i), bb.get(j)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let si = i;
                while ab.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let sj = j;
                while bb.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                let o = (i - si)
                    .cmp(&(j - sj))
                    .then_with(|| ab[si..i].cmp(&bb[sj..j]));
                if o != Ordering::Equal {
                    return o;
                }
            }
            (Some(_), Some(_)) => {
                // Compare one code point each (UTF-8 byte order is code point order).
                let ca = a[i..].chars().next().unwrap_or('\0');
                let cb = b[j..].chars().next().unwrap_or('\0');
                let o = ca.cmp(&cb);
                if o != Ordering::Equal {
                    return o;
                }
                i += ca.len_utf8().max(1);
                j += cb.len_utf8().max(1);
            }
        }
    }
}

/// A hashable form of a value, for group keys, dedup and count_distinct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyVal {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(String),
    Time(i64),
}

impl KeyVal {
    pub(crate) fn of(v: &Val) -> KeyVal {
        match v {
            Val::Null => KeyVal::Null,
            Val::Bool(b) => KeyVal::Bool(*b),
            Val::Int(i) => KeyVal::Int(*i),
            Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => KeyVal::Int(*f as i64),
            Val::Float(f) if f.is_nan() => KeyVal::Float(f64::NAN.to_bits()),
            Val::Float(f) => KeyVal::Float(f.to_bits()),
            Val::Str(s) => KeyVal::Str(s.clone()),
            Val::Time(t) => KeyVal::Time(*t),
        }
    }
}

/// The fields a row has gained in the pipeline (they shadow the input row's).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rec {
    pub vals: Vec<(Name, Val)>,
}

impl Rec {
    pub(crate) fn find(&self, name: &str) -> Option<&Val> {
        self.vals.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }

    pub(crate) fn set(&mut self, name: Name, v: Val) {
        match self.vals.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = v,
            None => self.vals.push((name, v)),
        }
    }
}

/// What an expression is evaluated against.
pub(crate) struct Env<'a> {
    pub rec: &'a Rec,
    pub base: Option<&'a dyn Row>,
    pub aggs: &'a [Val],
    pub now: i64,
}

impl Env<'_> {
    pub(crate) fn lookup(&self, name: &str) -> Val {
        if let Some(v) = self.rec.find(name) {
            return v.clone();
        }
        match self.base.and_then(|b| b.get(name)) {
            Some(v) => Val::from_value(name, v),
            None => Val::Null,
        }
    }
}

/// The subnet of an `is*InSubnet` call: prepared when it is a literal.
pub(crate) enum SubnetArg {
    Const(IpNet),
    Dynamic(Box<CExpr>),
}

/// A compiled expression.
pub(crate) enum CExpr {
    Const(Val),
    Field(Name),
    Neg(Box<CExpr>),
    Not(Box<CExpr>),
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Arith(BinaryOp, Box<CExpr>, Box<CExpr>),
    Cmp(BinaryOp, Box<CExpr>, Box<CExpr>),
    In {
        expr: Box<CExpr>,
        list: Vec<CExpr>,
        negated: bool,
    },
    Contains {
        expr: Box<CExpr>,
        finder: Box<Finder<'static>>,
        negated: bool,
    },
    Regex {
        expr: Box<CExpr>,
        re: Regex,
        negated: bool,
    },
    Call(Function, Vec<CExpr>),
    Subnet {
        func: Function,
        ip: Box<CExpr>,
        net: SubnetArg,
    },
    Bin(Period),
    DateRound {
        ceil: bool,
        arg: Box<CExpr>,
        period: Period,
    },
    AggRef(usize),
}

/// An aggregate found in a `stats` item.
pub(crate) struct AggSpec {
    pub func: AggFunc,
    pub arg: Option<CExpr>,
}

/// Compiles expressions; in `stats` items it collects aggregates into `aggs`.
pub(crate) struct Compiler<'a> {
    pub names: &'a mut Interner,
    pub aggs: Option<&'a mut Vec<AggSpec>>,
}

fn period_of(e: Option<&Expr>, func: Function, at: &Expr) -> Result<Period, QueryError> {
    match e.map(|e| &e.kind) {
        Some(ExprKind::Period(p)) if p.is_valid() => Ok(*p),
        _ => Err(QueryError::at(
            e.map(|e| e.span).unwrap_or(at.span),
            format!("{}() expects a time period such as 5m or 1h", func.name()),
        )),
    }
}

impl Compiler<'_> {
    pub(crate) fn compile(&mut self, e: &Expr) -> Result<CExpr, QueryError> {
        let b = |c: CExpr| Box::new(c);
        Ok(match &e.kind {
            ExprKind::Literal(l) => CExpr::Const(match l {
                Literal::Null => Val::Null,
                Literal::Bool(x) => Val::Bool(*x),
                Literal::Int(i) => Val::Int(*i),
                Literal::Float(f) => Val::Float(*f),
                Literal::Str(s) => Val::Str(s.clone()),
            }),
            ExprKind::Period(p) => {
                return Err(QueryError::at(
                    e.span,
                    format!("a time period such as {p} can only be an argument of bin(), datefloor() or dateceil()"),
                ))
            }
            ExprKind::Field(f) => CExpr::Field(self.names.name(f)),
            ExprKind::Neg(x) => CExpr::Neg(b(self.compile(x)?)),
            ExprKind::Not(x) => CExpr::Not(b(self.compile(x)?)),
            ExprKind::And(v) => CExpr::And(v.iter().map(|x| self.compile(x)).collect::<Result<_, _>>()?),
            ExprKind::Or(v) => CExpr::Or(v.iter().map(|x| self.compile(x)).collect::<Result<_, _>>()?),
            ExprKind::Binary { op, left, right } => {
                let (l, r) = (b(self.compile(left)?), b(self.compile(right)?));
                if op.is_comparison() {
                    CExpr::Cmp(*op, l, r)
                } else {
                    CExpr::Arith(*op, l, r)
                }
            }
            ExprKind::In {
                expr,
                list,
                negated,
            } => CExpr::In {
                expr: b(self.compile(expr)?),
                list: list.iter().map(|x| self.compile(x)).collect::<Result<_, _>>()?,
                negated: *negated,
            },
            ExprKind::Like {
                expr,
                pattern,
                negated,
            } => {
                let expr = b(self.compile(expr)?);
                match pattern {
                    Pattern::Substring(s) => CExpr::Contains {
                        expr,
                        finder: Box::new(Finder::new(s.as_bytes()).into_owned()),
                        negated: *negated,
                    },
                    Pattern::Regex(r) => CExpr::Regex {
                        expr,
                        re: compile_regex(r).map_err(|m| QueryError::at(e.span, m))?,
                        negated: *negated,
                    },
                }
            }
            ExprKind::Call { func, args } => {
                let (min, max) = func.arity();
                if args.len() < min || max.is_some_and(|m| args.len() > m) {
                    return Err(QueryError::at(
                        e.span,
                        format!("function {}() has the wrong number of arguments ({})", func.name(), args.len()),
                    ));
                }
                match func {
                    Function::Bin => CExpr::Bin(period_of(args.first(), *func, e)?),
                    Function::DateFloor | Function::DateCeil => CExpr::DateRound {
                        ceil: *func == Function::DateCeil,
                        arg: b(self.compile(&args[0])?),
                        period: period_of(args.get(1), *func, e)?,
                    },
                    Function::IsIpInSubnet | Function::IsIpv4InSubnet | Function::IsIpv6InSubnet => {
                        let net = match &args[1].kind {
                            ExprKind::Literal(Literal::Str(s)) => SubnetArg::Const(
                                parse_subnet(*func, s).map_err(|m| QueryError::at(args[1].span, m))?,
                            ),
                            _ => SubnetArg::Dynamic(b(self.compile(&args[1])?)),
                        };
                        CExpr::Subnet {
                            func: *func,
                            ip: b(self.compile(&args[0])?),
                            net,
                        }
                    }
                    _ => CExpr::Call(
                        *func,
                        args.iter().map(|x| self.compile(x)).collect::<Result<_, _>>()?,
                    ),
                }
            }
            ExprKind::Agg { func, arg } => {
                let arg = match arg {
                    Some(a) if a.has_agg() => {
                        return Err(QueryError::at(
                            a.span,
                            "aggregate functions cannot be nested inside one another",
                        ))
                    }
                    Some(a) => Some(self.compile(a)?),
                    None => None,
                };
                let Some(aggs) = self.aggs.as_deref_mut() else {
                    return Err(QueryError::at(
                        e.span,
                        format!("aggregate function {}() can only be used in stats", func.name()),
                    ));
                };
                aggs.push(AggSpec { func: *func, arg });
                CExpr::AggRef(aggs.len() - 1)
            }
        })
    }
}

fn arith(op: BinaryOp, a: Val, b: Val) -> Val {
    let (Some(x), Some(y)) = (a.num(), b.num()) else {
        return Val::Null;
    };
    let float = |f: f64| Val::Float(f);
    match (op, x, y) {
        (BinaryOp::Add, Num::I(p), Num::I(q)) => p
            .checked_add(q)
            .map_or(float(p as f64 + q as f64), Val::Int),
        (BinaryOp::Sub, Num::I(p), Num::I(q)) => p
            .checked_sub(q)
            .map_or(float(p as f64 - q as f64), Val::Int),
        (BinaryOp::Mul, Num::I(p), Num::I(q)) => p
            .checked_mul(q)
            .map_or(float(p as f64 * q as f64), Val::Int),
        (BinaryOp::Div | BinaryOp::Mod, _, y) if y.f() == 0.0 => Val::Null,
        (BinaryOp::Div, Num::I(p), Num::I(q)) if p.checked_rem(q) == Some(0) => p
            .checked_div(q)
            .map_or(float(p as f64 / q as f64), Val::Int),
        (BinaryOp::Mod, Num::I(p), Num::I(q)) => Val::Int(p.checked_rem(q).unwrap_or(0)),
        (BinaryOp::Pow, Num::I(p), Num::I(q)) if (0..=u32::MAX as i64).contains(&q) => p
            .checked_pow(q as u32)
            .map_or(float((p as f64).powf(q as f64)), Val::Int),
        (BinaryOp::Add, x, y) => float(x.f() + y.f()),
        (BinaryOp::Sub, x, y) => float(x.f() - y.f()),
        (BinaryOp::Mul, x, y) => float(x.f() * y.f()),
        (BinaryOp::Div, x, y) => float(x.f() / y.f()),
        (BinaryOp::Mod, x, y) => float(x.f() % y.f()),
        (BinaryOp::Pow, x, y) => float(x.f().powf(y.f())),
        _ => Val::Null,
    }
}

fn cmp_op(op: BinaryOp, a: &Val, b: &Val) -> bool {
    let Some(o) = compare(a, b) else {
        return false;
    };
    match op {
        BinaryOp::Eq => o == Ordering::Equal,
        BinaryOp::Ne => o != Ordering::Equal,
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::Le => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        BinaryOp::Ge => o != Ordering::Less,
        _ => false,
    }
}

fn int_or_float(f: f64) -> Val {
    if f.is_finite() && f.abs() < 9.0e18 {
        Val::Int(f as i64)
    } else {
        Val::Float(f)
    }
}

fn trim_with(s: &str, chars: Option<&str>, left: bool, right: bool) -> String {
    let pred = |c: char| match chars {
        Some(set) => set.contains(c),
        None => c.is_whitespace(),
    };
    let mut out = s;
    if left {
        out = out.trim_start_matches(pred);
    }
    if right {
        out = out.trim_end_matches(pred);
    }
    out.to_string()
}

fn ip_of(v: &Val) -> Option<IpAddr> {
    v.text()?.trim().parse::<IpAddr>().ok()
}

fn in_subnet(func: Function, ip: IpAddr, net: &IpNet) -> bool {
    match func {
        Function::IsIpv4InSubnet => ip.is_ipv4() && net.contains(&ip),
        Function::IsIpv6InSubnet => ip.is_ipv6() && net.contains(&ip),
        _ => net.contains(&ip) || net.contains(&ip.to_canonical()),
    }
}

impl CExpr {
    pub(crate) fn eval(&self, env: &Env) -> Val {
        match self {
            CExpr::Const(v) => v.clone(),
            CExpr::Field(n) => env.lookup(n),
            CExpr::AggRef(i) => env.aggs.get(*i).cloned().unwrap_or(Val::Null),
            CExpr::Neg(x) => match x.eval(env).num() {
                Some(Num::I(i)) => i.checked_neg().map_or(Val::Float(-(i as f64)), Val::Int),
                Some(Num::F(f)) => Val::Float(-f),
                None => Val::Null,
            },
            CExpr::Not(x) => Val::Bool(!x.eval(env).truthy()),
            CExpr::And(v) => Val::Bool(v.iter().all(|x| x.eval(env).truthy())),
            CExpr::Or(v) => Val::Bool(v.iter().any(|x| x.eval(env).truthy())),
            CExpr::Arith(op, l, r) => arith(*op, l.eval(env), r.eval(env)),
            CExpr::Cmp(op, l, r) => Val::Bool(cmp_op(*op, &l.eval(env), &r.eval(env))),
            CExpr::In {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(env);
                if v.is_null() {
                    return Val::Bool(false);
                }
                let found = list
                    .iter()
                    .any(|c| compare(&v, &c.eval(env)) == Some(Ordering::Equal));
                Val::Bool(found != *negated)
            }
            CExpr::Contains {
                expr,
                finder,
                negated,
            } => match expr.eval(env).text() {
                Some(t) => Val::Bool(finder.find(t.as_bytes()).is_some() != *negated),
                None => Val::Bool(false),
            },
            CExpr::Regex { expr, re, negated } => match expr.eval(env).text() {
                Some(t) => Val::Bool(re.is_match(&t) != *negated),
                None => Val::Bool(false),
            },
            CExpr::Subnet { func, ip, net } => {
                let Some(addr) = ip_of(&ip.eval(env)) else {
                    return Val::Bool(false);
                };
                let ok = match net {
                    SubnetArg::Const(n) => in_subnet(*func, addr, n),
                    SubnetArg::Dynamic(e) => e
                        .eval(env)
                        .text()
                        .and_then(|t| parse_subnet(*func, &t).ok())
                        .is_some_and(|n| in_subnet(*func, addr, &n)),
                };
                Val::Bool(ok)
            }
            CExpr::Bin(p) => env
                .lookup("@timestamp")
                .time_ns()
                .and_then(|t| p.floor(t))
                .map_or(Val::Null, Val::Time),
            CExpr::DateRound { ceil, arg, period } => arg
                .eval(env)
                .time_ns()
                .and_then(|t| {
                    if *ceil {
                        period.ceil(t)
                    } else {
                        period.floor(t)
                    }
                })
                .map_or(Val::Null, Val::Time),
            CExpr::Call(func, args) => call(*func, args, env),
        }
    }
}

fn call(func: Function, args: &[CExpr], env: &Env) -> Val {
    let arg = |i: usize| args.get(i).map_or(Val::Null, |a| a.eval(env));
    let text_fn = |f: &dyn Fn(&str) -> Val| match arg(0).text() {
        Some(t) => f(&t),
        None => Val::Null,
    };
    let num_fn = |f: &dyn Fn(Num) -> Val| match arg(0).num() {
        Some(n) => f(n),
        None => Val::Null,
    };
    match func {
        Function::IsPresent => Val::Bool(!arg(0).is_null()),
        Function::IsEmpty => Val::Bool(arg(0).text().is_none_or(|t| t.is_empty())),
        Function::IsBlank => Val::Bool(arg(0).text().is_none_or(|t| t.trim().is_empty())),
        Function::Coalesce => args
            .iter()
            .map(|a| a.eval(env))
            .find(|v| !v.is_null())
            .unwrap_or(Val::Null),
        Function::Strlen => text_fn(&|t| Val::Int(t.chars().count() as i64)),
        Function::ToLower => text_fn(&|t| Val::Str(t.to_lowercase())),
        Function::ToUpper => text_fn(&|t| Val::Str(t.to_uppercase())),
        Function::Concat => {
            let mut out = String::new();
            let mut any = false;
            for a in args {
                if let Some(t) = a.eval(env).text() {
                    any = true;
                    out.push_str(&t);
                }
            }
            if any {
                Val::Str(out)
            } else {
                Val::Null
            }
        }
        Function::Substr => {
            let s = arg(0);
            let Some(t) = s.text() else { return Val::Null };
            let start = arg(1)
                .num()
                .map_or(0, |n| n.f().max(0.0).min(usize::MAX as f64) as usize);
            let len = match args.get(2) {
                Some(_) => arg(2)
                    .num()
                    .map_or(0, |n| n.f().max(0.0).min(usize::MAX as f64) as usize),
                None => usize::MAX,
            };
            Val::Str(t.chars().skip(start).take(len).collect())
        }
        Function::Replace => {
            let s = arg(0);
            let Some(t) = s.text() else { return Val::Null };
            let from = arg(1);
            let from = from.text().unwrap_or_default();
            if from.is_empty() {
                return Val::Str(t.into_owned());
            }
            let to = arg(2);
            Val::Str(t.replace(from.as_ref(), &to.text().unwrap_or_default()))
        }
        Function::StrContains => {
            let (s, sub) = (arg(0), arg(1));
            match (s.text(), sub.text()) {
                (Some(a), Some(b)) => Val::Int(a.contains(b.as_ref()) as i64),
                _ => Val::Int(0),
            }
        }
        Function::Trim | Function::Ltrim | Function::Rtrim => {
            let chars = args.get(1).map(|_| arg(1));
            let chars = chars.as_ref().and_then(|c| c.text());
            let (l, r) = match func {
                Function::Ltrim => (true, false),
                Function::Rtrim => (false, true),
                _ => (true, true),
            };
            text_fn(&|t| Val::Str(trim_with(t, chars.as_deref(), l, r)))
        }
        Function::IsValidIp => Val::Bool(ip_of(&arg(0)).is_some()),
        Function::IsValidIpV4 => Val::Bool(ip_of(&arg(0)).is_some_and(|ip| ip.is_ipv4())),
        Function::IsValidIpV6 => Val::Bool(ip_of(&arg(0)).is_some_and(|ip| ip.is_ipv6())),
        Function::Abs => num_fn(&|n| match n {
            Num::I(i) => i
                .checked_abs()
                .map_or(Val::Float((i as f64).abs()), Val::Int),
            Num::F(f) => Val::Float(f.abs()),
        }),
        Function::Ceil => num_fn(&|n| match n {
            Num::I(i) => Val::Int(i),
            Num::F(f) => int_or_float(f.ceil()),
        }),
        Function::Floor => num_fn(&|n| match n {
            Num::I(i) => Val::Int(i),
            Num::F(f) => int_or_float(f.floor()),
        }),
        Function::Log => num_fn(&|n| {
            let f = n.f();
            if f > 0.0 {
                Val::Float(f.ln())
            } else {
                Val::Null
            }
        }),
        Function::Sqrt => num_fn(&|n| {
            let f = n.f();
            if f >= 0.0 {
                Val::Float(f.sqrt())
            } else {
                Val::Null
            }
        }),
        Function::Pow => arith(BinaryOp::Pow, arg(0), arg(1)),
        Function::Greatest | Function::Least => {
            let mut best: Option<Val> = None;
            for v in args.iter().map(|a| a.eval(env)).filter(|v| !v.is_null()) {
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let o = compare(&v, b).unwrap_or(Ordering::Equal);
                        if func == Function::Greatest {
                            o == Ordering::Greater
                        } else {
                            o == Ordering::Less
                        }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            best.unwrap_or(Val::Null)
        }
        Function::FromMillis => match arg(0).num() {
            Some(Num::I(ms)) => ms.checked_mul(NANOS_PER_MILLI).map_or(Val::Null, Val::Time),
            Some(Num::F(f)) => Val::Float(f).time_ns().map_or(Val::Null, Val::Time),
            None => Val::Null,
        },
        Function::ToMillis => match arg(0).time_ns() {
            Some(t) => Val::Int(t.div_euclid(NANOS_PER_MILLI)),
            None => Val::Null,
        },
        Function::Now => Val::Time(env.now),
        // Compiled to their own variants.
        Function::Bin
        | Function::DateFloor
        | Function::DateCeil
        | Function::IsIpInSubnet
        | Function::IsIpv4InSubnet
        | Function::IsIpv6InSubnet => Val::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            format_timestamp(1_714_564_800_123_456_789),
            "2024-05-01 12:00:00.123"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn natural_order() {
        let mut v = vec![
            "a12345hfh",
            "@_",
            "2345_",
            "A",
            "111A",
            "!:",
            "5A",
            "#",
            "A9876fghj",
            "0#",
            "*%04",
            "@",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec![
                "!:",
                "#",
                "*%04",
                "0#",
                "5A",
                "111A",
                "2345_",
                "@",
                "@_",
                "A",
                "A9876fghj",
                "a12345hfh"
            ]
        );
        let mut s: Vec<SortVal> = ["b", "10", "a", "9"]
            .iter()
            .map(|x| SortVal::of(&Val::Str(x.to_string())))
            .collect();
        s.sort_by(|a, b| a.cmp_asc(b));
        assert_eq!(
            s,
            vec![
                SortVal::Text("a".into()),
                SortVal::Text("b".into()),
                SortVal::Int(9),
                SortVal::Int(10)
            ]
        );
    }

    #[test]
    fn comparisons_follow_logs_insights() {
        let s = |x: &str| Val::Str(x.into());
        assert_eq!(compare(&Val::Int(403), &s("403")), Some(Ordering::Equal));
        assert_eq!(compare(&s("403"), &Val::Int(403)), Some(Ordering::Equal));
        assert_eq!(compare(&s("9"), &s("10")), Some(Ordering::Less));
        assert_eq!(compare(&s("b"), &s("a")), Some(Ordering::Greater));
        assert_eq!(compare(&Val::Null, &Val::Null), None);
        assert_eq!(
            compare(&Val::Float(2.5), &Val::Int(2)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&Val::Time(5_000_000), &Val::Int(5)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(&Val::Time(0), &s("1970-01-01T00:00:00Z")),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn arithmetic() {
        assert_eq!(
            arith(BinaryOp::Div, Val::Int(10), Val::Int(4)),
            Val::Float(2.5)
        );
        assert_eq!(arith(BinaryOp::Div, Val::Int(10), Val::Int(5)), Val::Int(2));
        assert_eq!(arith(BinaryOp::Div, Val::Int(1), Val::Int(0)), Val::Null);
        assert_eq!(
            arith(BinaryOp::Mod, Val::Int(i64::MIN), Val::Int(-1)),
            Val::Int(0)
        );
        assert_eq!(
            arith(BinaryOp::Div, Val::Int(i64::MIN), Val::Int(-1)),
            Val::Float(9.223372036854776e18)
        );
        assert_eq!(arith(BinaryOp::Pow, Val::Int(2), Val::Int(3)), Val::Int(8));
        assert_eq!(
            arith(BinaryOp::Add, Val::Int(i64::MAX), Val::Int(1)),
            Val::Float(9.223372036854776e18)
        );
        assert_eq!(
            arith(BinaryOp::Add, Val::Str("2".into()), Val::Int(1)),
            Val::Int(3)
        );
        assert_eq!(
            arith(BinaryOp::Add, Val::Str("x".into()), Val::Int(1)),
            Val::Null
        );
    }

    #[test]
    fn globs() {
        assert_eq!(glob_to_regex("user=*, action=*"), "user=(.*?), action=(.*)");
        assert_eq!(glob_to_regex("* [*] *"), "(.*?) \\[(.*?)\\] (.*)");
        assert_eq!(glob_to_regex("a*b"), "a(.*?)b");
    }
}
