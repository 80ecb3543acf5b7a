//! `quarry rules test|lint|list`: wiring of the detect crate for people writing rules.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use quarry_detect::hunt::Hit;
use quarry_detect::lint::{lint_text, problem_finding, Finding, Severity};
use quarry_detect::{rule_files, Detector, RuleSet, Scratch};
use quarry_model::{Event, Kind, Source};
use quarry_parse::{decode_all, DecoderOptions, Format};
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum RulesCmd {
    /// Run rules over a file of events and print every (rule, event) match.
    ///
    /// The events are parsed as `quarry import` would (format detected, or --parser), e.g. Kubernetes
    /// audit events one JSON object per line, CloudTrail files, VPC flow logs, syslog lines.
    Test(TestArgs),
    /// Check rules: the Sigma specification, and what Quarry cannot load or feed. Exits 1 on errors.
    Lint(LintArgs),
    /// List the rules that load, with their id, level, log source and ATT&CK tags.
    List(ListArgs),
}

#[derive(Args)]
pub struct RuleSources {
    /// Include the built-in rule pack (the default when no rule folder is given).
    #[arg(long)]
    pub builtin: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    /// Lines for a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    sources: RuleSources,
    /// Parser of the events file: auto or one of container, cri, docker, audit, vpcflow, cloudtrail,
    /// syslog, journald, klog, json, logfmt, text.
    #[arg(long, default_value = "auto")]
    parser: Format,
    /// Treat the events as this source kind (default: the parser's).
    #[arg(long)]
    kind: Option<Kind>,
    /// Output: text, or json (one object per match: rule_id, title, level, tags, event, matched).
    #[arg(long, value_enum, default_value = "text")]
    format: Output,
    /// Rule files or folders, then the events file last.
    #[arg(required = true, value_name = "RULES... EVENTS_FILE")]
    paths: Vec<PathBuf>,
}

#[derive(Args)]
pub struct LintArgs {
    #[command(flatten)]
    sources: RuleSources,
    /// Output: text, or json (one finding per line).
    #[arg(long, value_enum, default_value = "text")]
    format: Output,
    /// Also print informational hints.
    #[arg(long)]
    all: bool,
    /// Rule files or folders.
    paths: Vec<PathBuf>,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    sources: RuleSources,
    /// Output: text, or json (one rule per line).
    #[arg(long, value_enum, default_value = "text")]
    format: Output,
    /// Rule files or folders.
    paths: Vec<PathBuf>,
}

pub fn run(cmd: RulesCmd) -> Result<()> {
    match cmd {
        RulesCmd::Test(a) => test(a),
        RulesCmd::Lint(a) => lint(a),
        RulesCmd::List(a) => list(a),
    }
}

/// The rule set named on the command line: the built-in pack when asked or when no path is given, plus
/// the paths.
pub(crate) fn load(sources: &RuleSources, paths: &[PathBuf]) -> Result<RuleSet> {
    let mut set = if sources.builtin || paths.is_empty() {
        RuleSet::builtin()
    } else {
        RuleSet::new()
    };
    for p in paths {
        set.add_path(p)?;
    }
    Ok(set)
}

/// Compiles the rules, reporting on stderr what did not load.
fn detector(sources: &RuleSources, paths: &[PathBuf]) -> Result<Detector> {
    let d = Detector::new(&load(sources, paths)?);
    for p in d.problems() {
        eprintln!("{}", problem_finding(p));
    }
    if d.rules().is_empty() {
        bail!("no rules loaded");
    }
    Ok(d)
}

fn test(a: TestArgs) -> Result<()> {
    let (events_file, rule_paths) = a.paths.split_last().expect("clap requires one path");
    let d = detector(&a.sources, rule_paths)?;
    let data = std::fs::read(events_file)
        .with_context(|| format!("cannot read {}", events_file.display()))?;
    let now = quarry_model::time::now_nanos();
    let (events, stats) = decode_all(a.parser, DecoderOptions::default(), &data, now);
    let mut scratch = Scratch::default();
    let mut matches = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut total = 0usize;
    let mut unparsed = 0usize;
    let mut emit = |hit: Hit| {
        total += 1;
        match a.format {
            Output::Json => writeln!(out, "{}", hit.json()),
            Output::Text => writeln!(out, "{}", hit.line()),
        }
    };
    // Correlations see every match in event-time order once the whole file is read.
    let mut correlator = d.correlator(0);
    for ev in &events {
        unparsed += ev.parse_error.is_some() as usize;
        let kind = a.kind.unwrap_or_else(|| kind_of(ev));
        let source = Source::of_kind(kind);
        matches.clear();
        d.detect(&source, ev, &mut scratch, &mut matches);
        let mut for_correlation = Vec::new();
        for m in &mut matches {
            emit(Hit::of_match(&d, m, &source, ev))?;
            for_correlation.extend(m.result.take());
        }
        if let (Some(c), false) = (&mut correlator, for_correlation.is_empty()) {
            c.push(&source, ev, for_correlation, 0);
        }
    }
    if let Some(c) = &mut correlator {
        for hit in Hit::first_firings(&c.release(d.field_table(), 0, true)) {
            emit(hit)?;
        }
    }
    eprintln!(
        "{} events ({} unparsed, kept as text), {} rules, {total} matches",
        events.len(),
        unparsed.max(stats.parse_errors as usize),
        d.rules().len()
    );
    Ok(())
}

/// The source kind of an event by the parser that read it.
fn kind_of(ev: &Event) -> Kind {
    ev.format
        .parse::<Format>()
        .map(Format::kind)
        .unwrap_or(Kind::Text)
}

fn lint(a: LintArgs) -> Result<()> {
    let mut findings: Vec<Finding> = Vec::new();
    if a.sources.builtin || a.paths.is_empty() {
        for (path, text) in RuleSet::builtin_files() {
            findings.extend(lint_text(&format!("builtin:{path}"), text));
        }
    }
    for p in &a.paths {
        for file in
            rule_files(p).with_context(|| format!("cannot read rules at {}", p.display()))?
        {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            findings.extend(lint_text(&file.display().to_string(), &text));
        }
    }
    let d = Detector::new(&load(&a.sources, &a.paths)?);
    findings.extend(d.problems().iter().map(problem_finding));
    findings.retain(|f| a.all || f.severity != Severity::Info);
    findings.sort_by(|x, y| (&x.origin, x.line).cmp(&(&y.origin, y.line)));
    let mut out = std::io::stdout().lock();
    for f in &findings {
        match a.format {
            Output::Json => writeln!(out, "{}", serde_json::to_string(f)?)?,
            Output::Text => writeln!(out, "{f}")?,
        }
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let unsupported = d
        .problems()
        .iter()
        .filter(|p| p.kind == quarry_detect::ProblemKind::Unsupported)
        .count();
    eprintln!(
        "{} rules load; {} errors, {} warnings ({unsupported} rules for logs Quarry does not collect)",
        d.rules().len(),
        count(Severity::Error),
        count(Severity::Warning),
    );
    match count(Severity::Error) {
        0 => Ok(()),
        n => bail!("{n} errors in the rules"),
    }
}

fn list(a: ListArgs) -> Result<()> {
    let d = detector(&a.sources, &a.paths)?;
    let mut out = std::io::stdout().lock();
    for r in d.rules() {
        match a.format {
            Output::Json => writeln!(out, "{}", serde_json::to_string(r)?)?,
            Output::Text => {
                let attack: Vec<&str> = r
                    .tags
                    .iter()
                    .filter(|t| t.starts_with("attack.t"))
                    .map(|t| &t["attack.".len()..])
                    .collect();
                writeln!(
                    out,
                    "{:<13} {:<38} {} ({})",
                    r.level.as_str(),
                    r.id,
                    r.title,
                    attack.join(",")
                )?;
            }
        }
    }
    Ok(())
}
