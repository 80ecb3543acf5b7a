//! `quarry hold`: legal holds that retention must respect (see `quarry_store::hold`).

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use quarry_model::time::format_rfc3339_nanos;
use quarry_model::Kind;
use quarry_store::hold::{holds_path, Hold, Holds};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum HoldCmd {
    /// Place a hold: retention keeps every day of these kinds that overlaps the range, whatever its
    /// rules, until the hold is released. A running server sees it at its next retention pass.
    ///
    /// Example: quarry hold add --data-dir /var/lib/quarry --name case-4711 --kind audit --kind cloudtrail
    /// --from 2026-01-01 --to 2026-03-31 --reason "HHS inquiry"
    Add(AddArgs),
    /// List the holds in force.
    List(DirArgs),
    /// Release a hold by name; what it kept is deleted at the next retention pass if the rules say so.
    Release(ReleaseArgs),
}

#[derive(Args)]
pub struct DirArgs {
    /// The server's data directory.
    #[arg(long, env = "QUARRY_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct AddArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// A name for the hold: a case or ticket id.
    #[arg(long)]
    name: String,
    /// A kind to hold (repeatable) [default: every kind].
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<Kind>,
    /// Start of the held range: RFC 3339, a date, epoch seconds, or a duration ago (90d) [default: the
    /// beginning].
    #[arg(long)]
    from: Option<String>,
    /// End of the held range, same forms [default: no end].
    #[arg(long)]
    to: Option<String>,
    /// Why (kept with the hold).
    #[arg(long)]
    reason: String,
}

#[derive(Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The hold's name.
    name: String,
}

pub fn run(cmd: HoldCmd) -> Result<()> {
    let now = quarry_model::time::now_nanos();
    match cmd {
        HoldCmd::Add(a) => {
            let (from_ns, to_ns) =
                quarry_query::parse_time_range(None, a.from.as_deref(), a.to.as_deref(), now)?;
            let hold = Hold {
                name: a.name,
                kinds: a.kinds,
                from_ns,
                to_ns,
                reason: a.reason,
                created_ns: now,
            };
            Holds::add(&a.dir.data_dir, hold.clone())?;
            crate::record_change(
                &a.dir.data_dir,
                "legal hold placed",
                format!("{} ({})", hold.name, describe(&hold)),
                &["holds.json"],
            );
            println!("hold {} placed: {}", hold.name, describe(&hold));
        }
        HoldCmd::List(a) => {
            let holds = Holds::load(&a.data_dir)?;
            if holds.holds.is_empty() {
                println!("no holds in {}", holds_path(&a.data_dir).display());
            }
            for h in &holds.holds {
                println!(
                    "{}: {} (placed {}): {}",
                    h.name,
                    describe(h),
                    format_rfc3339_nanos(h.created_ns),
                    h.reason
                );
            }
        }
        HoldCmd::Release(a) => {
            let hold = Holds::release(&a.dir.data_dir, &a.name)
                .map_err(|e| anyhow!("{e} (see `quarry hold list`)"))?;
            crate::record_change(
                &a.dir.data_dir,
                "legal hold released",
                format!("{} ({})", hold.name, describe(&hold)),
                &["holds.json"],
            );
            println!("hold {} released", hold.name);
        }
    }
    Ok(())
}

/// What a hold covers, for people.
fn describe(h: &Hold) -> String {
    let kinds = if h.kinds.is_empty() {
        "every kind".to_string()
    } else {
        h.kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let end = |ns: i64, open: i64, word: &str| {
        if ns == open {
            word.to_string()
        } else {
            format_rfc3339_nanos(ns)
        }
    };
    format!(
        "{kinds} from {} to {}",
        end(h.from_ns, i64::MIN, "the beginning"),
        end(h.to_ns, i64::MAX, "no end")
    )
}
