//! `quarry alerts`: list alerts and move them through their lifecycle, on a server or a data directory.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use quarry_detect::alerts::{alert_json, Alert, AlertFilter, AlertState, AlertStore};
use quarry_detect::Level;
use quarry_transport::Client;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct AlertsArgs {
    /// URL of a running server, e.g. http://127.0.0.1:7700.
    #[arg(long, env = "QUARRY_SERVER", global = true)]
    server: Option<String>,
    /// Data directory to read directly (changing an alert this way needs the server stopped).
    #[arg(long, global = true, conflicts_with = "server")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    credentials: crate::Credentials,
    /// Output: table, or json (one alert per line: rule_id, title, level, tags, event, state, ...).
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: Output,
    /// Only alerts in this state (open, acknowledged, closed).
    #[arg(long)]
    state: Option<AlertState>,
    /// Only alerts at this level or above (informational, low, medium, high, critical).
    #[arg(long)]
    min_level: Option<Level>,
    /// Only alerts of this rule id.
    #[arg(long)]
    rule: Option<String>,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Action {
    /// Show one alert with all its evidence and history (JSON).
    Show { id: String },
    /// Acknowledge an alert: someone is on it.
    Ack(Change),
    /// Close an alert (resolved or a false positive).
    Close(Change),
    /// Open a closed or acknowledged alert again.
    Reopen(Change),
}

#[derive(Args)]
struct Change {
    /// The alert's id (a-...).
    id: String,
    /// Why, kept in the alert's history.
    #[arg(long)]
    note: Option<String>,
    /// Who is making the change [default: $USER].
    #[arg(long)]
    by: Option<String>,
}

/// Where the alerts are.
enum On {
    Server(Client),
    Dir(PathBuf),
}

pub fn run(a: AlertsArgs) -> Result<()> {
    let on = match (&a.server, &a.data_dir) {
        (Some(url), _) => On::Server(a.credentials.client(url)?),
        (None, Some(dir)) => On::Dir(dir.clone()),
        (None, None) => bail!("give --server URL or --data-dir DIR"),
    };
    let mut out = std::io::stdout().lock();
    let change = |c: Change, state: AlertState| -> Result<serde_json::Value> {
        let by =
            c.by.or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
        match &on {
            On::Server(client) => {
                Ok(client.update_alert(&c.id, state_name(state), c.note.as_deref(), &by)?)
            }
            On::Dir(dir) => {
                let lock = quarry_store::lock_data_dir(dir).map_err(|e| match e {
                    quarry_store::StoreError::Locked(_) => anyhow::anyhow!(
                        "a server holds {}; change alerts through it with --server URL",
                        dir.display()
                    ),
                    e => e.into(),
                })?;
                let store = journal(dir)?.with_context(|| format!("no alert {:?}", c.id))?;
                let now = quarry_model::time::now_nanos();
                let changed = alert_json(&store.transition(&c.id, state, &by, c.note, now)?, true);
                drop(lock);
                crate::record_change(
                    dir,
                    "alert changed",
                    format!("{} -> {} by {by}", c.id, state_name(state)),
                    &["alerts/alerts.jsonl"],
                );
                Ok(changed)
            }
        }
    };
    match a.action {
        Some(Action::Show { id }) => {
            let alert = match &on {
                On::Server(client) => client.alert(&id)?,
                On::Dir(dir) => {
                    let found = journal(dir)?.and_then(|s| s.get(&id));
                    alert_json(&found.with_context(|| format!("no alert {id:?}"))?, true)
                }
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&alert)?)?;
        }
        Some(Action::Ack(c)) => print_one(&mut out, &change(c, AlertState::Acknowledged)?)?,
        Some(Action::Close(c)) => print_one(&mut out, &change(c, AlertState::Closed)?)?,
        Some(Action::Reopen(c)) => print_one(&mut out, &change(c, AlertState::Open)?)?,
        None => {
            let alerts = match &on {
                On::Server(client) => {
                    let mut q = Vec::new();
                    if let Some(s) = a.state {
                        q.push(format!("state={}", state_name(s)));
                    }
                    if let Some(l) = &a.min_level {
                        q.push(format!("min_level={l}"));
                    }
                    if let Some(r) = &a.rule {
                        q.push(format!("rule_id={r}"));
                    }
                    client.alerts(&q.join("&"))?
                }
                On::Dir(dir) => journal(dir)?
                    .map(|store| {
                        store.list(&AlertFilter {
                            state: a.state,
                            rule_id: a.rule.clone(),
                            min_level: a.min_level,
                            since: None,
                        })
                    })
                    .unwrap_or_default()
                    .iter()
                    .map(|x| alert_json(x, false))
                    .collect(),
            };
            match a.format {
                Output::Json => {
                    for x in &alerts {
                        writeln!(out, "{x}")?;
                    }
                }
                Output::Table => {
                    writeln!(
                        out,
                        "{:<20} {:<12} {:<13} {:<24} {:>6}  TITLE (ENTITY)",
                        "ID", "STATE", "LEVEL", "FIRST SEEN", "EVENTS"
                    )?;
                    for x in &alerts {
                        let alert: Alert = serde_json::from_value(x.clone())
                            .context("the server sent an alert this client cannot read")?;
                        print_row(&mut out, &alert)?;
                    }
                    eprintln!("{} alerts", alerts.len());
                }
            }
        }
    }
    Ok(())
}

fn state_name(s: AlertState) -> &'static str {
    match s {
        AlertState::Open => "open",
        AlertState::Acknowledged => "acknowledged",
        AlertState::Closed => "closed",
    }
}

fn print_one(out: &mut impl Write, alert: &serde_json::Value) -> Result<()> {
    writeln!(
        out,
        "{} is now {}",
        alert["id"].as_str().unwrap_or("?"),
        alert["state"].as_str().unwrap_or("?")
    )?;
    Ok(())
}

fn print_row(out: &mut impl Write, a: &Alert) -> Result<()> {
    writeln!(
        out,
        "{:<20} {:<12} {:<13} {:<24} {:>6}  {} ({})",
        a.id,
        state_name(a.state),
        a.level.as_str(),
        quarry_model::time::format_rfc3339_millis(a.first_seen),
        a.count,
        a.title,
        a.entity()
    )?;
    Ok(())
}

/// The alert journal of a data directory, read where it lies: `None` when nothing was raised there yet, an
/// error when the directory does not exist (a mistyped path must not look like "no alerts").
fn journal(dir: &Path) -> Result<Option<AlertStore>> {
    if !dir.is_dir() {
        bail!("{} is not a data directory", dir.display());
    }
    let alerts = dir.join("alerts");
    if !alerts.join("alerts.jsonl").exists() {
        return Ok(None);
    }
    Ok(Some(AlertStore::open(&alerts)?))
}
