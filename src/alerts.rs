//! `quarry alerts`: list alerts and move them through their lifecycle, on a server or a data directory.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use quarry_detect::alerts::{alert_json, AlertFilter, AlertState, AlertStore};
use quarry_transport::Client;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct AlertsArgs {
    /// URL of a running server, e.g. http://127.0.0.1:7700.
    #[arg(long, env = "QUARRY_SERVER", global = true)]
    server: Option<String>,
    /// Data directory to read directly (changing an alert this way needs the server stopped).
    #[arg(long, global = true, conflicts_with = "server")]
    data_dir: Option<PathBuf>,
    /// Output: table, or json (one alert per line: rule_id, title, level, tags, event, state, ...).
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: Output,
    /// Only alerts in this state (open, acknowledged, closed).
    #[arg(long)]
    state: Option<String>,
    /// Only alerts at this level or above (informational, low, medium, high, critical).
    #[arg(long)]
    min_level: Option<String>,
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
        (Some(url), _) => On::Server(Client::new(url)?),
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
                let _lock = lock_data_dir(dir)?;
                let store = AlertStore::open(&dir.join("alerts"))?;
                let now = quarry_model::time::now_nanos();
                Ok(alert_json(
                    &store.transition(&c.id, state, &by, c.note, now)?,
                    true,
                ))
            }
        }
    };
    match a.action {
        Some(Action::Show { id }) => {
            let alert = match &on {
                On::Server(client) => client.alert(&id)?,
                On::Dir(dir) => {
                    let store = AlertStore::open(&dir.join("alerts"))?;
                    alert_json(
                        &store.get(&id).with_context(|| format!("no alert {id:?}"))?,
                        true,
                    )
                }
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&alert)?)?;
        }
        Some(Action::Ack(c)) => print_one(&mut out, &change(c, AlertState::Acknowledged)?)?,
        Some(Action::Close(c)) => print_one(&mut out, &change(c, AlertState::Closed)?)?,
        Some(Action::Reopen(c)) => print_one(&mut out, &change(c, AlertState::Open)?)?,
        None => {
            let state = a
                .state
                .as_deref()
                .map(str::parse::<AlertState>)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let alerts = match &on {
                On::Server(client) => {
                    let mut q = Vec::new();
                    if let Some(s) = state {
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
                On::Dir(dir) => {
                    let store = AlertStore::open(&dir.join("alerts"))?;
                    store
                        .list(&AlertFilter {
                            state,
                            rule_id: a.rule.clone(),
                            min_level: a.min_level.clone(),
                            since: None,
                        })
                        .iter()
                        .map(|x| alert_json(x, false))
                        .collect()
                }
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
                        "{:<20} {:<12} {:<9} {:<24} {:>6}  TITLE (ENTITY)",
                        "ID", "STATE", "LEVEL", "FIRST SEEN", "EVENTS"
                    )?;
                    for x in &alerts {
                        print_row(&mut out, x)?;
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

fn print_row(out: &mut impl Write, x: &serde_json::Value) -> Result<()> {
    let s = |k: &str| x[k].as_str().unwrap_or("").to_string();
    let first = x["first_seen"]
        .as_i64()
        .map(quarry_model::time::format_rfc3339_millis)
        .unwrap_or_default();
    let entity = s("dedup_key")
        .split_once('|')
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    writeln!(
        out,
        "{:<20} {:<12} {:<9} {:<24} {:>6}  {} ({})",
        s("id"),
        s("state"),
        s("level"),
        first,
        x["count"].as_u64().unwrap_or(0),
        s("title"),
        entity
    )?;
    Ok(())
}

/// Takes the data directory's lock, so an alert is not changed behind a running server's back.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .with_context(|| format!("cannot open {}", dir.join("LOCK").display()))?;
    if f.try_lock().is_err() {
        bail!(
            "a server holds {}; change alerts through it with --server URL",
            dir.display()
        );
    }
    Ok(f)
}
