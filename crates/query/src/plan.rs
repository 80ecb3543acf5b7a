//! Planning: which part of a query the index answers before any event is read.
//!
//! The leading `filter` and `search` commands (in [`Query::execution_order`]) become a [`Push`] tree.
//! Its leaves are the maximal sub-expressions of a filter that read a single field: each is evaluated
//! exactly against that field's index terms or columns, with the pipeline's own comparison rules (numeric
//! strings equal numbers, nulls compare false). `@message like "..."` and `search` become word lookups in
//! the block index, which give a superset that the pipeline narrows. Anything else is left to the
//! pipeline, which always evaluates the full filters again, so the index only ever removes events that
//! cannot match.

use crate::ast::{BinaryOp, Command, Expr, ExprKind, Literal, Pattern, Query};
use crate::error::QueryError;
use crate::eval::{CExpr, Compiler, Interner, Val};

/// A predicate over the events of a segment.
pub(crate) enum Push {
    /// No restriction.
    All,
    /// Leaf `i` of [`Plan::leaves`].
    Leaf(usize),
    /// Events whose block holds all these words in its messages (a superset).
    Words(Vec<String>),
    /// All of.
    And(Vec<Push>),
    /// Any of.
    Or(Vec<Push>),
    /// Not (only applied when the inner set is exact).
    Not(Box<Push>),
}

/// What a leaf reads.
pub(crate) enum Target {
    /// A structured field path.
    Field(String),
    /// `@timestamp`.
    Time,
    /// `@source` (the partition's kind).
    Source,
}

/// A single-field predicate.
pub(crate) struct Leaf {
    /// What it reads.
    pub target: Target,
    /// The field's name in the compiled expression.
    pub name: crate::eval::Name,
    /// The compiled predicate.
    pub expr: CExpr,
    /// For `f = lit` and `f in [lits]`: the literals, so index terms can answer.
    pub eq_lits: Option<Vec<Val>>,
    /// For `f <op> number`: a comparison a column scan can do without evaluating the expression.
    pub num_cmp: Option<(BinaryOp, f64)>,
}

/// The index part of a query.
pub(crate) struct Plan {
    /// The pushed-down predicate.
    pub push: Push,
    /// Its leaves.
    pub leaves: Vec<Leaf>,
}

/// Names that are not structured fields stored in the index.
pub(crate) fn is_builtin(name: &str) -> bool {
    name.starts_with('@') && name != "@parseError"
}

impl Plan {
    /// Plans the leading filters and searches of a query (given in execution order).
    pub fn new(q: &Query) -> Result<Plan, QueryError> {
        let mut plan = Plan {
            push: Push::All,
            leaves: Vec::new(),
        };
        let mut names = Interner::default();
        let mut parts = Vec::new();
        for cmd in &q.commands {
            match cmd {
                Command::Filter(f) => parts.push(plan.push_of(&f.expr, &mut names)?),
                Command::Search(s) => parts.push(Push::Words(s.words.clone())),
                Command::Fields(f) if f.items.iter().all(|p| plain_field(&p.expr, &p.name)) => {}
                Command::Display(_) | Command::Sort(_) => {}
                _ => break,
            }
        }
        // With no filter at all, `And([])` keeps every event and is exact.
        plan.push = match parts.len() {
            1 => parts.pop().unwrap_or(Push::All),
            _ => Push::And(parts),
        };
        Ok(plan)
    }

    fn push_of(&mut self, e: &Expr, names: &mut Interner) -> Result<Push, QueryError> {
        Ok(match &e.kind {
            ExprKind::And(v) => Push::And(
                v.iter()
                    .map(|x| self.push_of(x, names))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Or(v) => Push::Or(
                v.iter()
                    .map(|x| self.push_of(x, names))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Not(x) => Push::Not(Box::new(self.push_of(x, names)?)),
            _ => {
                let mut refs = e.field_refs();
                refs.sort_unstable();
                refs.dedup();
                match refs.as_slice() {
                    ["@message"] => words_of_like(e),
                    [name] if !is_builtin(name) || *name == "@timestamp" || *name == "@source" => {
                        let target = match *name {
                            "@timestamp" => Target::Time,
                            "@source" => Target::Source,
                            path => Target::Field(path.to_string()),
                        };
                        let name = names.name(name);
                        let expr = Compiler { names, aggs: None }.compile(e)?;
                        self.leaves.push(Leaf {
                            target,
                            name,
                            eq_lits: eq_literals(e),
                            num_cmp: numeric_comparison(e),
                            expr,
                        });
                        Push::Leaf(self.leaves.len() - 1)
                    }
                    _ => Push::All,
                }
            }
        })
    }
}

fn plain_field(e: &Expr, name: &str) -> bool {
    matches!(&e.kind, ExprKind::Field(f) if f == name)
}

/// `@message like "text"`: the words every matching message must contain.
fn words_of_like(e: &Expr) -> Push {
    if let ExprKind::Like {
        expr,
        pattern: Pattern::Substring(s),
        negated: false,
    } = &e.kind
    {
        if matches!(&expr.kind, ExprKind::Field(f) if f == "@message") {
            let words = quarry_store::tokenizer::guaranteed_tokens(s);
            if !words.is_empty() {
                return Push::Words(words);
            }
        }
    }
    Push::All
}

fn literal(e: &Expr) -> Option<Val> {
    match &e.kind {
        ExprKind::Literal(l) => Some(match l {
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Int(i) => Val::Int(*i),
            Literal::Float(f) => Val::Float(*f),
            Literal::Str(s) => Val::Str(s.clone()),
        }),
        _ => None,
    }
}

fn is_field(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Field(_))
}

/// The literals of `field = lit`, `lit = field` and `field in [lits]`.
fn eq_literals(e: &Expr) -> Option<Vec<Val>> {
    match &e.kind {
        ExprKind::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } => match (is_field(left), is_field(right)) {
            (true, false) => Some(vec![literal(right)?]),
            (false, true) => Some(vec![literal(left)?]),
            _ => None,
        },
        ExprKind::In {
            expr,
            list,
            negated: false,
        } if is_field(expr) => list.iter().map(literal).collect(),
        _ => None,
    }
}

/// `field <op> number` (or mirrored), for a direct numeric column scan.
fn numeric_comparison(e: &Expr) -> Option<(BinaryOp, f64)> {
    let ExprKind::Binary { op, left, right } = &e.kind else {
        return None;
    };
    if !matches!(
        op,
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
    ) {
        return None;
    }
    let num = |x: &Expr| match literal(x)? {
        Val::Int(i) => Some(i as f64),
        Val::Float(f) if f.is_finite() => Some(f),
        _ => None,
    };
    if is_field(left) {
        Some((*op, num(right)?))
    } else if is_field(right) {
        let mirrored = match op {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::Le => BinaryOp::Ge,
            BinaryOp::Gt => BinaryOp::Lt,
            _ => BinaryOp::Le,
        };
        Some((mirrored, num(left)?))
    } else {
        None
    }
}
