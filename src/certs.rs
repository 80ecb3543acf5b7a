//! `quarry certs`: wiring of the trust crate's certificate making for the command line.

use anyhow::Result;
use clap::{Args, Subcommand};
use quarry_trust::auth::{AuthDir, Revocation};
use quarry_trust::certs::{init, InitOptions};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CertsCmd {
    /// Create a CA, a server certificate and per-node agent certificates (for a test or small setup).
    ///
    /// Writes ca.pem, ca-key.pem, server.pem, server-key.pem and, per --node, agent-NAME.pem and
    /// agent-NAME-key.pem (keys with mode 0600). The server certificate names localhost, 127.0.0.1 and
    /// ::1 plus every --server-name; an agent certificate names its node (common name and DNS name), which
    /// is how the server will know which node sends. Keep ca-key.pem offline once done.
    Init(InitArgs),
    /// Revoke agent certificates: one certificate (--cert), or every certificate naming a node issued up
    /// to now (--node; a certificate issued for it later works).
    ///
    /// Takes effect at once on a running server: open connections with the certificate are refused from
    /// their next request, new ones fail the TLS handshake.
    Revoke(RevokeArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["node", "cert"])))]
pub struct RevokeArgs {
    /// The server's data directory.
    #[arg(long, env = "QUARRY_DATA_DIR")]
    data_dir: PathBuf,
    /// The node whose certificates are revoked.
    #[arg(long)]
    node: Option<String>,
    /// The certificate (PEM) to revoke.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Why (kept in the revocation list).
    #[arg(long, default_value = "")]
    reason: String,
}

#[derive(Args)]
pub struct InitArgs {
    /// Folder to write to (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// A node to issue an agent certificate for (repeatable), e.g. ip-10-0-1-2.ec2.internal.
    #[arg(long = "node", value_name = "NAME")]
    nodes: Vec<String>,
    /// Another name the server is reached by (repeatable): a DNS name or an address.
    #[arg(long = "server-name", value_name = "NAME")]
    server_names: Vec<String>,
    /// Validity of the server and agent certificates in days (the CA's is ten times longer).
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: CertsCmd) -> Result<()> {
    match cmd {
        CertsCmd::Init(a) => {
            let files = init(&InitOptions {
                out: a.out,
                server_names: a.server_names,
                nodes: a.nodes,
                days: a.days,
                force: a.force,
            })?;
            for f in files {
                println!("{}", f.display());
            }
            Ok(())
        }
        CertsCmd::Revoke(a) => {
            let serial = match &a.cert {
                Some(path) => {
                    let certs = quarry_trust::tls::load_certs(path)?;
                    let info = quarry_trust::x509::parse_cert(&certs[0])
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    println!(
                        "revoking certificate {} of {}",
                        info.serial,
                        info.node().unwrap_or("?")
                    );
                    Some(info.serial)
                }
                None => None,
            };
            let rev = Revocation {
                serial,
                node: a.node.clone(),
                revoked_ns: quarry_model::time::now_nanos(),
                reason: a.reason,
            };
            let dir = AuthDir::of(&a.data_dir);
            let detail = format!("node={:?} serial={:?}", rev.node, rev.serial);
            dir.revoke_certificate(rev)?;
            crate::record_change(
                &a.data_dir,
                "certificate revoked",
                detail,
                &["auth/revoked.json", "auth/.lock"],
            );
            if let Some(node) = a.node {
                println!("revoked every certificate of node {node} issued up to now");
            }
            println!("recorded in {}", dir.revoked_path().display());
            Ok(())
        }
    }
}
