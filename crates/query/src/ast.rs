//! The syntax tree of a query: public enums a planner can inspect and rewrite, every node with the
//! [`Span`] of the text it came from.

use quarry_model::time::{civil_from_days, days_from_civil};
use quarry_model::Value;

/// Where a node came from: byte offsets `[start, end)` into the query text, and the 1-based line and
/// column (in characters) of `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column of `start`, in characters.
    pub column: usize,
}

impl Span {
    /// The span from the start of `self` to the end of `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            end: other.end.max(self.start),
            ..self
        }
    }
}

/// A parsed query: commands applied in order, each to the output of the one before.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// The pipe-separated commands.
    pub commands: Vec<Command>,
}

impl Query {
    /// The commands in the order they run: a `limit` followed by `filter`s applies after them
    /// (AWS's published EKS queries write `sort @timestamp desc | limit 100 | filter ...` and mean
    /// the newest 100 matching events), and a `filter` right after a `sort` runs before it (it
    /// commutes, and sorting fewer rows is cheaper). Nothing else moves.
    pub fn execution_order(&self) -> Query {
        let mut cmds = self.commands.clone();
        for i in (0..cmds.len()).rev() {
            if matches!(cmds[i], Command::Limit(_)) {
                let mut j = i;
                while j + 1 < cmds.len()
                    && matches!(
                        cmds[j + 1],
                        Command::Filter(_)
                            | Command::Fields(_)
                            | Command::Display(_)
                            | Command::Parse(_)
                    )
                {
                    cmds.swap(j, j + 1);
                    j += 1;
                }
            }
        }
        for i in 0..cmds.len() {
            if matches!(cmds[i], Command::Filter(_)) {
                let mut j = i;
                while j > 0 && matches!(cmds[j - 1], Command::Sort(_)) {
                    cmds.swap(j - 1, j);
                    j -= 1;
                }
            }
        }
        Query { commands: cmds }
    }
}

/// One pipe-separated command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `fields a, b as c`: computes fields and adds them to the result columns.
    Fields(FieldsCommand),
    /// `filter expr`: keeps rows where the expression is true.
    Filter(FilterCommand),
    /// `stats agg(..) [as x], .. [by key [as k], ..]`: aggregates.
    Stats(StatsCommand),
    /// `sort key [asc|desc], ..`: orders rows (descending unless `asc`).
    Sort(SortCommand),
    /// `limit n`: keeps the first n rows.
    Limit(LimitCommand),
    /// `parse field "glob * pattern" as a, ..` or `parse field /(?<name>re)/`: extracts fields.
    Parse(ParseCommand),
    /// `dedup a, b`: keeps the first row of each combination of values.
    Dedup(DedupCommand),
    /// `display a, b`: chooses the result columns.
    Display(DisplayCommand),
    /// `unnest list into item`: one row per element of a (flattened) list.
    Unnest(UnnestCommand),
    /// `search "text"` (a Quarry extension): events whose `@message` has every word of the text, as the
    /// word index sees words (case-insensitive, IPs, paths and user names whole); answered by the index.
    Search(SearchCommand),
}

impl Command {
    /// The span of the whole command, keyword included.
    pub fn span(&self) -> Span {
        match self {
            Command::Fields(c) => c.span,
            Command::Filter(c) => c.span,
            Command::Stats(c) => c.span,
            Command::Sort(c) => c.span,
            Command::Limit(c) => c.span,
            Command::Parse(c) => c.span,
            Command::Dedup(c) => c.span,
            Command::Display(c) => c.span,
            Command::Unnest(c) => c.span,
            Command::Search(c) => c.span,
        }
    }

    /// The command's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::Fields(_) => "fields",
            Command::Filter(_) => "filter",
            Command::Stats(_) => "stats",
            Command::Sort(_) => "sort",
            Command::Limit(_) => "limit",
            Command::Parse(_) => "parse",
            Command::Dedup(_) => "dedup",
            Command::Display(_) => "display",
            Command::Unnest(_) => "unnest",
            Command::Search(_) => "search",
        }
    }

    /// Every expression directly held by the command, in order.
    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            Command::Fields(c) => c.items.iter().map(|p| &p.expr).collect(),
            Command::Display(c) => c.items.iter().map(|p| &p.expr).collect(),
            Command::Filter(c) => vec![&c.expr],
            Command::Stats(c) => c.items.iter().chain(&c.by).map(|p| &p.expr).collect(),
            Command::Sort(c) => c.keys.iter().map(|k| &k.expr).collect(),
            Command::Parse(c) => vec![&c.source],
            Command::Dedup(c) => c.keys.iter().collect(),
            Command::Limit(_) | Command::Unnest(_) | Command::Search(_) => Vec::new(),
        }
    }
}

/// An expression with the name it gets as a result column.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// The expression.
    pub expr: Expr,
    /// The `as` alias, if given.
    pub alias: Option<String>,
    /// The column name: the alias, else the field name for a plain field, else the expression's text.
    pub name: String,
    /// Span of the expression and its alias.
    pub span: Span,
}

/// `fields`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldsCommand {
    /// The fields, in order.
    pub items: Vec<Projection>,
    /// Span of the command.
    pub span: Span,
}

/// `display`.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayCommand {
    /// The columns, in order.
    pub items: Vec<Projection>,
    /// Span of the command.
    pub span: Span,
}

/// `filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterCommand {
    /// The condition.
    pub expr: Expr,
    /// Span of the command.
    pub span: Span,
}

/// `stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsCommand {
    /// The statistics: expressions containing aggregates ([`ExprKind::Agg`]), or arithmetic over
    /// earlier items' names and group keys.
    pub items: Vec<Projection>,
    /// The `by` group keys (possibly `bin(5m)`); empty for one overall group.
    pub by: Vec<Projection>,
    /// Span of the command.
    pub span: Span,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first (the default, as in Logs Insights).
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// What to sort by.
    pub expr: Expr,
    /// Direction.
    pub order: Order,
    /// Span of the key and its direction.
    pub span: Span,
}

/// `sort`.
#[derive(Debug, Clone, PartialEq)]
pub struct SortCommand {
    /// Keys, most significant first.
    pub keys: Vec<SortKey>,
    /// Span of the command.
    pub span: Span,
}

/// `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitCommand {
    /// Number of rows to keep (at least 1).
    pub count: u64,
    /// Span of the command.
    pub span: Span,
}

/// The pattern of a `parse` command.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsePattern {
    /// A glob: `*` captures text, everything else matches literally; `names` get the captures in order.
    Glob {
        /// The glob text (without quotes).
        pattern: String,
        /// One field name per `*`.
        names: Vec<String>,
    },
    /// A regular expression whose named groups `(?<name>...)` become fields.
    Regex {
        /// The regex text (without slashes).
        pattern: String,
        /// The named groups, in order.
        names: Vec<String>,
    },
}

impl ParsePattern {
    /// The names of the fields the pattern creates.
    pub fn names(&self) -> &[String] {
        match self {
            ParsePattern::Glob { names, .. } | ParsePattern::Regex { names, .. } => names,
        }
    }
}

/// `parse`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseCommand {
    /// The text to parse (`@message` when omitted).
    pub source: Expr,
    /// The pattern.
    pub pattern: ParsePattern,
    /// Span of the command.
    pub span: Span,
}

/// `dedup`.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupCommand {
    /// The values whose combination must be unique.
    pub keys: Vec<Expr>,
    /// Span of the command.
    pub span: Span,
}

/// `unnest field into alias`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnnestCommand {
    /// The list field (its elements are the flattened fields `field.0`, `field.1`, ...).
    pub field: String,
    /// The name each element gets.
    pub alias: String,
    /// Span of the command.
    pub span: Span,
}

/// `search "text"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchCommand {
    /// The text as written.
    pub text: String,
    /// Its words, lower-cased, as the index holds them.
    pub words: Vec<String>,
    /// Span of the command.
    pub span: Span,
}

/// An expression and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Its text in the query.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A constant.
    Literal(Literal),
    /// A time period such as `5m`; only as the period argument of `bin`, `datefloor`, `dateceil`.
    Period(Period),
    /// A field reference (dotted path, `@timestamp`, or a backquoted name), without backquotes.
    Field(String),
    /// Unary minus.
    Neg(Box<Expr>),
    /// Logical not.
    Not(Box<Expr>),
    /// Conjunction of two or more terms.
    And(Vec<Expr>),
    /// Disjunction of two or more terms.
    Or(Vec<Expr>),
    /// Arithmetic or comparison.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `expr [not] in [a, b, ...]`.
    In {
        /// The value tested.
        expr: Box<Expr>,
        /// The candidates.
        list: Vec<Expr>,
        /// True for `not in`.
        negated: bool,
    },
    /// `expr [not] like "substring"`, `expr like /regex/`, `expr =~ /regex/`.
    Like {
        /// The value tested (as text).
        expr: Box<Expr>,
        /// Substring or regex.
        pattern: Pattern,
        /// True for `not like`.
        negated: bool,
    },
    /// A scalar function call.
    Call {
        /// The function.
        func: Function,
        /// Its arguments (a period argument is an [`ExprKind::Period`]).
        args: Vec<Expr>,
    },
    /// An aggregate function call (only inside `stats`).
    Agg {
        /// The aggregate.
        func: AggFunc,
        /// Its argument; `None` for `count(*)`.
        arg: Option<Box<Expr>>,
    },
}

impl Expr {
    /// Calls `f` on this expression and every expression inside it, parents first.
    pub fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Period(_) | ExprKind::Field(_) => {}
            ExprKind::Neg(e) | ExprKind::Not(e) => e.visit(f),
            ExprKind::And(v) | ExprKind::Or(v) => v.iter().for_each(|e| e.visit(f)),
            ExprKind::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            ExprKind::In { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
            ExprKind::Like { expr, .. } => expr.visit(f),
            ExprKind::Call { args, .. } => args.iter().for_each(|e| e.visit(f)),
            ExprKind::Agg { arg, .. } => {
                if let Some(a) = arg {
                    a.visit(f)
                }
            }
        }
    }

    /// The names of all fields the expression reads (`bin()` reads `@timestamp`).
    pub fn field_refs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |e| match &e.kind {
            ExprKind::Field(name) => out.push(name.as_str()),
            ExprKind::Call {
                func: Function::Bin,
                ..
            } => out.push("@timestamp"),
            ExprKind::Agg {
                func: AggFunc::Earliest | AggFunc::Latest,
                ..
            } => out.push("@timestamp"),
            _ => {}
        });
        out
    }

    /// True if an aggregate function occurs in the expression.
    pub fn has_agg(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e.kind, ExprKind::Agg { .. }));
        found
    }
}

/// A constant value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A quoted string, escapes resolved.
    Str(String),
}

impl Literal {
    /// The literal as a model value.
    pub fn to_value(&self) -> Value {
        match self {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Float(f) => Value::Float(*f),
            Literal::Str(s) => Value::Str(s.clone()),
        }
    }
}

/// Substring or regular-expression matching.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// Case-sensitive substring (`like "text"`).
    Substring(String),
    /// Regular expression, unanchored (`like /re/`, `=~ /re/`); `(?i)` makes it case-insensitive.
    Regex(String),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl BinaryOp {
    /// True for `= != < <= > >=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

/// Units of a time period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// `ms`
    Millisecond,
    /// `s`
    Second,
    /// `m`
    Minute,
    /// `h`
    Hour,
    /// `d`
    Day,
    /// `w`
    Week,
    /// `mo` (calendar months)
    Month,
    /// `q` (calendar quarters)
    Quarter,
    /// `y` (calendar years)
    Year,
}

impl TimeUnit {
    /// The unit for a suffix such as `m` or `mo`.
    pub fn from_suffix(s: &str) -> Option<TimeUnit> {
        Some(match s {
            "ms" => TimeUnit::Millisecond,
            "s" => TimeUnit::Second,
            "m" => TimeUnit::Minute,
            "h" => TimeUnit::Hour,
            "d" => TimeUnit::Day,
            "w" => TimeUnit::Week,
            "mo" => TimeUnit::Month,
            "q" => TimeUnit::Quarter,
            "y" => TimeUnit::Year,
            _ => return None,
        })
    }

    /// The suffix written in queries.
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Millisecond => "ms",
            TimeUnit::Second => "s",
            TimeUnit::Minute => "m",
            TimeUnit::Hour => "h",
            TimeUnit::Day => "d",
            TimeUnit::Week => "w",
            TimeUnit::Month => "mo",
            TimeUnit::Quarter => "q",
            TimeUnit::Year => "y",
        }
    }

    fn nanos(self) -> Option<i64> {
        const MS: i64 = 1_000_000;
        Some(match self {
            TimeUnit::Millisecond => MS,
            TimeUnit::Second => 1000 * MS,
            TimeUnit::Minute => 60_000 * MS,
            TimeUnit::Hour => 3_600_000 * MS,
            TimeUnit::Day => 86_400_000 * MS,
            TimeUnit::Week => 7 * 86_400_000 * MS,
            TimeUnit::Month | TimeUnit::Quarter | TimeUnit::Year => return None,
        })
    }

    fn months(self) -> Option<i64> {
        match self {
            TimeUnit::Month => Some(1),
            TimeUnit::Quarter => Some(3),
            TimeUnit::Year => Some(12),
            _ => None,
        }
    }
}

/// A time period such as `5m`: a positive amount of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    /// How many units (at least 1).
    pub amount: u64,
    /// The unit.
    pub unit: TimeUnit,
}

impl Period {
    /// The period's length in nanoseconds, for fixed-length units (not `mo`, `q`, `y`); `None` also on
    /// overflow.
    pub fn fixed_nanos(&self) -> Option<i64> {
        i64::try_from(self.amount)
            .ok()?
            .checked_mul(self.unit.nanos()?)
    }

    fn months(&self) -> Option<i64> {
        i64::try_from(self.amount)
            .ok()?
            .checked_mul(self.unit.months()?)
    }

    /// True if the period can be applied (positive and not absurdly long).
    pub fn is_valid(&self) -> bool {
        self.amount > 0
            && (self.fixed_nanos().is_some() || self.months().is_some_and(|m| m <= 12 * 100_000))
    }

    /// The start of the period containing `ns` (UTC nanoseconds): fixed units are aligned to the Unix
    /// epoch, months/quarters/years to calendar boundaries.
    pub fn floor(&self, ns: i64) -> Option<i64> {
        if let Some(p) = self.fixed_nanos() {
            return ns.checked_sub(ns.rem_euclid(p));
        }
        let months = self.months()?;
        let day = ns.div_euclid(86_400 * 1_000_000_000);
        let (y, m, _) = civil_from_days(day);
        let index = (y - 1970).checked_mul(12)?.checked_add(m as i64 - 1)?;
        let start = index - index.rem_euclid(months);
        let (sy, sm) = (1970 + start.div_euclid(12), start.rem_euclid(12) as u32 + 1);
        days_from_civil(sy, sm, 1).checked_mul(86_400 * 1_000_000_000)
    }

    /// The end of the period containing `ns`, or `ns` itself when it is on a boundary.
    pub fn ceil(&self, ns: i64) -> Option<i64> {
        let start = self.floor(ns)?;
        if start == ns {
            return Some(ns);
        }
        if let Some(p) = self.fixed_nanos() {
            return start.checked_add(p);
        }
        let months = self.months()?;
        let day = start.div_euclid(86_400 * 1_000_000_000);
        let (y, m, _) = civil_from_days(day);
        let index = (y - 1970) * 12 + (m as i64 - 1) + months;
        let (ny, nm) = (1970 + index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
        days_from_civil(ny, nm, 1).checked_mul(86_400 * 1_000_000_000)
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

/// Aggregate functions of `stats`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFunc {
    /// `count(*)` (rows) or `count(expr)` (rows where expr is not null).
    Count,
    /// `count_distinct(expr)`: number of distinct non-null values (exact).
    CountDistinct,
    /// `sum(expr)`.
    Sum,
    /// `avg(expr)`.
    Avg,
    /// `min(expr)`.
    Min,
    /// `max(expr)`.
    Max,
    /// `stddev(expr)`: sample standard deviation.
    Stddev,
    /// `pct(expr, p)`: the value below which p percent of the values lie (exact, nearest rank).
    Pct(f64),
    /// `median(expr)`: `pct(expr, 50)`.
    Median,
    /// `earliest(expr)`: the value from the row with the earliest `@timestamp`.
    Earliest,
    /// `latest(expr)`: the value from the row with the latest `@timestamp`.
    Latest,
    /// `sortsFirst(expr)`: the value that sorts first.
    SortsFirst,
    /// `sortsLast(expr)`: the value that sorts last.
    SortsLast,
}

impl AggFunc {
    /// The aggregate with this (case-insensitive) name; `pct` comes back with percentile 0 until its
    /// second argument is read.
    pub fn from_name(name: &str) -> Option<AggFunc> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "count" => AggFunc::Count,
            "count_distinct" => AggFunc::CountDistinct,
            "sum" => AggFunc::Sum,
            "avg" => AggFunc::Avg,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "stddev" => AggFunc::Stddev,
            "pct" => AggFunc::Pct(0.0),
            "median" => AggFunc::Median,
            "earliest" => AggFunc::Earliest,
            "latest" => AggFunc::Latest,
            "sortsfirst" => AggFunc::SortsFirst,
            "sortslast" => AggFunc::SortsLast,
            _ => return None,
        })
    }

    /// The function's name as documented.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::CountDistinct => "count_distinct",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Stddev => "stddev",
            AggFunc::Pct(_) => "pct",
            AggFunc::Median => "median",
            AggFunc::Earliest => "earliest",
            AggFunc::Latest => "latest",
            AggFunc::SortsFirst => "sortsFirst",
            AggFunc::SortsLast => "sortsLast",
        }
    }
}

/// Scalar functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `ispresent(f)`: the field has a (non-null) value.
    IsPresent,
    /// `isempty(f)`: missing or empty string.
    IsEmpty,
    /// `isblank(f)`: missing, empty, or only white space.
    IsBlank,
    /// `coalesce(a, b, ...)`: first non-null.
    Coalesce,
    /// `strlen(s)`: length in Unicode code points.
    Strlen,
    /// `tolower(s)`.
    ToLower,
    /// `toupper(s)`.
    ToUpper,
    /// `concat(a, b, ...)`.
    Concat,
    /// `substr(s, start[, length])`, 0-based.
    Substr,
    /// `replace(s, from, to)`: every occurrence.
    Replace,
    /// `strcontains(s, sub)`: 1 or 0.
    StrContains,
    /// `trim(s[, chars])`.
    Trim,
    /// `ltrim(s[, chars])`.
    Ltrim,
    /// `rtrim(s[, chars])`.
    Rtrim,
    /// `isValidIp(s)`.
    IsValidIp,
    /// `isValidIpV4(s)`.
    IsValidIpV4,
    /// `isValidIpV6(s)`.
    IsValidIpV6,
    /// `isIpInSubnet(ip, "cidr")`, v4 or v6.
    IsIpInSubnet,
    /// `isIpv4InSubnet(ip, "cidr")`.
    IsIpv4InSubnet,
    /// `isIpv6InSubnet(ip, "cidr")`.
    IsIpv6InSubnet,
    /// `abs(n)`.
    Abs,
    /// `ceil(n)`.
    Ceil,
    /// `floor(n)`.
    Floor,
    /// `greatest(a, b, ...)`.
    Greatest,
    /// `least(a, b, ...)`.
    Least,
    /// `log(n)`: natural logarithm.
    Log,
    /// `sqrt(n)`.
    Sqrt,
    /// `pow(a, b)`.
    Pow,
    /// `bin(period)`: `@timestamp` rounded down to the period.
    Bin,
    /// `datefloor(t, period)`.
    DateFloor,
    /// `dateceil(t, period)`.
    DateCeil,
    /// `fromMillis(n)`: milliseconds since the epoch to a timestamp.
    FromMillis,
    /// `toMillis(t)`: a timestamp to milliseconds since the epoch.
    ToMillis,
    /// `now()`: the time the query started.
    Now,
}

impl Function {
    /// Every scalar function.
    pub const ALL: [Function; 34] = [
        Function::IsPresent,
        Function::IsEmpty,
        Function::IsBlank,
        Function::Coalesce,
        Function::Strlen,
        Function::ToLower,
        Function::ToUpper,
        Function::Concat,
        Function::Substr,
        Function::Replace,
        Function::StrContains,
        Function::Trim,
        Function::Ltrim,
        Function::Rtrim,
        Function::IsValidIp,
        Function::IsValidIpV4,
        Function::IsValidIpV6,
        Function::IsIpInSubnet,
        Function::IsIpv4InSubnet,
        Function::IsIpv6InSubnet,
        Function::Abs,
        Function::Ceil,
        Function::Floor,
        Function::Greatest,
        Function::Least,
        Function::Log,
        Function::Sqrt,
        Function::Pow,
        Function::Bin,
        Function::DateFloor,
        Function::DateCeil,
        Function::FromMillis,
        Function::ToMillis,
        Function::Now,
    ];

    /// The function's name as documented (names are matched case-insensitively).
    pub fn name(self) -> &'static str {
        match self {
            Function::IsPresent => "ispresent",
            Function::IsEmpty => "isempty",
            Function::IsBlank => "isblank",
            Function::Coalesce => "coalesce",
            Function::Strlen => "strlen",
            Function::ToLower => "tolower",
            Function::ToUpper => "toupper",
            Function::Concat => "concat",
            Function::Substr => "substr",
            Function::Replace => "replace",
            Function::StrContains => "strcontains",
            Function::Trim => "trim",
            Function::Ltrim => "ltrim",
            Function::Rtrim => "rtrim",
            Function::IsValidIp => "isValidIp",
            Function::IsValidIpV4 => "isValidIpV4",
            Function::IsValidIpV6 => "isValidIpV6",
            Function::IsIpInSubnet => "isIpInSubnet",
            Function::IsIpv4InSubnet => "isIpv4InSubnet",
            Function::IsIpv6InSubnet => "isIpv6InSubnet",
            Function::Abs => "abs",
            Function::Ceil => "ceil",
            Function::Floor => "floor",
            Function::Greatest => "greatest",
            Function::Least => "least",
            Function::Log => "log",
            Function::Sqrt => "sqrt",
            Function::Pow => "pow",
            Function::Bin => "bin",
            Function::DateFloor => "datefloor",
            Function::DateCeil => "dateceil",
            Function::FromMillis => "fromMillis",
            Function::ToMillis => "toMillis",
            Function::Now => "now",
        }
    }

    /// The function with this name, ignoring case.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Allowed argument counts: (minimum, maximum; `None` for any number).
    pub fn arity(self) -> (usize, Option<usize>) {
        use Function::*;
        match self {
            Now => (0, Some(0)),
            IsPresent | IsEmpty | IsBlank | Strlen | ToLower | ToUpper | IsValidIp
            | IsValidIpV4 | IsValidIpV6 | Abs | Ceil | Floor | Log | Sqrt | Bin | FromMillis
            | ToMillis => (1, Some(1)),
            Trim | Ltrim | Rtrim => (1, Some(2)),
            Substr => (2, Some(3)),
            StrContains | IsIpInSubnet | IsIpv4InSubnet | IsIpv6InSubnet | Pow | DateFloor
            | DateCeil => (2, Some(2)),
            Replace => (3, Some(3)),
            Coalesce | Concat | Greatest | Least => (1, None),
        }
    }

    /// The index of the argument that must be a time period, if any.
    pub fn period_arg(self) -> Option<usize> {
        match self {
            Function::Bin => Some(0),
            Function::DateFloor | Function::DateCeil => Some(1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_model::time::parse_rfc3339;

    fn p(amount: u64, unit: TimeUnit) -> Period {
        Period { amount, unit }
    }

    #[test]
    fn period_floor_and_ceil() {
        let t = parse_rfc3339("2024-05-17T13:47:12.5Z").unwrap();
        let at = |s: &str| parse_rfc3339(s).unwrap();
        assert_eq!(
            p(5, TimeUnit::Minute).floor(t),
            Some(at("2024-05-17T13:45:00Z"))
        );
        assert_eq!(
            p(5, TimeUnit::Minute).ceil(t),
            Some(at("2024-05-17T13:50:00Z"))
        );
        assert_eq!(
            p(1, TimeUnit::Hour).ceil(at("2024-05-17T13:00:00Z")),
            Some(at("2024-05-17T13:00:00Z"))
        );
        assert_eq!(
            p(1, TimeUnit::Month).floor(t),
            Some(at("2024-05-01T00:00:00Z"))
        );
        assert_eq!(
            p(2, TimeUnit::Month).floor(t),
            Some(at("2024-05-01T00:00:00Z"))
        );
        assert_eq!(
            p(1, TimeUnit::Quarter).floor(t),
            Some(at("2024-04-01T00:00:00Z"))
        );
        assert_eq!(
            p(1, TimeUnit::Quarter).ceil(t),
            Some(at("2024-07-01T00:00:00Z"))
        );
        assert_eq!(
            p(1, TimeUnit::Year).ceil(t),
            Some(at("2025-01-01T00:00:00Z"))
        );
        assert_eq!(
            p(1, TimeUnit::Month).floor(at("1969-12-31T23:00:00Z")),
            Some(at("1969-12-01T00:00:00Z"))
        );
        assert_eq!(p(1, TimeUnit::Day).floor(-1), Some(-86_400_000_000_000));
        assert!(p(u64::MAX, TimeUnit::Week).fixed_nanos().is_none());
        assert!(!p(u64::MAX, TimeUnit::Week).is_valid());
        // Extremes give None rather than overflowing.
        assert_eq!(p(1, TimeUnit::Week).floor(i64::MIN), None);
        assert_eq!(p(1, TimeUnit::Year).ceil(i64::MAX), None);
    }

    #[test]
    fn execution_order_defers_limit_and_hoists_filters() {
        let q = crate::parse_query(
            "fields a | sort @timestamp desc | limit 100 | filter x = 1 | stats count(*) by a | limit 5 | sort a",
        )
        .unwrap();
        let order: Vec<&str> = q
            .execution_order()
            .commands
            .iter()
            .map(|c| c.keyword())
            .collect();
        assert_eq!(
            order,
            ["fields", "filter", "sort", "limit", "stats", "limit", "sort"]
        );
    }
}
