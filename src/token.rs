//! `quarry token`: API tokens for people and programs (see `quarry_trust::auth`).

use anyhow::Result;
use clap::{Args, Subcommand};
use quarry_trust::auth::{AuthDir, NewToken, Role};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (once: only its hash is stored). Use it as
    /// `Authorization: Bearer TOKEN`, or with --token / QUARRY_TOKEN in Quarry's commands.
    ///
    /// Roles: admin (everything), analyst (queries, hunts, alerts; scoped by --namespaces), auditor (the
    /// access audit only), ingest (send logs). A running server sees the new token at once and records
    /// its creation in the access audit.
    Create(CreateArgs),
    /// List tokens (never their secrets).
    List(DirArgs),
    /// Revoke a token by id (takes effect at once on a running server).
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub struct DirArgs {
    /// The server's data directory.
    #[arg(long, env = "QUARRY_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// admin, analyst, auditor or ingest.
    #[arg(long)]
    role: Role,
    /// Kubernetes namespaces the token may see, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    namespaces: Option<Vec<String>>,
    /// With --namespaces: also see cluster-scoped events (node logs, VPC flows, CloudTrail, audit events on
    /// cluster-scoped resources).
    #[arg(long)]
    cluster: bool,
    /// A name for people, e.g. alice or ci-importer [default: the role].
    #[arg(long)]
    name: Option<String>,
    /// Lifetime, e.g. 30d, 12h.
    #[arg(long, default_value = "90d")]
    expires: String,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The token's id (see `quarry token list`).
    id: String,
}

pub fn run(cmd: TokenCmd) -> Result<()> {
    let now = quarry_model::time::now_nanos();
    match cmd {
        TokenCmd::Create(a) => {
            let lifetime_ns = quarry_query::parse_duration(&a.expires).ok_or_else(|| {
                anyhow::anyhow!(
                    "--expires {:?}: expected a duration such as 90d or 12h",
                    a.expires
                )
            })?;
            let (token, rec) = AuthDir::of(&a.dir.data_dir).create_token(
                &NewToken {
                    name: a.name.unwrap_or_else(|| a.role.to_string()),
                    role: a.role,
                    namespaces: a.namespaces,
                    cluster: a.cluster,
                    lifetime_ns,
                },
                now,
            )?;
            crate::record_change(
                &a.dir.data_dir,
                "token created",
                format!("id={} role={}", rec.id, rec.role),
                &["auth/tokens.json", "auth/.lock"],
            );
            eprintln!(
                "token {} ({}, role {}) expires {}",
                rec.id,
                rec.name,
                rec.role,
                quarry_model::time::format_rfc3339_nanos(rec.expires_ns)
            );
            println!("{token}");
        }
        TokenCmd::List(a) => {
            let file = AuthDir::of(&a.data_dir).tokens()?;
            println!(
                "{:<12}  {:<16}  {:<8}  {:<20}  {:<8}  EXPIRES",
                "ID", "NAME", "ROLE", "NAMESPACES", "STATUS"
            );
            for t in &file.tokens {
                let ns = match &t.namespaces {
                    None => "*".to_string(),
                    Some(v) => {
                        format!("{}{}", v.join(","), if t.cluster { "+cluster" } else { "" })
                    }
                };
                println!(
                    "{:<12}  {:<16}  {:<8}  {:<20}  {:<8}  {}",
                    t.id,
                    t.name,
                    t.role,
                    ns,
                    t.status(now),
                    quarry_model::time::format_rfc3339_nanos(t.expires_ns)
                );
            }
        }
        TokenCmd::Revoke(a) => {
            let rec = AuthDir::of(&a.dir.data_dir).revoke_token(&a.id, now)?;
            crate::record_change(
                &a.dir.data_dir,
                "token revoked",
                format!("id={}", rec.id),
                &["auth/tokens.json", "auth/.lock"],
            );
            println!("revoked token {} ({})", rec.id, rec.name);
        }
    }
    Ok(())
}
