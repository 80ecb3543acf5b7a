//! Errors: [`QueryError`] for text that cannot be read or checked, [`ExecError`] for a run that cannot finish.

use crate::ast::Span;

/// A query that cannot be read or checked: where it went wrong (1-based line and column, counted in
/// characters) and a message saying what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct QueryError {
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl QueryError {
    /// An error at the start of `span`.
    pub fn at(span: Span, message: impl Into<String>) -> Self {
        QueryError {
            line: span.line,
            column: span.column,
            message: message.into(),
        }
    }
}

/// A query run that cannot finish within the engine's resource bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// `stats` would hold more groups than allowed.
    #[error("stats produced more than {limit} groups: group by fewer or coarser keys, or narrow the query")]
    TooManyGroups {
        /// The bound that was reached.
        limit: usize,
    },
    /// `sort` would hold more rows than allowed.
    #[error("sort would hold more than {limit} rows: add a limit after it or narrow the query")]
    TooManyRows {
        /// The bound that was reached.
        limit: usize,
    },
}
