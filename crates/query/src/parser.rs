//! Recursive-descent parser from tokens to the [`Query`] tree, with the semantic checks that need no
//! data: known functions and their argument counts, valid regexes, subnets and periods, aggregates only
//! in `stats`.

use crate::ast::*;
use crate::error::QueryError;
use crate::eval::{compile_regex, parse_subnet};
use crate::lexer::{Lexer, Tok, Token};

/// Deepest nesting of parentheses, `not`s and the like the parser follows.
const MAX_NESTING: u32 = 64;
/// Deepest expression tree accepted (keeps evaluation's recursion shallow).
const MAX_TREE_DEPTH: u32 = 128;

const COMMANDS: &str = "fields, filter, stats, sort, limit, parse, dedup, display, unnest, search";
const UNSUPPORTED: [&str; 11] = [
    "pattern",
    "diff",
    "anomaly",
    "lookup",
    "join",
    "filterindex",
    "source",
    "unmask",
    "head",
    "tail",
    "addtotals",
];
const KEYWORDS: [&str; 10] = [
    "and", "or", "not", "in", "like", "as", "by", "asc", "desc", "into",
];

/// Parses a query, checking everything that can be checked without data.
pub fn parse_query(text: &str) -> Result<Query, QueryError> {
    let mut p = Parser {
        src: text,
        lex: Lexer::new(text),
        peeked: None,
        nesting: 0,
        allow_agg: false,
    };
    let mut commands = Vec::new();
    if p.peek()?.tok == Tok::Eof {
        return Ok(Query { commands });
    }
    loop {
        commands.push(p.command()?);
        let t = p.next()?;
        match t.tok {
            Tok::Eof => break,
            Tok::Pipe => {
                let after = p.peek()?;
                if after.tok == Tok::Eof {
                    let span = after.span;
                    return Err(QueryError::at(
                        span,
                        "expected a command after '|', found end of query",
                    ));
                }
            }
            other => {
                return Err(QueryError::at(
                    t.span,
                    format!(
                        "expected '|' or end of query after the {} command, found {}",
                        commands.last().map(|c| c.keyword()).unwrap_or("previous"),
                        other.describe()
                    ),
                ))
            }
        }
    }
    Ok(Query { commands })
}

type PExpr = (Expr, u32);

struct Parser<'a> {
    src: &'a str,
    lex: Lexer<'a>,
    peeked: Option<Token>,
    nesting: u32,
    allow_agg: bool,
}

fn is_kw(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Ident { name, quoted: false } if name.eq_ignore_ascii_case(kw))
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token, QueryError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("filled above"))
    }

    fn next(&mut self) -> Result<Token, QueryError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    fn peek_is_kw(&mut self, kw: &str) -> Result<bool, QueryError> {
        Ok(is_kw(&self.peek()?.tok, kw))
    }

    fn peek_is(&mut self, tok: &Tok) -> Result<bool, QueryError> {
        Ok(&self.peek()?.tok == tok)
    }

    fn expected(&mut self, what: &str) -> QueryError {
        match self.peek() {
            Ok(t) => {
                let (span, found) = (t.span, t.tok.describe());
                QueryError::at(span, format!("expected {what}, found {found}"))
            }
            Err(e) => e,
        }
    }

    fn text(&self, span: Span) -> &'a str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    fn enter(&mut self, span: Span) -> Result<(), QueryError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(QueryError::at(
                span,
                format!("expression is nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn deeper(span: Span, depth: u32) -> Result<u32, QueryError> {
        if depth > MAX_TREE_DEPTH {
            return Err(QueryError::at(
                span,
                format!("expression is too deeply nested (more than {MAX_TREE_DEPTH} levels)"),
            ));
        }
        Ok(depth)
    }

    /// A regex literal whose `/` is the peeked token, checked by compiling it.
    fn regex_literal(&mut self) -> Result<(String, Span, regex::Regex), QueryError> {
        let slash = self.next()?;
        let (pattern, span) = self.lex.regex(slash.span)?;
        let re = compile_regex(&pattern).map_err(|e| QueryError::at(span, e))?;
        Ok((pattern, span, re))
    }

    fn command(&mut self) -> Result<Command, QueryError> {
        let t = self.next()?;
        let name = match &t.tok {
            Tok::Ident {
                name,
                quoted: false,
            } => name.to_ascii_lowercase(),
            other => {
                return Err(QueryError::at(
                    t.span,
                    format!(
                        "expected a command ({COMMANDS}), found {}",
                        other.describe()
                    ),
                ))
            }
        };
        let start = t.span;
        let cmd = match name.as_str() {
            "fields" => {
                let items = self.projections(false)?;
                Command::Fields(FieldsCommand {
                    span: start.to(items.last().map(|p| p.span).unwrap_or(start)),
                    items,
                })
            }
            "display" => {
                let items = self.projections(false)?;
                Command::Display(DisplayCommand {
                    span: start.to(items.last().map(|p| p.span).unwrap_or(start)),
                    items,
                })
            }
            "filter" => {
                let (expr, _) = self.expr()?;
                Command::Filter(FilterCommand {
                    span: start.to(expr.span),
                    expr,
                })
            }
            "stats" => self.stats(start)?,
            "sort" => self.sort(start)?,
            "limit" => {
                let t = self.next()?;
                match t.tok {
                    Tok::Int(n) if n > 0 => Command::Limit(LimitCommand {
                        count: n as u64,
                        span: start.to(t.span),
                    }),
                    other => {
                        return Err(QueryError::at(
                            t.span,
                            format!(
                                "expected a positive whole number after 'limit', found {}",
                                other.describe()
                            ),
                        ))
                    }
                }
            }
            "parse" => self.parse_cmd(start)?,
            "dedup" => {
                let mut keys = Vec::new();
                loop {
                    let (e, _) = self.expr()?;
                    keys.push(e);
                    if !self.peek_is(&Tok::Comma)? {
                        break;
                    }
                    self.next()?;
                }
                Command::Dedup(DedupCommand {
                    span: start.to(keys.last().map(|e| e.span).unwrap_or(start)),
                    keys,
                })
            }
            "unnest" => {
                let field = self.name("a field name after 'unnest'")?;
                if !self.peek_is_kw("into")? {
                    return Err(self.expected("'into' after the field to unnest"));
                }
                self.next()?;
                let alias_tok = self.peek()?.span;
                let alias = self.name("a name after 'into'")?;
                Command::Unnest(UnnestCommand {
                    field,
                    alias,
                    span: start.to(alias_tok),
                })
            }
            "search" => {
                let t = self.next()?;
                let Tok::Str(text) = t.tok else {
                    return Err(QueryError::at(
                        t.span,
                        format!(
                            "expected a quoted text after 'search', found {}",
                            t.tok.describe()
                        ),
                    ));
                };
                let words = quarry_store::tokenizer::tokens(&text);
                if words.is_empty() {
                    return Err(QueryError::at(
                        t.span,
                        "expected words to search for: the text has no indexed word (timestamps and punctuation are not indexed)",
                    ));
                }
                let mut uniq: Vec<String> = Vec::new();
                for w in words {
                    if !uniq.contains(&w) {
                        uniq.push(w);
                    }
                }
                Command::Search(SearchCommand {
                    text,
                    words: uniq,
                    span: start.to(t.span),
                })
            }
            other if UNSUPPORTED.contains(&other) => {
                return Err(QueryError::at(
                    start,
                    format!("command '{other}' is not supported: expected one of {COMMANDS}"),
                ))
            }
            other => {
                return Err(QueryError::at(
                    start,
                    format!("unknown command '{other}': expected one of {COMMANDS}"),
                ))
            }
        };
        Ok(cmd)
    }

    /// A name token (field or alias); keywords are accepted only in backquotes.
    fn name(&mut self, what: &str) -> Result<String, QueryError> {
        match &self.peek()?.tok {
            Tok::Ident { name, quoted }
                if *quoted || !KEYWORDS.iter().any(|k| name.eq_ignore_ascii_case(k)) =>
            {
                let name = name.clone();
                self.next()?;
                Ok(name)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn projections(&mut self, aggs: bool) -> Result<Vec<Projection>, QueryError> {
        let mut items = Vec::new();
        loop {
            items.push(self.projection(aggs)?);
            if !self.peek_is(&Tok::Comma)? {
                return Ok(items);
            }
            self.next()?;
        }
    }

    fn projection(&mut self, aggs: bool) -> Result<Projection, QueryError> {
        let saved = self.allow_agg;
        self.allow_agg = aggs;
        let parsed = self.expr();
        self.allow_agg = saved;
        let (expr, _) = parsed?;
        let mut span = expr.span;
        let alias = if self.peek_is_kw("as")? {
            self.next()?;
            let at = self.peek()?.span;
            let alias = self.name("a name after 'as'")?;
            span = span.to(at);
            Some(alias)
        } else {
            None
        };
        let name = match (&alias, &expr.kind) {
            (Some(a), _) => a.clone(),
            (None, ExprKind::Field(f)) => f.clone(),
            (None, _) => self.text(expr.span).to_string(),
        };
        Ok(Projection {
            expr,
            alias,
            name,
            span,
        })
    }

    fn stats(&mut self, start: Span) -> Result<Command, QueryError> {
        let items = self.projections(true)?;
        let mut by = Vec::new();
        if self.peek_is_kw("by")? {
            self.next()?;
            loop {
                let t = self.peek()?;
                if matches!(t.tok, Tok::Eof | Tok::Pipe | Tok::Comma) {
                    return Err(self.expected("an expression to group by after 'by'"));
                }
                by.push(self.projection(false)?);
                if !self.peek_is(&Tok::Comma)? {
                    break;
                }
                self.next()?;
            }
        }
        let mut known: Vec<&str> = by.iter().map(|p| p.name.as_str()).collect();
        for item in &items {
            let mut free = Vec::new();
            free_fields(&item.expr, &mut free);
            if !item.expr.has_agg() && free.is_empty() {
                return Err(QueryError::at(
                    item.expr.span,
                    format!(
                        "expected an aggregate function such as count(*) or sum(field) in stats, found {}",
                        self.text(item.expr.span)
                    ),
                ));
            }
            if let Some(f) = free.iter().find(|f| !known.contains(&f.0.as_str())) {
                return Err(QueryError::at(
                    f.1,
                    format!(
                        "field '{}' in stats must be inside an aggregate function such as count({0}), or name a 'by' key or an earlier statistic",
                        f.0
                    ),
                ));
            }
            known.push(item.name.as_str());
        }
        let last = by.last().or(items.last()).map(|p| p.span).unwrap_or(start);
        Ok(Command::Stats(StatsCommand {
            items,
            by,
            span: start.to(last),
        }))
    }

    fn sort(&mut self, start: Span) -> Result<Command, QueryError> {
        let mut keys = Vec::new();
        loop {
            let (expr, _) = self.expr()?;
            let mut span = expr.span;
            let order = if self.peek_is_kw("asc")? {
                span = span.to(self.next()?.span);
                Order::Asc
            } else if self.peek_is_kw("desc")? {
                span = span.to(self.next()?.span);
                Order::Desc
            } else {
                Order::Desc
            };
            keys.push(SortKey { expr, order, span });
            if !self.peek_is(&Tok::Comma)? {
                break;
            }
            self.next()?;
        }
        Ok(Command::Sort(SortCommand {
            span: start.to(keys.last().map(|k| k.span).unwrap_or(start)),
            keys,
        }))
    }

    fn parse_cmd(&mut self, start: Span) -> Result<Command, QueryError> {
        let source = if matches!(self.peek()?.tok, Tok::Str(_) | Tok::Slash) {
            Expr {
                kind: ExprKind::Field("@message".into()),
                span: start,
            }
        } else {
            self.unary()?.0
        };
        let t = self.peek()?.clone();
        let (pattern, end) = match t.tok {
            Tok::Str(glob) => {
                self.next()?;
                let wildcards = glob.matches('*').count();
                if wildcards == 0 {
                    return Err(QueryError::at(
                        t.span,
                        "expected at least one * in the glob pattern to capture text",
                    ));
                }
                if !self.peek_is_kw("as")? {
                    return Err(self.expected(&format!(
                        "'as' and {wildcards} field name(s) after the glob pattern"
                    )));
                }
                self.next()?;
                let mut names = Vec::new();
                let end = loop {
                    let at = self.peek()?.span;
                    names.push(self.name("a field name to receive a * capture")?);
                    if !self.peek_is(&Tok::Comma)? {
                        break at;
                    }
                    self.next()?;
                };
                if names.len() != wildcards {
                    return Err(QueryError::at(
                        t.span,
                        format!(
                            "the glob pattern has {wildcards} '*' but {} name(s) follow 'as': expected one name per '*'",
                            names.len()
                        ),
                    ));
                }
                (
                    ParsePattern::Glob {
                        pattern: glob,
                        names,
                    },
                    end,
                )
            }
            Tok::Slash => {
                let (pattern, span, re) = self.regex_literal()?;
                let names: Vec<String> = re.capture_names().flatten().map(str::to_string).collect();
                if names.is_empty() {
                    return Err(QueryError::at(
                        span,
                        "expected a named group such as (?<user>\\S+) in the regular expression: each named group becomes a field",
                    ));
                }
                if self.peek_is_kw("as")? {
                    return Err(self.expected(
                        "'|' or end of query (a regex parse names its fields with (?<name>...) groups, not 'as')",
                    ));
                }
                (ParsePattern::Regex { pattern, names }, span)
            }
            other => {
                return Err(QueryError::at(
                    t.span,
                    format!(
                        "expected a \"glob * pattern\" or a /regex/ to parse with, found {}",
                        other.describe()
                    ),
                ))
            }
        };
        Ok(Command::Parse(ParseCommand {
            source,
            pattern,
            span: start.to(end),
        }))
    }

    fn expr(&mut self) -> Result<PExpr, QueryError> {
        let span = self.peek()?.span;
        self.enter(span)?;
        let r = self.or();
        self.leave();
        r
    }

    fn or(&mut self) -> Result<PExpr, QueryError> {
        self.joined("or", Self::and, ExprKind::Or)
    }

    fn and(&mut self) -> Result<PExpr, QueryError> {
        self.joined("and", Self::not, ExprKind::And)
    }

    /// `term (kw term)*`, flattened into one `And`/`Or` node when there is more than one term.
    fn joined(
        &mut self,
        kw: &str,
        term: fn(&mut Self) -> Result<PExpr, QueryError>,
        node: fn(Vec<Expr>) -> ExprKind,
    ) -> Result<PExpr, QueryError> {
        let (first, mut depth) = term(self)?;
        if !self.peek_is_kw(kw)? {
            return Ok((first, depth));
        }
        let mut terms = vec![first];
        while self.peek_is_kw(kw)? {
            self.next()?;
            let (e, d) = term(self)?;
            depth = depth.max(d);
            terms.push(e);
        }
        let span = terms[0].span.to(terms[terms.len() - 1].span);
        let depth = Self::deeper(span, depth + 1)?;
        Ok((
            Expr {
                kind: node(terms),
                span,
            },
            depth,
        ))
    }

    fn not(&mut self) -> Result<PExpr, QueryError> {
        if !self.peek_is_kw("not")? {
            return self.cmp();
        }
        let t = self.next()?;
        self.enter(t.span)?;
        let inner = self.not();
        self.leave();
        let (e, d) = inner?;
        let span = t.span.to(e.span);
        Ok((
            Expr {
                kind: ExprKind::Not(Box::new(e)),
                span,
            },
            Self::deeper(span, d + 1)?,
        ))
    }

    fn cmp(&mut self) -> Result<PExpr, QueryError> {
        let (left, ld) = self.add()?;
        let t = self.peek()?.clone();
        let op = match &t.tok {
            Tok::Eq => Some(BinaryOp::Eq),
            Tok::Ne => Some(BinaryOp::Ne),
            Tok::Lt => Some(BinaryOp::Lt),
            Tok::Le => Some(BinaryOp::Le),
            Tok::Gt => Some(BinaryOp::Gt),
            Tok::Ge => Some(BinaryOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.next()?;
            let (right, rd) = self.add()?;
            let span = left.span.to(right.span);
            return Ok((
                Expr {
                    kind: ExprKind::Binary {
                        op,
                        left: Box::new(left),
                        right: Box::new(right),
                    },
                    span,
                },
                Self::deeper(span, ld.max(rd) + 1)?,
            ));
        }
        let negated = if is_kw(&t.tok, "not") {
            self.next()?;
            if !(self.peek_is_kw("like")? || self.peek_is_kw("in")?) {
                return Err(self.expected("'like' or 'in' after 'not'"));
            }
            true
        } else {
            false
        };
        let t = self.peek()?.clone();
        if t.tok == Tok::Match || is_kw(&t.tok, "like") {
            let word = if t.tok == Tok::Match { "=~" } else { "like" };
            if negated && t.tok == Tok::Match {
                return Err(QueryError::at(
                    t.span,
                    "expected 'like' or 'in' after 'not', found '=~'",
                ));
            }
            self.next()?;
            let (pattern, end) = match &self.peek()?.tok {
                Tok::Str(s) => {
                    let s = s.clone();
                    (Pattern::Substring(s), self.next()?.span)
                }
                Tok::Slash => {
                    let (p, span, _) = self.regex_literal()?;
                    (Pattern::Regex(p), span)
                }
                _ => return Err(self.expected(&format!("a \"string\" or /regex/ after '{word}'"))),
            };
            let span = left.span.to(end);
            return Ok((
                Expr {
                    kind: ExprKind::Like {
                        expr: Box::new(left),
                        pattern,
                        negated,
                    },
                    span,
                },
                Self::deeper(span, ld + 1)?,
            ));
        }
        if is_kw(&t.tok, "in") {
            self.next()?;
            if !self.peek_is(&Tok::LBracket)? {
                return Err(self.expected("'[' to start the list after 'in'"));
            }
            self.next()?;
            let mut list = Vec::new();
            let mut depth = ld;
            let end;
            if self.peek_is(&Tok::RBracket)? {
                end = self.next()?.span;
            } else {
                loop {
                    let (e, d) = self.expr()?;
                    depth = depth.max(d);
                    list.push(e);
                    let t = self.next()?;
                    match t.tok {
                        Tok::Comma => {}
                        Tok::RBracket => {
                            end = t.span;
                            break;
                        }
                        other => {
                            return Err(QueryError::at(
                                t.span,
                                format!(
                                    "expected ',' or ']' in the list after 'in', found {}",
                                    other.describe()
                                ),
                            ))
                        }
                    }
                }
            }
            let span = left.span.to(end);
            return Ok((
                Expr {
                    kind: ExprKind::In {
                        expr: Box::new(left),
                        list,
                        negated,
                    },
                    span,
                },
                Self::deeper(span, depth + 1)?,
            ));
        }
        Ok((left, ld))
    }

    fn binary_loop(
        &mut self,
        ops: &[(Tok, BinaryOp)],
        sub: fn(&mut Self) -> Result<PExpr, QueryError>,
    ) -> Result<PExpr, QueryError> {
        let (mut left, mut depth) = sub(self)?;
        loop {
            let t = &self.peek()?.tok;
            let Some(op) = ops.iter().find(|(tok, _)| tok == t).map(|(_, op)| *op) else {
                return Ok((left, depth));
            };
            self.next()?;
            let (right, rd) = sub(self)?;
            let span = left.span.to(right.span);
            depth = Self::deeper(span, depth.max(rd) + 1)?;
            left = Expr {
                kind: ExprKind::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                span,
            };
        }
    }

    fn add(&mut self) -> Result<PExpr, QueryError> {
        self.binary_loop(
            &[(Tok::Plus, BinaryOp::Add), (Tok::Minus, BinaryOp::Sub)],
            Self::mul,
        )
    }

    fn mul(&mut self) -> Result<PExpr, QueryError> {
        self.binary_loop(
            &[
                (Tok::Star, BinaryOp::Mul),
                (Tok::Slash, BinaryOp::Div),
                (Tok::Percent, BinaryOp::Mod),
            ],
            Self::pow,
        )
    }

    fn pow(&mut self) -> Result<PExpr, QueryError> {
        let (base, bd) = self.unary()?;
        if !self.peek_is(&Tok::Caret)? {
            return Ok((base, bd));
        }
        let t = self.next()?;
        self.enter(t.span)?;
        let exp = self.pow();
        self.leave();
        let (exp, ed) = exp?;
        let span = base.span.to(exp.span);
        Ok((
            Expr {
                kind: ExprKind::Binary {
                    op: BinaryOp::Pow,
                    left: Box::new(base),
                    right: Box::new(exp),
                },
                span,
            },
            Self::deeper(span, bd.max(ed) + 1)?,
        ))
    }

    fn unary(&mut self) -> Result<PExpr, QueryError> {
        if !self.peek_is(&Tok::Minus)? {
            return self.primary();
        }
        let t = self.next()?;
        self.enter(t.span)?;
        let inner = self.unary();
        self.leave();
        let (e, d) = inner?;
        let span = t.span.to(e.span);
        let kind = match e.kind {
            ExprKind::Literal(Literal::Int(i)) => match i.checked_neg() {
                Some(n) => ExprKind::Literal(Literal::Int(n)),
                None => ExprKind::Literal(Literal::Float(-(i as f64))),
            },
            ExprKind::Literal(Literal::Float(f)) => ExprKind::Literal(Literal::Float(-f)),
            other => ExprKind::Neg(Box::new(Expr {
                kind: other,
                span: e.span,
            })),
        };
        Ok((Expr { kind, span }, Self::deeper(span, d + 1)?))
    }

    fn primary(&mut self) -> Result<PExpr, QueryError> {
        let t = self.next()?;
        let lit = |l: Literal| {
            Ok((
                Expr {
                    kind: ExprKind::Literal(l),
                    span: t.span,
                },
                1,
            ))
        };
        match &t.tok {
            Tok::Int(i) => lit(Literal::Int(*i)),
            Tok::Float(f) => lit(Literal::Float(*f)),
            Tok::Str(s) => lit(Literal::Str(s.clone())),
            Tok::Period(p) => Err(QueryError::at(
                t.span,
                format!("a time period such as {p} can only be an argument of bin(), datefloor() or dateceil()"),
            )),
            Tok::LParen => {
                let (inner, d) = self.expr()?;
                let close = self.next()?;
                if close.tok != Tok::RParen {
                    return Err(QueryError::at(
                        close.span,
                        format!(
                            "expected ')' to close the '(' at line {}, column {}, found {}",
                            t.span.line,
                            t.span.column,
                            close.tok.describe()
                        ),
                    ));
                }
                Ok((
                    Expr {
                        kind: inner.kind,
                        span: t.span.to(close.span),
                    },
                    d,
                ))
            }
            Tok::Ident { name, quoted: true } => Ok((
                Expr {
                    kind: ExprKind::Field(name.clone()),
                    span: t.span,
                },
                1,
            )),
            Tok::Ident {
                name,
                quoted: false,
            } => {
                if self.peek_is(&Tok::LParen)? {
                    return self.call(name, t.span);
                }
                match name.to_ascii_lowercase().as_str() {
                    "true" => lit(Literal::Bool(true)),
                    "false" => lit(Literal::Bool(false)),
                    "null" => lit(Literal::Null),
                    kw if KEYWORDS.contains(&kw) => Err(QueryError::at(
                        t.span,
                        format!("expected an expression (a field, value or function call), found keyword '{name}'"),
                    )),
                    _ => Ok((
                        Expr {
                            kind: ExprKind::Field(name.clone()),
                            span: t.span,
                        },
                        1,
                    )),
                }
            }
            other => Err(QueryError::at(
                t.span,
                format!(
                    "expected an expression (a field, value or function call), found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn call(&mut self, name: &str, name_span: Span) -> Result<PExpr, QueryError> {
        self.next()?; // '('
        if let Some(func) = AggFunc::from_name(name) {
            return self.agg_call(func, name, name_span);
        }
        let Some(func) = Function::from_name(name) else {
            return Err(QueryError::at(
                name_span,
                format!("unknown function '{name}': expected a function such as ispresent, strlen, concat, isIpInSubnet, bin or an aggregate in stats"),
            ));
        };
        let mut args = Vec::new();
        let mut depth = 1;
        let end;
        if self.peek_is(&Tok::RParen)? {
            end = self.next()?.span;
        } else {
            loop {
                if func.period_arg() == Some(args.len()) {
                    let t = self.next()?;
                    let Tok::Period(p) = t.tok else {
                        return Err(QueryError::at(
                            t.span,
                            format!(
                                "expected a time period such as 5m or 1h as argument {} of {}(), found {}",
                                args.len() + 1,
                                func.name(),
                                t.tok.describe()
                            ),
                        ));
                    };
                    args.push(Expr {
                        kind: ExprKind::Period(p),
                        span: t.span,
                    });
                } else {
                    let (e, d) = self.expr()?;
                    depth = depth.max(d + 1);
                    args.push(e);
                }
                let t = self.next()?;
                match t.tok {
                    Tok::Comma => {}
                    Tok::RParen => {
                        end = t.span;
                        break;
                    }
                    other => {
                        return Err(QueryError::at(
                            t.span,
                            format!(
                                "expected ',' or ')' in the arguments of {}(), found {}",
                                func.name(),
                                other.describe()
                            ),
                        ))
                    }
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || max.is_some_and(|m| args.len() > m) {
            let expected = match max {
                Some(m) if m == min => format!("{min} argument{}", if min == 1 { "" } else { "s" }),
                Some(m) => format!("{min} to {m} arguments"),
                None => format!("at least {min} argument{}", if min == 1 { "" } else { "s" }),
            };
            return Err(QueryError::at(
                name_span,
                format!(
                    "function {}() expects {expected}, found {}",
                    func.name(),
                    args.len()
                ),
            ));
        }
        if let (
            Function::IsIpInSubnet | Function::IsIpv4InSubnet | Function::IsIpv6InSubnet,
            Some(Expr {
                kind: ExprKind::Literal(Literal::Str(cidr)),
                span,
            }),
        ) = (func, args.get(1))
        {
            parse_subnet(func, cidr).map_err(|e| QueryError::at(*span, e))?;
        }
        let span = name_span.to(end);
        Ok((
            Expr {
                kind: ExprKind::Call { func, args },
                span,
            },
            Self::deeper(span, depth)?,
        ))
    }

    fn agg_call(
        &mut self,
        func: AggFunc,
        name: &str,
        name_span: Span,
    ) -> Result<PExpr, QueryError> {
        if !self.allow_agg {
            return Err(QueryError::at(
                name_span,
                format!("aggregate function {name}() can only be used in stats (not in 'by', filter, fields or nested in another aggregate)"),
            ));
        }
        self.allow_agg = false;
        let r = self.agg_args(func, name_span);
        self.allow_agg = true;
        r
    }

    fn agg_args(&mut self, mut func: AggFunc, name_span: Span) -> Result<PExpr, QueryError> {
        let fname = func.name();
        let mut arg = None;
        let mut depth = 1;
        if func == AggFunc::Count && (self.peek_is(&Tok::Star)? || self.peek_is(&Tok::RParen)?) {
            if self.peek_is(&Tok::Star)? {
                self.next()?;
            }
        } else if self.peek_is(&Tok::RParen)? {
            return Err(QueryError::at(
                name_span,
                format!(
                    "function {fname}() expects {} argument{}, found 0",
                    if matches!(func, AggFunc::Pct(_)) {
                        2
                    } else {
                        1
                    },
                    if matches!(func, AggFunc::Pct(_)) {
                        "s"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            let (e, d) = self.expr()?;
            depth = d + 1;
            arg = Some(Box::new(e));
        }
        if let AggFunc::Pct(_) = func {
            if !self.peek_is(&Tok::Comma)? {
                return Err(self
                    .expected("',' and a percentile (0 to 100) as the second argument of pct()"));
            }
            self.next()?;
            let t = self.next()?;
            let p = match t.tok {
                Tok::Int(i) => i as f64,
                Tok::Float(f) => f,
                ref other => {
                    return Err(QueryError::at(
                        t.span,
                        format!("expected a percentile between 0 and 100 as the second argument of pct(), found {}", other.describe()),
                    ))
                }
            };
            if !(0.0..=100.0).contains(&p) {
                return Err(QueryError::at(
                    t.span,
                    format!("expected a percentile between 0 and 100 as the second argument of pct(), found {p}"),
                ));
            }
            func = AggFunc::Pct(p);
        }
        let close = self.next()?;
        match close.tok {
            Tok::RParen => {}
            Tok::Comma => {
                return Err(QueryError::at(
                    name_span,
                    format!(
                        "function {fname}() expects {}, found more",
                        if matches!(func, AggFunc::Pct(_)) {
                            "2 arguments"
                        } else {
                            "1 argument"
                        }
                    ),
                ))
            }
            other => {
                return Err(QueryError::at(
                    close.span,
                    format!("expected ')' to close {fname}(, found {}", other.describe()),
                ))
            }
        }
        let span = name_span.to(close.span);
        Ok((
            Expr {
                kind: ExprKind::Agg { func, arg },
                span,
            },
            Self::deeper(span, depth)?,
        ))
    }
}

/// Field references outside aggregate calls (these must name group keys or earlier statistics).
fn free_fields(e: &Expr, out: &mut Vec<(String, Span)>) {
    match &e.kind {
        ExprKind::Agg { .. } => {}
        ExprKind::Field(f) => out.push((f.clone(), e.span)),
        ExprKind::Call {
            func: Function::Bin,
            ..
        } => out.push(("@timestamp".into(), e.span)),
        ExprKind::Literal(_) | ExprKind::Period(_) => {}
        ExprKind::Neg(x) | ExprKind::Not(x) | ExprKind::Like { expr: x, .. } => free_fields(x, out),
        ExprKind::And(v) | ExprKind::Or(v) | ExprKind::Call { args: v, .. } => {
            v.iter().for_each(|x| free_fields(x, out))
        }
        ExprKind::Binary { left, right, .. } => {
            free_fields(left, out);
            free_fields(right, out);
        }
        ExprKind::In { expr, list, .. } => {
            free_fields(expr, out);
            list.iter().for_each(|x| free_fields(x, out));
        }
    }
}
