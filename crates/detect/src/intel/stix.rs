//! STIX 2.1 feeds: reading bundles, TAXII envelopes and lone indicators
//! ([`IntelBuilder::add_stix`]), and the STIX pattern grammar ([`pattern`]).

use super::load::{normalize, parse_time, IntelBuilder, Meta, Want};
use super::{IndicatorKind, IntelError, IntelProblemKind};
use rustc_hash::FxHashMap;

impl IntelBuilder {
    /// Loads a STIX 2.1 bundle (or a TAXII envelope, or one indicator object) from text. Text that is not
    /// JSON, or JSON that is no bundle, is an error; problems of single indicators are reported with their
    /// id.
    pub fn add_stix(&mut self, file: &str, text: &str) -> Result<(), IntelError> {
        self.stats.files += 1;
        let format_err = |message: String| IntelError::Format {
            file: file.to_string(),
            message,
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format_err(format!(
                "not JSON: {e} (a STIX bundle is expected of .json files)"
            ))
        })?;
        let single;
        let objects: &[serde_json::Value] = match &doc {
            serde_json::Value::Object(m) => match m.get("objects") {
                Some(serde_json::Value::Array(a)) => a,
                Some(_) => return Err(format_err("\"objects\" is not an array".into())),
                None if m.get("type").and_then(|t| t.as_str()) == Some("indicator") => {
                    single = [doc.clone()];
                    &single
                }
                None => {
                    return Err(format_err(
                        "not a STIX bundle: no \"objects\" array (nor an indicator object)".into(),
                    ))
                }
            },
            serde_json::Value::Array(a) => a,
            _ => return Err(format_err("not a STIX bundle: not a JSON object".into())),
        };
        // The latest version (by `modified`) of each indicator id wins.
        let mut latest: FxHashMap<&str, (i64, usize)> = FxHashMap::default();
        for (i, o) in objects.iter().enumerate() {
            if o.get("type").and_then(|t| t.as_str()) != Some("indicator") {
                continue;
            }
            if let Some(id) = o.get("id").and_then(|v| v.as_str()) {
                let modified = ["modified", "created"]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(|v| v.as_str()).and_then(parse_time))
                    .unwrap_or(i64::MIN);
                let e = latest.entry(id).or_insert((modified, i));
                if modified >= e.0 {
                    *e = (modified, i);
                }
            }
        }
        for (i, o) in objects.iter().enumerate() {
            if o.get("type").and_then(|t| t.as_str()) != Some("indicator") {
                continue;
            }
            self.stats.stix_indicators += 1;
            let id = o.get("id").and_then(|v| v.as_str());
            if let Some(id) = id {
                if latest.get(id).is_some_and(|&(_, j)| j != i) {
                    self.stats.superseded += 1;
                    continue;
                }
            }
            self.stix_indicator(file, i, id, o);
        }
        Ok(())
    }

    fn stix_indicator(
        &mut self,
        file: &str,
        index: usize,
        id: Option<&str>,
        o: &serde_json::Value,
    ) {
        let label = id
            .map(str::to_string)
            .unwrap_or_else(|| format!("objects[{index}] (an indicator without an id)"));
        let report = |this: &mut Self, kind: IntelProblemKind, msg: String| {
            match kind {
                IntelProblemKind::Invalid => this.stats.invalid += 1,
                IntelProblemKind::Unsupported => this.stats.unsupported += 1,
                IntelProblemKind::Warning => {}
            }
            this.problem(kind, file, None, Some(&label), msg);
        };
        let s = |k: &str| o.get(k).and_then(|v| v.as_str());
        if o.get("revoked").and_then(|v| v.as_bool()) == Some(true) {
            self.stats.revoked += 1;
            return;
        }
        let mut meta = Meta {
            stix_id: Some(label.clone()),
            name: s("name").map(str::to_string),
            description: s("description").map(str::to_string),
            ..Meta::default()
        };
        for k in ["labels", "indicator_types"] {
            for l in o
                .get(k)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
            {
                if !meta.labels.iter().any(|x| x == l) {
                    meta.labels.push(l.to_string());
                }
            }
        }
        if let Some(c) = o.get("confidence") {
            match c.as_u64().filter(|c| *c <= 100) {
                Some(c) => meta.confidence = Some(c as u8),
                None => {
                    return report(
                        self,
                        IntelProblemKind::Invalid,
                        format!("confidence {c} is not an integer 0-100"),
                    )
                }
            }
        }
        if let Some(u) = o.get("valid_until") {
            match u.as_str().and_then(parse_time) {
                Some(t) if t <= self.now => {
                    self.stats.expired += 1;
                    return;
                }
                Some(t) => meta.valid_until = Some(t),
                None => {
                    return report(
                        self,
                        IntelProblemKind::Invalid,
                        format!("valid_until {u} is not an RFC 3339 time"),
                    )
                }
            }
        }
        if let Some(f) = o.get("valid_from") {
            match f.as_str().and_then(parse_time) {
                Some(t) if t > self.now => {
                    self.stats.not_yet_valid += 1;
                    return;
                }
                Some(_) => {}
                None => {
                    return report(
                        self,
                        IntelProblemKind::Invalid,
                        format!("valid_from {f} is not an RFC 3339 time"),
                    )
                }
            }
        }
        // STIX 2.0 indicators have no pattern_type: their patterns are STIX patterns.
        match s("pattern_type") {
            None | Some("stix") => {}
            Some(t) => {
                return report(
                    self,
                    IntelProblemKind::Unsupported,
                    format!("pattern_type {t:?}: only STIX patterns are matched"),
                )
            }
        }
        let Some(pat) = s("pattern") else {
            return report(
                self,
                IntelProblemKind::Invalid,
                "no \"pattern\" string".into(),
            );
        };
        let node = match pattern::parse(pat) {
            Ok(n) => n,
            Err(e) => {
                return report(
                    self,
                    IntelProblemKind::Invalid,
                    format!("pattern {pat:?}: {e}"),
                )
            }
        };
        let mut tests = Vec::new();
        let mut unsupported = Vec::new();
        pattern::flatten(&node, pat, &mut tests, &mut unsupported);
        let mut loaded = 0usize;
        let mut invalid = Vec::new();
        for t in tests {
            match t.values(pat) {
                Err(why) => unsupported.push(why),
                Ok((want, values)) => {
                    for v in values {
                        match normalize(want, v) {
                            Ok(norm) => {
                                if let Some(w) = &norm.warning {
                                    let w = w.clone();
                                    report(self, IntelProblemKind::Warning, w);
                                }
                                self.insert(file, norm, Some(v), &meta);
                                loaded += 1;
                            }
                            Err(e) => invalid.push(e),
                        }
                    }
                }
            }
        }
        let what = |v: &[String]| v.join("; ");
        match (loaded, unsupported.is_empty(), invalid.is_empty()) {
            (_, true, true) => {}
            (0, false, _) => report(
                self,
                IntelProblemKind::Unsupported,
                format!(
                    "nothing in the pattern can be matched: {}",
                    what(&unsupported)
                ),
            ),
            (0, true, false) => report(self, IntelProblemKind::Invalid, what(&invalid)),
            _ => {
                self.stats.partial += 1;
                let mut parts = unsupported;
                parts.extend(invalid);
                report(
                    self,
                    IntelProblemKind::Warning,
                    format!(
                        "loaded {loaded} value{} of the pattern, left out: {}",
                        if loaded == 1 { "" } else { "s" },
                        what(&parts)
                    ),
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// STIX patterns

pub(super) mod pattern {
    //! The part of STIX patterning (STIX 2.1 section 9) a single event can be held against: comparisons
    //! joined by `OR`. The whole grammar is parsed so that anything else is recognised and named.

    use super::{IndicatorKind, Want};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Op {
        Eq,
        Neq,
        Lt,
        Le,
        Gt,
        Ge,
        In,
        Like,
        Matches,
        IsSubset,
        IsSuperset,
    }

    impl Op {
        fn name(self) -> &'static str {
            match self {
                Op::Eq => "=",
                Op::Neq => "!=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::In => "IN",
                Op::Like => "LIKE",
                Op::Matches => "MATCHES",
                Op::IsSubset => "ISSUBSET",
                Op::IsSuperset => "ISSUPERSET",
            }
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        LBrack,
        RBrack,
        LParen,
        RParen,
        Comma,
        Cmp(Op),
        /// A string literal, unescaped.
        Str(String),
        /// Any other literal: numbers, `b'..'`, `h'..'`, `t'..'`, booleans.
        Lit,
        /// A keyword, upper-cased.
        Word(String),
        /// `object-type:path.to.'property'`.
        Path(String, Vec<String>),
    }

    /// A literal on the right of a comparison.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Lit {
        Str(String),
        Other,
    }

    /// A comparison.
    #[derive(Debug, Clone, PartialEq)]
    pub(in crate::intel) struct Test {
        object: String,
        path: Vec<String>,
        not: bool,
        op: Op,
        values: Vec<Lit>,
        span: (usize, usize),
    }

    /// A parsed pattern.
    #[derive(Debug, Clone, PartialEq)]
    pub(in crate::intel) enum Node {
        /// Any of these (observation or comparison `OR`).
        Any(Vec<Node>),
        /// `AND` or `FOLLOWEDBY`: several things at once or in order.
        All {
            join: &'static str,
            span: (usize, usize),
        },
        /// An observation with `WITHIN`, `REPEATS` or `START`/`STOP`.
        Qualified {
            what: &'static str,
            span: (usize, usize),
        },
        /// A comparison.
        Test(Test),
    }

    type Spanned = (Node, usize, usize);

    fn lex(p: &str) -> Result<Vec<(Tok, usize, usize)>, String> {
        let b = p.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let start = i;
            let tok = match c {
                _ if c.is_ascii_whitespace() => {
                    i += 1;
                    continue;
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let end = p[i + 2..]
                        .find("*/")
                        .ok_or_else(|| format!("unterminated comment at offset {i}"))?;
                    i += 2 + end + 2;
                    continue;
                }
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    i = p[i..].find('\n').map_or(b.len(), |n| i + n);
                    continue;
                }
                b'[' | b']' | b'(' | b')' | b',' => {
                    i += 1;
                    match c {
                        b'[' => Tok::LBrack,
                        b']' => Tok::RBrack,
                        b'(' => Tok::LParen,
                        b')' => Tok::RParen,
                        _ => Tok::Comma,
                    }
                }
                b'\'' => {
                    let (s, next) = string(p, i)?;
                    i = next;
                    Tok::Str(s)
                }
                b'=' | b'!' | b'<' | b'>' => {
                    let (op, len) = comparison(&b[i..])
                        .ok_or_else(|| format!("unexpected '!' at offset {i}"))?;
                    i += len;
                    Tok::Cmp(op)
                }
                b'+' | b'-' | b'.' | b'0'..=b'9' => {
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                        i += 1;
                    }
                    Tok::Lit
                }
                b'b' | b'h' | b't' if b.get(i + 1) == Some(&b'\'') => {
                    let (_, next) = string(p, i + 1)?;
                    i = next;
                    Tok::Lit
                }
                _ if c.is_ascii_alphabetic() || c == b'_' => {
                    while i < b.len()
                        && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-')
                    {
                        i += 1;
                    }
                    let word = &p[start..i];
                    if b.get(i) == Some(&b':') {
                        i += 1;
                        let (path, next) = object_path(p, i)?;
                        i = next;
                        Tok::Path(word.to_ascii_lowercase(), path)
                    } else {
                        let w = word.to_ascii_uppercase();
                        if w == "TRUE" || w == "FALSE" {
                            Tok::Lit
                        } else {
                            Tok::Word(w)
                        }
                    }
                }
                _ => {
                    let ch = p[i..].chars().next().unwrap_or('?');
                    return Err(format!("unexpected {ch:?} at offset {i}"));
                }
            };
            out.push((tok, start, i));
        }
        Ok(out)
    }

    /// The comparison operator at the start of `b` and its length: `=`, `==`, `!=`, `<`, `<=`, `<>`, `>`,
    /// `>=`.
    fn comparison(b: &[u8]) -> Option<(Op, usize)> {
        Some(match (b.first()?, b.get(1)) {
            (b'=', Some(b'=')) => (Op::Eq, 2),
            (b'=', _) => (Op::Eq, 1),
            (b'!', Some(b'=')) => (Op::Neq, 2),
            (b'<', Some(b'=')) => (Op::Le, 2),
            (b'<', Some(b'>')) => (Op::Neq, 2),
            (b'<', _) => (Op::Lt, 1),
            (b'>', Some(b'=')) => (Op::Ge, 2),
            (b'>', _) => (Op::Gt, 1),
            _ => return None,
        })
    }

    /// A quoted string starting at `b[at] == '\''`: its text and the offset after it.
    fn string(p: &str, at: usize) -> Result<(String, usize), String> {
        let b = p.as_bytes();
        let mut s = String::new();
        let mut i = at + 1;
        let mut run = i;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    s.push_str(&p[run..i]);
                    match b.get(i + 1) {
                        Some(&c @ (b'\'' | b'\\')) => s.push(c as char),
                        _ => {
                            return Err(format!(
                                "bad escape at offset {i}: only \\' and \\\\ are allowed"
                            ))
                        }
                    }
                    i += 2;
                    run = i;
                }
                b'\'' => {
                    s.push_str(&p[run..i]);
                    return Ok((s, i + 1));
                }
                _ => i += 1,
            }
        }
        Err(format!("unterminated string starting at offset {at}"))
    }

    /// The property path after `type:`: identifiers or quoted keys joined by dots, `[n]` / `[*]` indices.
    fn object_path(p: &str, mut i: usize) -> Result<(Vec<String>, usize), String> {
        let b = p.as_bytes();
        let mut path = Vec::new();
        let component = |i: usize| -> Result<(String, usize), String> {
            if b.get(i) == Some(&b'\'') {
                return string(p, i);
            }
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
                j += 1;
            }
            if j == i {
                return Err(format!("an object path lacks a property at offset {i}"));
            }
            Ok((p[i..j].to_string(), j))
        };
        let (c, next) = component(i)?;
        path.push(c);
        i = next;
        loop {
            match b.get(i) {
                Some(b'.') => {
                    let (c, next) = component(i + 1)?;
                    path.push(c);
                    i = next;
                }
                Some(b'[') => {
                    let close = p[i..].find(']').map(|n| i + n);
                    match close {
                        Some(end)
                            if end > i + 1
                                && (&p[i + 1..end] == "*"
                                    || p[i + 1..end].bytes().all(|c| c.is_ascii_digit())) =>
                        {
                            path.push(p[i..=end].to_string());
                            i = end + 1;
                        }
                        _ => break,
                    }
                }
                _ => break,
            }
        }
        Ok((path, i))
    }

    struct Parser {
        toks: Vec<(Tok, usize, usize)>,
        pos: usize,
        len: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.pos).map(|t| &t.0)
        }

        fn word(&self, w: &str) -> bool {
            matches!(self.peek(), Some(Tok::Word(x)) if x == w)
        }

        fn here(&self) -> usize {
            self.toks.get(self.pos).map_or(self.len, |t| t.1)
        }

        fn last_end(&self) -> usize {
            self.pos
                .checked_sub(1)
                .and_then(|p| self.toks.get(p))
                .map_or(0, |t| t.2)
        }

        fn describe(&self) -> String {
            match self.toks.get(self.pos) {
                None => "the end of the pattern".into(),
                Some((t, s, _)) => format!("{} at offset {s}", name(t)),
            }
        }

        fn expect(&mut self, t: Tok) -> Result<(), String> {
            if self.peek() == Some(&t) {
                self.pos += 1;
                Ok(())
            } else {
                Err(format!("expected {}, found {}", name(&t), self.describe()))
            }
        }

        /// `a JOIN b JOIN c` at one precedence level.
        fn joined(
            &mut self,
            join: &'static str,
            sub: fn(&mut Parser) -> Result<Spanned, String>,
        ) -> Result<Spanned, String> {
            let first = sub(self)?;
            if !self.word(join) {
                return Ok(first);
            }
            let (start, mut end) = (first.1, first.2);
            let mut items = vec![first.0];
            while self.word(join) {
                self.pos += 1;
                let (n, _, e) = sub(self)?;
                items.push(n);
                end = e;
            }
            let node = if join == "OR" {
                Node::Any(items)
            } else {
                Node::All {
                    join,
                    span: (start, end),
                }
            };
            Ok((node, start, end))
        }

        fn observations(&mut self) -> Result<Spanned, String> {
            self.joined("FOLLOWEDBY", |p| {
                p.joined("OR", |p| p.joined("AND", Parser::observation))
            })
        }

        fn observation(&mut self) -> Result<Spanned, String> {
            let start = self.here();
            let mut node = match self.peek() {
                Some(Tok::LBrack) => {
                    self.pos += 1;
                    let (n, _, _) = self.comparisons()?;
                    self.expect(Tok::RBrack)?;
                    n
                }
                Some(Tok::LParen) => {
                    self.pos += 1;
                    let (n, _, _) = self.observations()?;
                    self.expect(Tok::RParen)?;
                    n
                }
                _ => {
                    return Err(format!(
                        "expected '[' or '(' to open an observation, found {}",
                        self.describe()
                    ))
                }
            };
            loop {
                let what = if self.word("WITHIN") {
                    self.pos += 1;
                    self.expect(Tok::Lit)?;
                    self.keyword("SECONDS")?;
                    "WITHIN"
                } else if self.word("REPEATS") {
                    self.pos += 1;
                    self.expect(Tok::Lit)?;
                    self.keyword("TIMES")?;
                    "REPEATS"
                } else if self.word("START") {
                    self.pos += 1;
                    self.literal()?;
                    self.keyword("STOP")?;
                    self.literal()?;
                    "START/STOP"
                } else {
                    break;
                };
                node = Node::Qualified {
                    what,
                    span: (start, self.last_end()),
                };
            }
            Ok((node, start, self.last_end()))
        }

        fn keyword(&mut self, w: &str) -> Result<(), String> {
            if self.word(w) {
                self.pos += 1;
                Ok(())
            } else {
                Err(format!("expected {w}, found {}", self.describe()))
            }
        }

        fn comparisons(&mut self) -> Result<Spanned, String> {
            self.joined("OR", |p| p.joined("AND", Parser::comparison))
        }

        fn comparison(&mut self) -> Result<Spanned, String> {
            let start = self.here();
            if self.peek() == Some(&Tok::LParen) {
                self.pos += 1;
                let (n, _, _) = self.comparisons()?;
                self.expect(Tok::RParen)?;
                return Ok((n, start, self.last_end()));
            }
            if self.word("EXISTS") {
                // STIX 2.0's EXISTS: parsed so that it can be named.
                self.pos += 1;
                match self.peek() {
                    Some(Tok::Path(..)) => self.pos += 1,
                    _ => {
                        return Err(format!(
                            "expected an object path after EXISTS, found {}",
                            self.describe()
                        ))
                    }
                }
                let span = (start, self.last_end());
                return Ok((
                    Node::All {
                        join: "EXISTS",
                        span,
                    },
                    span.0,
                    span.1,
                ));
            }
            let Some(Tok::Path(object, path)) = self.peek().cloned() else {
                return Err(format!(
                    "expected an object path such as ipv4-addr:value, found {}",
                    self.describe()
                ));
            };
            self.pos += 1;
            let not = self.word("NOT");
            if not {
                self.pos += 1;
            }
            let op = match self.peek() {
                Some(Tok::Cmp(op)) => *op,
                Some(Tok::Word(w)) => match w.as_str() {
                    "IN" => Op::In,
                    "LIKE" => Op::Like,
                    "MATCHES" => Op::Matches,
                    "ISSUBSET" => Op::IsSubset,
                    "ISSUPERSET" => Op::IsSuperset,
                    _ => {
                        return Err(format!(
                            "expected a comparison operator, found {}",
                            self.describe()
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "expected a comparison operator, found {}",
                        self.describe()
                    ))
                }
            };
            self.pos += 1;
            let values = if op == Op::In {
                self.expect(Tok::LParen)?;
                let mut v = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    v.push(self.literal()?);
                    while self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                        v.push(self.literal()?);
                    }
                }
                self.expect(Tok::RParen)?;
                v
            } else {
                vec![self.literal()?]
            };
            let span = (start, self.last_end());
            Ok((
                Node::Test(Test {
                    object,
                    path,
                    not,
                    op,
                    values,
                    span,
                }),
                span.0,
                span.1,
            ))
        }

        fn literal(&mut self) -> Result<Lit, String> {
            match self.peek().cloned() {
                Some(Tok::Str(s)) => {
                    self.pos += 1;
                    Ok(Lit::Str(s))
                }
                Some(Tok::Lit) => {
                    self.pos += 1;
                    Ok(Lit::Other)
                }
                _ => Err(format!("expected a value, found {}", self.describe())),
            }
        }
    }

    fn name(t: &Tok) -> String {
        match t {
            Tok::LBrack => "'['".into(),
            Tok::RBrack => "']'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Cmp(op) => format!("'{}'", op.name()),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Lit => "a value".into(),
            Tok::Word(w) => w.clone(),
            Tok::Path(o, p) => format!("{o}:{}", p.join(".")),
        }
    }

    /// Parses a STIX pattern.
    pub(in crate::intel) fn parse(p: &str) -> Result<Node, String> {
        let toks = lex(p)?;
        if toks.is_empty() {
            return Err("empty pattern".into());
        }
        let mut parser = Parser {
            toks,
            pos: 0,
            len: p.len(),
        };
        let (node, _, _) = parser.observations()?;
        if parser.pos < parser.toks.len() {
            return Err(format!("unexpected {}", parser.describe()));
        }
        Ok(node)
    }

    /// The comparisons of a pattern that are alternatives (under `OR` only); what else it holds goes to
    /// `unsupported`, quoted from the pattern.
    pub(in crate::intel) fn flatten<'a>(
        node: &'a Node,
        src: &str,
        tests: &mut Vec<&'a Test>,
        unsupported: &mut Vec<String>,
    ) {
        let text = |span: (usize, usize)| src.get(span.0..span.1).unwrap_or(src).to_string();
        match node {
            Node::Any(items) => {
                for n in items {
                    flatten(n, src, tests, unsupported);
                }
            }
            Node::All { join, span } => unsupported.push(format!(
                "{join} cannot be matched on single events: {}",
                text(*span)
            )),
            Node::Qualified { what, span } => unsupported.push(format!(
                "the {what} qualifier cannot be matched on single events: {}",
                text(*span)
            )),
            Node::Test(t) => tests.push(t),
        }
    }

    impl Test {
        /// What the comparison checks and for which values; why not when it cannot be matched.
        pub(in crate::intel) fn values<'a>(
            &'a self,
            src: &str,
        ) -> Result<(Want, Vec<&'a str>), String> {
            let text = src.get(self.span.0..self.span.1).unwrap_or(src);
            let path = self.path.join(".");
            let want = target(&self.object, &self.path).ok_or_else(|| {
                format!(
                    "{}:{path} is not matched (ipv4-addr, ipv6-addr, domain-name, url values and file hashes are): {text}",
                    self.object
                )
            })?;
            if self.not {
                return Err(format!("NOT cannot be matched: {text}"));
            }
            let ip = matches!(want, Want::Ipv4 | Want::Ipv6 | Want::Ip);
            match self.op {
                Op::Eq | Op::In => {}
                Op::IsSubset if ip => {}
                op => {
                    return Err(format!(
                        "the operator {} cannot be matched: {text}",
                        op.name()
                    ))
                }
            }
            let mut values = Vec::new();
            for v in &self.values {
                match v {
                    Lit::Str(s) => values.push(s.as_str()),
                    Lit::Other => return Err(format!("a value that is not a string: {text}")),
                }
            }
            if values.is_empty() {
                return Err(format!("an empty set: {text}"));
            }
            Ok((want, values))
        }
    }

    /// What an object path holds, if Quarry matches it.
    fn target(object: &str, path: &[String]) -> Option<Want> {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        Some(match (object, p.as_slice()) {
            ("ipv4-addr", ["value"]) => Want::Ipv4,
            ("ipv6-addr", ["value"]) => Want::Ipv6,
            ("domain-name", ["value"]) => Want::Domain,
            ("url", ["value"]) => Want::Url,
            ("network-traffic", ["src_ref" | "dst_ref", "value"]) => Want::Host,
            ("file" | "artifact", ["hashes", alg]) => {
                let alg = alg.to_ascii_uppercase().replace('-', "");
                Want::Hash(Some(match alg.as_str() {
                    "MD5" => IndicatorKind::Md5,
                    "SHA1" => IndicatorKind::Sha1,
                    "SHA256" => IndicatorKind::Sha256,
                    _ => return None,
                }))
            }
            _ => return None,
        })
    }
}
