//! `quarry certs`: wiring of the trust crate's certificate making for the command line.

use anyhow::Result;
use clap::{Args, Subcommand};
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
    }
}
