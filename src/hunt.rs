//! `quarry hunt`: wiring of the detect crate's retro-hunt for the command line.

use crate::rules::{load, Output, RuleSources};
use anyhow::{bail, Context, Result};
use clap::Args;
use quarry_detect::hunt::{hunt, HuntOptions, HuntReport, RuleQuery};
use quarry_detect::lint::problem_finding;
use quarry_detect::{rule_files, Detector};
use quarry_transport::{HuntRequest, RuleText};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct HuntArgs {
    #[command(flatten)]
    on: crate::Where,
    #[command(flatten)]
    credentials: crate::Credentials,
    #[command(flatten)]
    master: crate::keys::MasterKeyArgs,
    /// Rule files or folders (repeatable). Without any, the built-in pack runs.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    #[command(flatten)]
    sources: RuleSources,
    #[command(flatten)]
    range: crate::TimeRange,
    /// Most matches printed (the earliest); the total is always reported.
    #[arg(long, default_value_t = 10_000)]
    max_hits: usize,
    /// Also list the matches of rules that only feed correlations (single failed logins, probe
    /// candidates); by default they are counted, and the correlations they feed are listed.
    #[arg(long)]
    base_matches: bool,
    /// Output: text, or json (one object per match: rule_id, title, level, tags, event).
    #[arg(long, value_enum, default_value = "text")]
    format: Output,
    /// Also print, per rule, the index query it ran as and how many events it read and matched.
    #[arg(long)]
    explain: bool,
}

pub fn run(a: HuntArgs) -> Result<()> {
    let report = match (&a.on.server, &a.on.data_dir) {
        (Some(url), _) => {
            let mut rules = Vec::new();
            for p in &a.rules {
                for file in rule_files(p)
                    .with_context(|| format!("cannot read rules at {}", p.display()))?
                {
                    let yaml = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    rules.push(RuleText {
                        origin: file.display().to_string(),
                        yaml,
                    });
                }
            }
            let v = a.credentials.client(url)?.hunt(&HuntRequest {
                rules,
                builtin: a.sources.builtin,
                span: a.range.span(),
                max_hits: Some(a.max_hits),
                base_matches: a.base_matches,
            })?;
            for p in v["problems"].as_array().into_iter().flatten() {
                eprintln!("{}", p.as_str().unwrap_or_default());
            }
            serde_json::from_value::<HuntReport>(v).context("unexpected hunt answer")?
        }
        (None, Some(dir)) => {
            let (from, to) = a.range.resolve(quarry_model::time::now_nanos())?;
            let set = load(&a.sources, &a.rules)?;
            let detector = Detector::new(&set);
            for p in detector.problems() {
                eprintln!("{}", problem_finding(p));
            }
            if detector.rules().is_empty() {
                bail!("no rules loaded");
            }
            let store = crate::open_for_reading(dir, &a.master)?;
            let report = hunt(
                &store,
                &set,
                &detector,
                &HuntOptions {
                    from,
                    to,
                    max_hits: a.max_hits,
                    base_matches: a.base_matches,
                    // Whoever can read the data directory can read everything in it; hunts read the logs.
                    scope: Some(
                        quarry_model::Scope::all()
                            .within(&quarry_model::Scope::stream_kinds(false)),
                    ),
                },
            );
            store.close()?;
            report?
        }
        (None, None) => bail!("give --server URL or --data-dir DIR"),
    };
    print(&a, &report)
}

fn print(a: &HuntArgs, report: &HuntReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for h in &report.hits {
        match a.format {
            Output::Json => writeln!(out, "{}", h.json())?,
            Output::Text => writeln!(out, "{}", h.line())?,
        }
    }
    if a.explain {
        for r in &report.rules {
            let query = match &r.query {
                RuleQuery::Filter(q) => q.as_str(),
                RuleQuery::Scan => "(every event of its log source)",
                RuleQuery::Nothing => "(nothing: a field it needs was never stored)",
            };
            eprintln!(
                "{:<38} read {:>9} matched {:>7}  {query}",
                r.rule_id, r.candidates, r.matches
            );
        }
    }
    let s = &report.scan;
    let through_index = report
        .rules
        .iter()
        .filter(|r| !matches!(r.query, RuleQuery::Scan))
        .count();
    eprintln!(
        "{} rules ({through_index} through the index) over {} events in {} partitions: read {} ({:.1}%), \
         {} matches{}, {:.0} ms",
        report.rules.len(),
        s.events_in_range,
        s.partitions,
        s.candidates,
        100.0 * s.candidates as f64 / s.events_in_range.max(1) as f64,
        report.total_hits,
        if (report.hits.len() as u64) < report.total_hits {
            format!(" ({} shown: --max-hits)", report.hits.len())
        } else {
            String::new()
        },
        s.elapsed_ms
    );
    Ok(())
}
