//! `quarry verify`: checks a data directory against its integrity chain (see `quarry_store::integrity`
//! and `quarry_trust::chain` for what it proves). Prints the findings grouped by category and a summary;
//! returns an error (exit status 1) when anything was found or the check could not run, `Ok` (exit 0)
//! only when the chain is intact and covers every file.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use quarry_store::integrity::{self, Anchor, VerifyOptions};
use quarry_trust::chain::{format_time, Category, Finding, Report};
use std::path::PathBuf;

#[derive(Args)]
pub struct VerifyArgs {
    /// Data directory to check (a running server's too: what it wrote after its last digest is reported
    /// as pending, not as tampering).
    #[arg(long, env = "QUARRY_DATA_DIR")]
    data_dir: PathBuf,
    /// Report time gaps, and anomalies the chain recorded, only from this time on: a duration ago (7d,
    /// 12h) or an instant (RFC 3339, YYYY-MM-DD, epoch seconds). Signatures and links are always checked
    /// from the first digest.
    #[arg(long)]
    since: Option<String>,
    /// The public key to trust (the file `keys/signing.pub` holds, kept somewhere the server cannot
    /// write). Default: the data directory's own key, which proves only that the chain is consistent.
    #[arg(long, env = "QUARRY_INTEGRITY_PUBLIC_KEY")]
    public_key: Option<PathBuf>,
    /// A head printed by an earlier verify (`SEQ:SIGNATURE`): the chain must still contain that digest,
    /// which detects the last digests deleted back to an earlier clean stop.
    #[arg(long)]
    anchor: Option<String>,
    /// Master key of an encrypted data directory: needed to recompute the events' Merkle roots; file
    /// hashes are checked without it.
    #[command(flatten)]
    master: crate::keys::MasterKeyArgs,
    /// Print the report as JSON instead.
    #[arg(long)]
    json: bool,
}

/// Runs `quarry verify`: `Ok` only when nothing was found.
pub fn run(a: VerifyArgs) -> Result<()> {
    let now = quarry_model::time::now_nanos();
    let since = match &a.since {
        Some(s) => Some(quarry_query::parse_instant(s, now).ok_or_else(|| {
            anyhow!("cannot read --since {s:?}: use a duration such as 7d or 12h, RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or epoch seconds")
        })?),
        None => None,
    };
    let anchor = match &a.anchor {
        Some(s) => Some(parse_anchor(s)?),
        None => None,
    };
    let opts = VerifyOptions {
        public_key: a.public_key.clone(),
        since,
        anchor,
        encryption: a.master.encryption()?,
        gap_slack: None,
    };
    let report = integrity::verify_with(&a.data_dir, &opts)
        .with_context(|| format!("cannot verify {}", a.data_dir.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&a, &report);
    }
    if report.is_clean() {
        Ok(())
    } else {
        bail!(
            "verification failed: {} finding{} ({})",
            report.findings.len(),
            if report.findings.len() == 1 { "" } else { "s" },
            summary(&report)
        )
    }
}

fn parse_anchor(s: &str) -> Result<Anchor> {
    let (seq, signature) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("--anchor {s:?}: expected SEQ:SIGNATURE as verify prints it"))?;
    let seq = seq
        .trim()
        .parse()
        .map_err(|_| anyhow!("--anchor {s:?}: {seq:?} is not a sequence number"))?;
    Ok(Anchor {
        seq,
        signature: signature.trim().to_string(),
    })
}

fn summary(r: &Report) -> String {
    r.counts()
        .iter()
        .map(|(c, n)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_report(a: &VerifyArgs, r: &Report) {
    println!("data directory  {}", a.data_dir.display());
    match &r.head {
        Some(h) => println!(
            "chain           {} digest{}, last #{} ({}, {})",
            r.digests,
            if r.digests == 1 { "" } else { "s" },
            h.seq,
            h.kind.as_str(),
            format_time(h.time_ns)
        ),
        None => println!("chain           no digest"),
    }
    println!(
        "key             {}… {}",
        r.key_id.get(..16).unwrap_or(&r.key_id),
        if r.key_from_data_dir {
            "(the data directory's own: proves the chain is consistent, not who wrote it; pass --public-key)"
        } else {
            "(given)"
        }
    );
    println!(
        "checked         {} files, {} hashed, {} segments and {} events recomputed",
        r.files,
        human_bytes(r.bytes),
        r.segments,
        r.events
    );
    println!(
        "server          {}",
        if r.server_running {
            "running: what it wrote after its last digest is pending"
        } else {
            "not running: every file must be covered"
        }
    );
    for info in &r.info {
        println!("note            {info}");
    }
    if !r.notes.is_empty() {
        println!("\nrecorded changes");
        for n in &r.notes {
            println!(
                "  #{} {}  {}{}",
                n.seq,
                format_time(n.time_ns),
                n.note.what,
                if n.note.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", n.note.detail)
                }
            );
        }
    }
    for c in Category::ALL {
        let group: Vec<&Finding> = r.findings.iter().filter(|f| f.category == c).collect();
        if group.is_empty() {
            continue;
        }
        println!("\n{} ({})", c.as_str().to_uppercase(), group.len());
        for f in group {
            println!("  {}: {}", f.path, f.detail);
        }
    }
    if !r.pending.is_empty() {
        println!("\npending, not covered yet ({})", r.pending.len());
        for f in r.pending.iter().take(20) {
            println!("  {}: {}", f.path, f.detail);
        }
        if r.pending.len() > 20 {
            println!("  … and {} more", r.pending.len() - 20);
        }
    }
    println!();
    if r.is_clean() {
        println!("OK: the chain is intact and covers every file");
    } else {
        println!(
            "FAILED: {} finding{} ({})",
            r.findings.len(),
            if r.findings.len() == 1 { "" } else { "s" },
            summary(r)
        );
    }
    if let Some(h) = &r.head {
        println!(
            "anchor for a later check (keep it elsewhere): --anchor {}:{}",
            h.seq, h.signature
        );
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
