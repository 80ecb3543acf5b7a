//! Turns query text into tokens, tracking line and column; regex literals are read on the parser's
//! request because `/` is also division.

use crate::ast::{Period, Span, TimeUnit};
use crate::error::QueryError;

/// A token's kind and payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name: command, keyword, function or field. `quoted` when any part was in backquotes (then it
    /// is always a field name).
    Ident {
        name: String,
        quoted: bool,
    },
    Str(String),
    Int(i64),
    Float(f64),
    Period(Period),
    Pipe,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    Eof,
}

impl Tok {
    /// How the token is named in "found ..." messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident { name, quoted: true } => format!("field `{name}`"),
            Tok::Ident { name, .. } => format!("'{name}'"),
            Tok::Str(s) => format!("string \"{}\"", shorten(s)),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Period(p) => format!("time period {p}"),
            Tok::Eof => "end of query".to_string(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Pipe => "|",
            Tok::Comma => ",",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Caret => "^",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Match => "=~",
            _ => "?",
        }
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 30 {
        let head: String = s.chars().take(30).collect();
        format!("{head}...")
    } else {
        s.to_string()
    }
}

/// A token and its span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// The lexer: a cursor over the text.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    column: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '@'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '@' || c == '.'
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
            column: 1,
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_char2(&self) -> Option<char> {
        let mut it = self.src[self.pos..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn here(&self) -> Span {
        Span {
            start: self.pos,
            end: self.pos,
            line: self.line,
            column: self.column,
        }
    }

    fn close(&self, start: Span) -> Span {
        Span {
            end: self.pos,
            ..start
        }
    }

    /// Moves the cursor back to the start of `span` (a token the parser wants read another way).
    pub(crate) fn rewind(&mut self, span: Span) {
        self.pos = span.start;
        self.line = span.line;
        self.column = span.column;
    }

    fn skip_space_and_comments(&mut self) {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while let Some(c) = self.peek_char() {
                    if c == '\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// The next token.
    pub(crate) fn next_token(&mut self) -> Result<Token, QueryError> {
        self.skip_space_and_comments();
        let start = self.here();
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                tok: Tok::Eof,
                span: start,
            });
        };
        if c.is_ascii_digit() {
            return self.number(start);
        }
        if is_ident_start(c) || c == '`' {
            return self.ident(start);
        }
        if c == '"' || c == '\'' {
            return self.string(start);
        }
        self.bump();
        let tok = match c {
            '|' => Tok::Pipe,
            ',' => Tok::Comma,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '^' => Tok::Caret,
            '=' => match self.peek_char() {
                Some('~') => {
                    self.bump();
                    Tok::Match
                }
                Some('=') => {
                    self.bump();
                    Tok::Eq
                }
                _ => Tok::Eq,
            },
            '!' if self.peek_char() == Some('=') => {
                self.bump();
                Tok::Ne
            }
            '<' if self.peek_char() == Some('=') => {
                self.bump();
                Tok::Le
            }
            '<' => Tok::Lt,
            '>' if self.peek_char() == Some('=') => {
                self.bump();
                Tok::Ge
            }
            '>' => Tok::Gt,
            '!' => {
                return Err(QueryError::at(
                    start,
                    "unexpected character '!': expected '!=' (write 'not' for negation)",
                ))
            }
            other => {
                return Err(QueryError::at(
                    start,
                    format!(
                        "unexpected character '{}': expected a field, value, operator or '|'",
                        other.escape_debug()
                    ),
                ))
            }
        };
        Ok(Token {
            tok,
            span: self.close(start),
        })
    }

    fn ident(&mut self, start: Span) -> Result<Token, QueryError> {
        let mut name = String::new();
        let mut quoted = false;
        loop {
            match self.peek_char() {
                Some('`') => {
                    let open = self.here();
                    self.bump();
                    quoted = true;
                    loop {
                        match self.bump() {
                            None => {
                                return Err(QueryError::at(
                                    open,
                                    "unterminated backquoted name: expected a closing ` before the end of the query",
                                ))
                            }
                            Some('\\') if self.peek_char() == Some('`') => {
                                self.bump();
                                name.push('`');
                            }
                            Some('`') => break,
                            Some(c) => name.push(c),
                        }
                    }
                }
                Some(c)
                    if (name.is_empty() && !quoted && is_ident_start(c))
                        || ((!name.is_empty() || quoted) && is_ident_continue(c)) =>
                {
                    self.bump();
                    name.push(c);
                }
                _ => break,
            }
        }
        if quoted && name.is_empty() {
            return Err(QueryError::at(
                start,
                "empty backquoted name: expected a field name between the backquotes",
            ));
        }
        Ok(Token {
            tok: Tok::Ident { name, quoted },
            span: self.close(start),
        })
    }

    fn number(&mut self, start: Span) -> Result<Token, QueryError> {
        let mut is_float = false;
        while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        if self.peek_char() == Some('.') && self.peek_char2().is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.bump();
            while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let rest = &self.src[self.pos + 1..];
            let mut chars = rest.chars();
            let exp_ok = match chars.next() {
                Some(d) if d.is_ascii_digit() => true,
                Some('+' | '-') => chars.next().is_some_and(|d| d.is_ascii_digit()),
                _ => false,
            };
            if exp_ok {
                is_float = true;
                self.bump();
                if matches!(self.peek_char(), Some('+' | '-')) {
                    self.bump();
                }
                while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
        }
        let digits_end = self.pos;
        // A unit suffix (5m) or garbage glued to the number (12ab, 1.2.3).
        while self.peek_char().is_some_and(is_ident_continue) {
            self.bump();
        }
        let text = &self.src[start.start..self.pos];
        let digits = &self.src[start.start..digits_end];
        let span = self.close(start);
        if digits_end != self.pos {
            let suffix = &self.src[digits_end..self.pos];
            if let (false, Some(unit)) = (is_float, TimeUnit::from_suffix(suffix)) {
                let amount: u64 = digits.parse().map_err(|_| {
                    QueryError::at(
                        span,
                        format!("bad time period '{text}': the number is too large"),
                    )
                })?;
                let period = Period { amount, unit };
                if !period.is_valid() {
                    return Err(QueryError::at(
                        span,
                        format!("bad time period '{text}': expected a whole number of ms, s, m, h, d, w, mo, q or y greater than 0 and not too large"),
                    ));
                }
                return Ok(Token {
                    tok: Tok::Period(period),
                    span,
                });
            }
            return Err(QueryError::at(
                span,
                format!("bad number '{text}': expected digits with an optional fraction and exponent, or a time period such as 5m or 1h"),
            ));
        }
        let tok = if is_float {
            Tok::Float(
                digits
                    .parse::<f64>()
                    .map_err(|_| QueryError::at(span, format!("bad number '{text}'")))?,
            )
        } else {
            match digits.parse::<i64>() {
                Ok(i) => Tok::Int(i),
                Err(_) => Tok::Float(
                    digits
                        .parse::<f64>()
                        .map_err(|_| QueryError::at(span, format!("bad number '{text}'")))?,
                ),
            }
        };
        Ok(Token { tok, span })
    }

    fn string(&mut self, start: Span) -> Result<Token, QueryError> {
        let Some(quote) = self.bump() else {
            return Err(QueryError::at(start, "expected a string"));
        };
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(QueryError::at(
                        start,
                        format!("unterminated string: expected a closing {quote} before the end of the query"),
                    ))
                }
                Some(c) if c == quote => break,
                Some('\\') => match self.bump() {
                    None => {
                        return Err(QueryError::at(
                            start,
                            format!("unterminated string: expected a closing {quote} before the end of the query"),
                        ))
                    }
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('\\' | '"' | '\'' | '`')) => out.push(c),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                },
                Some(c) => out.push(c),
            }
        }
        Ok(Token {
            tok: Tok::Str(out),
            span: self.close(start),
        })
    }

    /// Reads a regex literal starting at the `/` at `slash` (the parser rewinds there); `\/` is a
    /// slash inside the pattern, other escapes are kept for the regex engine.
    pub(crate) fn regex(&mut self, slash: Span) -> Result<(String, Span), QueryError> {
        self.rewind(slash);
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(QueryError::at(
                        slash,
                        "unterminated regular expression: expected a closing / before the end of the query",
                    ))
                }
                Some('/') => break,
                Some('\\') => match self.bump() {
                    Some('/') => out.push('/'),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => {
                        return Err(QueryError::at(
                            slash,
                            "unterminated regular expression: expected a closing / before the end of the query",
                        ))
                    }
                },
                Some(c) => out.push(c),
            }
        }
        Ok((out, self.close(slash)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut l = Lexer::new(s);
        let mut out = Vec::new();
        loop {
            let t = l.next_token().unwrap();
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    fn ident(s: &str) -> Tok {
        Tok::Ident {
            name: s.into(),
            quoted: false,
        }
    }

    #[test]
    fn tokens_and_positions() {
        assert_eq!(
            toks("filter a.b=\"x\" # comment\n| limit 5"),
            vec![
                ident("filter"),
                ident("a.b"),
                Tok::Eq,
                Tok::Str("x".into()),
                Tok::Pipe,
                ident("limit"),
                Tok::Int(5)
            ]
        );
        let mut l = Lexer::new("a\n  bb");
        l.next_token().unwrap();
        let t = l.next_token().unwrap();
        assert_eq!((t.span.line, t.span.column, t.span.start), (2, 3, 4));
    }

    #[test]
    fn names_numbers_periods() {
        assert_eq!(
            toks("sourceIPs.0 `a-b/c` x.`y z` 1.5 2e3 5m 100ms 2mo =~ != <= >="),
            vec![
                ident("sourceIPs.0"),
                Tok::Ident {
                    name: "a-b/c".into(),
                    quoted: true
                },
                Tok::Ident {
                    name: "x.y z".into(),
                    quoted: true
                },
                Tok::Float(1.5),
                Tok::Float(2000.0),
                Tok::Period(Period {
                    amount: 5,
                    unit: TimeUnit::Minute
                }),
                Tok::Period(Period {
                    amount: 100,
                    unit: TimeUnit::Millisecond
                }),
                Tok::Period(Period {
                    amount: 2,
                    unit: TimeUnit::Month
                }),
                Tok::Match,
                Tok::Ne,
                Tok::Le,
                Tok::Ge
            ]
        );
        assert_eq!(
            toks(r#"'it\'s' "a\"b\\c\n""#),
            vec![Tok::Str("it's".into()), Tok::Str("a\"b\\c\n".into())]
        );
    }

    #[test]
    fn lexical_errors() {
        let err = |s: &str| {
            let mut l = Lexer::new(s);
            loop {
                match l.next_token() {
                    Err(e) => return e,
                    Ok(t) if t.tok == Tok::Eof => panic!("no error for {s}"),
                    Ok(_) => {}
                }
            }
        };
        let e = err("filter x = \"abc");
        assert_eq!((e.line, e.column), (1, 12));
        assert!(e.message.contains("unterminated string"), "{}", e.message);
        let e = err("limit 12ab");
        assert_eq!((e.line, e.column), (1, 7));
        assert!(e.message.contains("bad number '12ab'"), "{}", e.message);
        assert!(err("bin(0m)").message.contains("bad time period"));
        assert!(err("a ! b").message.contains("expected '!='"));
        assert!(err("`abc").message.contains("unterminated backquoted"));
        assert!(err("a ; b").message.contains("unexpected character ';'"));
    }
}
