//! `quarry keys` and the master key options: wiring of encryption at rest (the trust crate's keyring and
//! master keys, the store's encrypted WAL and partitions) for the command line.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quarry_store::crypt::EncryptionConfig;
use quarry_trust::keys::{keyring_path, KeyWrapper, Keyring, MasterKey, MASTER_KEY_ENV};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where the master key for encryption at rest comes from: `--master-key-file` (or
/// `QUARRY_MASTER_KEY_FILE`), or the key itself in `QUARRY_MASTER_KEY`.
#[derive(Args, Debug, Clone, Default)]
pub struct MasterKeyArgs {
    /// File holding the master key for encryption at rest: 64 hex digits, the base64 of 32 bytes, or 32
    /// raw bytes (`quarry keys generate` makes one; keep it off the data disk, mode 0600). The key itself
    /// may instead be given in QUARRY_MASTER_KEY. A new data directory opened with a key is encrypted;
    /// an encrypted one cannot be opened without its key, and a plaintext one not with a key.
    #[arg(
        long = "master-key-file",
        env = "QUARRY_MASTER_KEY_FILE",
        value_name = "FILE"
    )]
    pub master_key_file: Option<PathBuf>,
}

impl MasterKeyArgs {
    /// The master key given, if any (warns if its file can be read by other users).
    pub fn wrapper(&self) -> Result<Option<Arc<dyn KeyWrapper>>> {
        let from_env = MasterKey::from_env()?;
        let key = match (&self.master_key_file, from_env) {
            (Some(_), Some(_)) => bail!(
                "the master key is given twice: by --master-key-file (or QUARRY_MASTER_KEY_FILE) and by {MASTER_KEY_ENV}; give one"
            ),
            (Some(path), None) => {
                if let Some(w) = MasterKey::file_permission_warning(path) {
                    tracing::warn!("{w}");
                }
                MasterKey::from_file(path)?
            }
            (None, Some(k)) => k,
            (None, None) => return Ok(None),
        };
        Ok(Some(Arc::new(key)))
    }

    /// The store's encryption settings for the master key given (`None`: no key, plaintext store).
    pub fn encryption(&self) -> Result<Option<EncryptionConfig>> {
        Ok(self.wrapper()?.map(EncryptionConfig::new))
    }
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Rewrap every data key of a data directory with a new master key; no data is rewritten.
    ///
    /// The current key comes from --master-key-file or QUARRY_MASTER_KEY. Stop the server first (this
    /// takes the data directory's lock). The keyring is replaced atomically: if anything fails, the old
    /// key still opens everything. Afterwards only the new key opens the data directory; keep it, and
    /// destroy the old one once backups that need it have expired.
    Rotate(RotateArgs),
    /// Write a new random 256-bit master key to a file (hex, mode 0600); never overwrites a file.
    Generate(GenerateArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    /// Data directory whose keys to rewrap.
    #[arg(long, env = "QUARRY_DATA_DIR")]
    data_dir: PathBuf,
    /// File with the new master key (see `quarry keys generate`).
    #[arg(long, value_name = "FILE")]
    new_key_file: PathBuf,
    #[command(flatten)]
    master: MasterKeyArgs,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// File to write the key to (must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(crate) fn run_keys(cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Generate(a) => {
            let key = MasterKey::generate_file(&a.out)?;
            println!(
                "wrote a new master key to {} (id {}); keep it away from the data it protects",
                a.out.display(),
                key.id()
            );
            Ok(())
        }
        KeysCmd::Rotate(a) => rotate(a),
    }
}

fn rotate(a: RotateArgs) -> Result<()> {
    let path = keyring_path(&a.data_dir);
    if !path.exists() {
        bail!(
            "{} has no keyring ({}): it is not encrypted, there is nothing to rotate",
            a.data_dir.display(),
            path.display()
        );
    }
    let old = a.master.wrapper()?.with_context(|| {
        format!("give the current master key with --master-key-file or {MASTER_KEY_ENV}")
    })?;
    if let Some(w) = MasterKey::file_permission_warning(&a.new_key_file) {
        tracing::warn!("{w}");
    }
    let new: Arc<dyn KeyWrapper> = Arc::new(MasterKey::from_file(&a.new_key_file)?);
    if new.id() == old.id() {
        bail!(
            "the new key is the current key ({}); generate another with `quarry keys generate`",
            old.id()
        );
    }
    let lock = quarry_store::lock_data_dir(&a.data_dir)?;
    let ring = Keyring::open(&path, old.clone())?;
    let total = ring.len();
    eprintln!(
        "rewrapping {total} data keys of {} from master key {} to {}",
        a.data_dir.display(),
        old.id(),
        new.id()
    );
    let started = Instant::now();
    let mut last_report = Instant::now();
    let n = ring.rotate(&*old, new.clone(), &mut |done, total| {
        if last_report.elapsed().as_secs() >= 2 {
            last_report = Instant::now();
            eprintln!("  {done}/{total}");
        }
    })?;
    drop(lock);
    crate::record_change(
        &a.data_dir,
        "master key rotated",
        format!("{} -> {}, {n} data keys rewrapped", old.id(), new.id()),
        &["keys/keyring.json"],
    );
    println!(
        "rotated: {n} data keys now wrapped by master key {} (was {}), in {:.1} s; no data was rewritten. The old key no longer opens {}.",
        new.id(),
        old.id(),
        started.elapsed().as_secs_f64(),
        a.data_dir.display()
    );
    Ok(())
}
