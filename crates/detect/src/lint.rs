//! `quarry rules lint`: what is wrong or unsupported in a rule set, each finding with its file, line and
//! column where known. Two sources of findings:
//! - the Sigma specification checks of rsigma-parser (missing fields, invalid ids, dates, tags, conditions
//!   naming unknown selections, ...), with their severity;
//! - Quarry's own: files that do not parse, rules that do not compile (an invalid regular expression, an
//!   unknown modifier), duplicate ids, and rules for logs Quarry does not collect.

use crate::rules::{Problem, ProblemKind};
use rsigma_parser::{lint_yaml_str, Severity as RsSeverity};
use serde::Serialize;
use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The rule is invalid or not loaded.
    Error,
    /// The rule loads, but is not what the specification or a reviewer would want.
    Warning,
    /// A hint.
    Info,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The file.
    pub origin: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// Severity.
    pub severity: Severity,
    /// The check (`invalid_id`, `unsupported`, `compile`, ...).
    pub check: String,
    /// The rule's title, when the finding is about one rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        write!(f, "{}", self.origin)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {sev}[{}]", self.check)?;
        if let Some(r) = &self.rule {
            write!(f, " {r:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The specification checks of one file's text.
pub fn lint_text(origin: &str, text: &str) -> Vec<Finding> {
    lint_yaml_str(text)
        .into_iter()
        .map(|w| Finding {
            origin: origin.to_string(),
            line: w.span.map(|s| s.start_line + 1),
            column: w.span.map(|s| s.start_col + 1),
            severity: match w.severity {
                RsSeverity::Error => Severity::Error,
                RsSeverity::Warning => Severity::Warning,
                RsSeverity::Info | RsSeverity::Hint => Severity::Info,
            },
            check: w.rule.to_string(),
            rule: None,
            message: if w.path.is_empty() || w.path == "/" {
                w.message
            } else {
                format!("{} (at {})", w.message, w.path)
            },
        })
        .collect()
}

/// A load problem as a finding.
pub fn problem_finding(p: &Problem) -> Finding {
    Finding {
        origin: p.origin.clone(),
        line: None,
        column: None,
        severity: match p.kind {
            ProblemKind::Error => Severity::Error,
            ProblemKind::Unsupported => Severity::Warning,
        },
        check: match p.kind {
            ProblemKind::Error => "load".into(),
            ProblemKind::Unsupported => "unsupported".into(),
        },
        rule: p.rule.clone(),
        message: p.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_findings_carry_line_and_column() {
        let text = "title: T\nid: not-a-uuid\nlogsource: {product: kubernetes, service: audit}\n\
                    detection: {sel: {verb: get}, condition: sel or other}\nlevel: high\n";
        let f = lint_text("r.yml", text);
        assert!(
            f.iter()
                .any(|f| f.check.contains("invalid_id") && f.line == Some(2)),
            "{f:#?}"
        );
        assert!(f.iter().any(|f| f.severity == Severity::Error), "{f:#?}");
    }

    #[test]
    fn custom_attributes_are_not_findings() {
        let text = "title: Exec into a pod\nid: 0d1f5b4e-8a4f-4e55-9c3e-0f4f0f4f0f4f\nstatus: stable\n\
                    description: d\nauthor: Quarry\ndate: 2026-11-23\ntags: [attack.execution, attack.t1609]\n\
                    logsource: {product: kubernetes, service: audit}\n\
                    detection: {sel: {verb: create, objectRef.subresource: exec}, condition: sel}\n\
                    falsepositives: [Operators debugging]\nlevel: medium\n\
                    falco: [Attach/Exec Pod]\nguardduty: [Execution:Kubernetes/ExecInKubeSystemPod]\n";
        let f = lint_text("r.yml", text);
        assert!(f.is_empty(), "{f:#?}");
    }
}
