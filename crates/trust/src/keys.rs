//! Keys for encryption at rest: the master key and the keyring of per-file data keys.
//!
//! Envelope encryption: every encrypted file (a WAL file, the files of one tantivy segment, a partition's
//! metadata) has its own random 256-bit *data key*. Data keys are stored only *wrapped* (encrypted) by a
//! *master key*, in the [`Keyring`] at `<data_dir>/keys/keyring.json`. The master key itself is never
//! stored in the data directory: it comes from a file or the `QUARRY_MASTER_KEY` environment variable
//! ([`MasterKey`]), or, through the [`KeyWrapper`] trait, from a key management service.
//!
//! This gives three operations that never rewrite data:
//! - rotation ([`Keyring::rotate`]): every data key is unwrapped with the old master key and wrapped with
//!   the new one; one atomic rewrite of the keyring, whatever the size of the data.
//! - crypto-shredding ([`Keyring::shred_ids`], [`Keyring::shred_prefix`]): once a data key is removed
//!   from the keyring, the data it encrypted is unreadable, even from a backup or snapshot of the disk
//!   taken before the files were deleted (as long as the keyring of that backup is not kept as well).
//! - a wrong master key is recognised before anything is decrypted: the keyring records the id of the
//!   master key that wrapped it, and holds a wrapped check value that must unwrap.
//!
//! Threat model: encryption at rest protects data on a stolen disk, a discarded volume, a cloud snapshot
//! or a backup of the data directory, as long as the master key is not stored with it. It does not protect
//! against an attacker who is root on the running server (the master key and the data keys are in its
//! memory) nor against one who holds the master key file.
//!
//! Formats: a data key id is 32 lowercase hex digits (16 random bytes). The local master key wraps a data
//! key with AES-256-GCM as `2 | nonce (12) | ciphertext (32) | tag (16)`, the nonce random, authenticating
//! `quarry data key wrap v2`, a zero byte and the key's *context*: `<id> <owner>` for a data key, so an
//! entry whose owner or id is edited in the keyring no longer unwraps (and a key cannot be moved to
//! protect another file), `check` for the check value. Version 1 wraps (no context) from earlier
//! keyrings still unwrap, and `quarry keys rotate` rewraps them as version 2. A master key
//! id is `local:` and the first 8 bytes of SHA-256(`quarry master key id v1` | key) in hex, so that it
//! tells keys apart without revealing anything about them.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// The environment variable that may hold the master key (hex or base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "QUARRY_MASTER_KEY";
/// Where a data directory keeps its keyring, relative to the data directory.
pub const KEYRING_FILE: &str = "keys/keyring.json";
/// Length of keys (master and data keys), bytes.
pub const KEY_LEN: usize = 32;

const KEYRING_VERSION: u32 = 1;
const WRAP_VERSION: u8 = 2;
const WRAP_AAD: &[u8] = b"quarry data key wrap v2";
const LEGACY_WRAP: (u8, &[u8]) = (1, b"quarry data key wrap v1");
const CHECK_CONTEXT: &[u8] = b"check";
const ID_LABEL: &[u8] = b"quarry master key id v1";

/// The keyring file of a data directory.
pub fn keyring_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEYRING_FILE)
}

/// Key failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A master key file cannot be read.
    #[error("cannot read master key file {path}: {error}")]
    ReadKeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A master key file cannot be written.
    #[error("cannot write master key file {path}: {error}")]
    WriteKeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A master key (file or variable) does not hold a key.
    #[error("{origin}: {why}")]
    BadKey {
        /// Where the key came from (`master key file PATH` or the variable's name).
        origin: String,
        /// What is wrong.
        why: String,
    },
    /// The keyring cannot be read or written.
    #[error("keyring {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The keyring is not one Quarry wrote.
    #[error("keyring {path} is not valid: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A keyring or key file would be overwritten.
    #[error("{0} exists already; refusing to overwrite it")]
    Exists(PathBuf),
    /// The master key given is not the one that wrapped the keyring.
    #[error("wrong master key: the data keys are wrapped by master key {expected}, but the key given is {given} (a rotated-away or another data directory's key?)")]
    WrongMaster {
        /// Id of the master key of the keyring.
        expected: String,
        /// Id of the key given.
        given: String,
    },
    /// A wrapped key does not unwrap: wrong master key, or the keyring was altered.
    #[error(
        "cannot unwrap a data key with master key {master}: wrong key, or the keyring was altered"
    )]
    Unwrap {
        /// Id of the master key used.
        master: String,
    },
    /// No data key with this id (shredded, or never created).
    #[error("no data key {0} in the keyring (crypto-shredded, or a keyring from another data directory)")]
    NotFound(String),
    /// A key service failed (for [`KeyWrapper`] implementations backed by a KMS).
    #[error("key service: {0}")]
    Service(String),
    /// The random generator or the cipher failed (should not happen).
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}

/// Wraps and unwraps data keys with a master key.
///
/// Implemented by the local [`MasterKey`]; a cloud key management service (AWS KMS `Encrypt`/`Decrypt`,
/// GCP Cloud KMS, Vault transit) plugs in by implementing it too: `wrap` sends the 32-byte data key to the
/// service and stores whatever opaque bytes come back, `unwrap` sends them back. The master key then never
/// leaves the service, and rotation and shredding work unchanged.
pub trait KeyWrapper: Send + Sync + fmt::Debug {
    /// A stable identifier of the master key, different for different keys (for a KMS, the key's ARN or
    /// resource name). It is stored with every wrapped key and compared before anything is unwrapped.
    fn id(&self) -> String;
    /// Encrypts a data key bound to `context` (what the key protects: its id and owner); the output is
    /// opaque and stored in the keyring. A KMS passes the context as its encryption context.
    fn wrap(&self, dek: &[u8; KEY_LEN], context: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Decrypts what [`KeyWrapper::wrap`] returned, refusing it under any other `context`.
    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<[u8; KEY_LEN], KeyError>;
}

/// A local 256-bit master key (from a file or the environment) that wraps data keys with AES-256-GCM.
pub struct MasterKey {
    key: LessSafeKey,
    id: String,
    rng: SystemRandom,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself.
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<MasterKey, KeyError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::Crypto("AES key"))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(ID_LABEL);
        ctx.update(bytes);
        let id = format!("local:{}", hex(&ctx.finish().as_ref()[..8]));
        Ok(MasterKey {
            key: LessSafeKey::new(key),
            id,
            rng: SystemRandom::new(),
        })
    }

    /// Reads a master key file: 32 raw bytes, or text holding 64 hex digits or the base64 of 32 bytes
    /// (surrounding white space ignored). Anything else is refused with an error naming the file.
    pub fn from_file(path: &Path) -> Result<MasterKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|error| KeyError::ReadKeyFile {
            path: path.to_path_buf(),
            error,
        })?;
        let origin = format!("master key file {}", path.display());
        if let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
            return MasterKey::from_bytes(&raw);
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::BadKey {
            origin: origin.clone(),
            why: format!(
                "{} bytes that are neither 32 raw bytes nor text (64 hex digits or base64 of 32 bytes)",
                bytes.len()
            ),
        })?;
        MasterKey::from_text(text, &origin)
    }

    /// Parses a master key written as 64 hex digits or as the base64 (standard or URL-safe, padded or not)
    /// of 32 bytes; `origin` names where it came from in errors.
    pub fn from_text(text: &str, origin: &str) -> Result<MasterKey, KeyError> {
        let bytes = parse_key_text(text).map_err(|why| KeyError::BadKey {
            origin: origin.to_string(),
            why,
        })?;
        MasterKey::from_bytes(&bytes)
    }

    /// The master key in [`MASTER_KEY_ENV`], if the variable is set (and not empty).
    pub fn from_env() -> Result<Option<MasterKey>, KeyError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => MasterKey::from_text(&v, MASTER_KEY_ENV).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyError::BadKey {
                origin: MASTER_KEY_ENV.into(),
                why: "not valid UTF-8 (give 64 hex digits or base64)".into(),
            }),
        }
    }

    /// A warning to show if a key file can be read by its group or by others (a key file should have mode
    /// 0600 or 0400); `None` when it is private or the mode cannot be read.
    pub fn file_permission_warning(path: &Path) -> Option<String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Some(format!(
                    "master key file {} has mode {mode:o}: other users may read it; chmod 600 it",
                    path.display()
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = path;
        None
    }

    /// Generates a random master key and writes it to `path` as 64 hex digits and a newline, with mode
    /// 0600. Refuses to overwrite an existing file ([`KeyError::Exists`]).
    pub fn generate_file(path: &Path) -> Result<MasterKey, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Crypto("random generator"))?;
        let key = MasterKey::from_bytes(&bytes)?;
        let io = |error: std::io::Error| KeyError::WriteKeyFile {
            path: path.to_path_buf(),
            error,
        };
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.to_path_buf())
            } else {
                io(e)
            }
        })?;
        f.write_all(format!("{}\n", hex(&bytes)).as_bytes())
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            sync_dir(dir).map_err(io)?;
        }
        Ok(key)
    }
}

impl KeyWrapper for MasterKey {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn wrap(&self, dek: &[u8; KEY_LEN], context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| KeyError::Crypto("random generator"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + KEY_LEN + 16);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(dek);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(WRAP_AAD, context)),
                &mut out[1 + NONCE_LEN..],
            )
            .map_err(|_| KeyError::Crypto("seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<[u8; KEY_LEN], KeyError> {
        let bad = || KeyError::Unwrap {
            master: self.id.clone(),
        };
        if wrapped.len() != 1 + NONCE_LEN + KEY_LEN + 16 {
            return Err(bad());
        }
        let aad = match wrapped[0] {
            WRAP_VERSION => wrap_aad(WRAP_AAD, context),
            v if v == LEGACY_WRAP.0 => LEGACY_WRAP.1.to_vec(),
            _ => return Err(bad()),
        };
        let nonce =
            Nonce::try_assume_unique_for_key(&wrapped[1..1 + NONCE_LEN]).map_err(|_| bad())?;
        let mut buf = [0u8; KEY_LEN + 16];
        buf.copy_from_slice(&wrapped[1 + NONCE_LEN..]);
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| bad())?;
        <[u8; KEY_LEN]>::try_from(&*plain).map_err(|_| bad())
    }
}

/// What a version 2 wrap authenticates: its label, a zero byte, the context.
fn wrap_aad(label: &[u8], context: &[u8]) -> Vec<u8> {
    [label, &[0], context].concat()
}

/// The context a data key is wrapped under: its id and owner.
fn key_context(id: &str, owner: &str) -> Vec<u8> {
    format!("{id} {owner}").into_bytes()
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Bytes of a hex string (either case); `None` if it is not hex or has an odd length.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

fn parse_key_text(text: &str) -> Result<[u8; KEY_LEN], String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty; a master key is 64 hex digits or the base64 of 32 bytes (`quarry keys generate` makes one)".into());
    }
    if t.len() == 2 * KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let v = unhex(t).ok_or("bad hex")?;
        return <[u8; KEY_LEN]>::try_from(v.as_slice()).map_err(|_| "bad hex".to_string());
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        if let Ok(v) = engine.decode(t) {
            return <[u8; KEY_LEN]>::try_from(v.as_slice()).map_err(|_| {
                format!(
                    "base64 of {} bytes; a master key has exactly 32 bytes",
                    v.len()
                )
            });
        }
    }
    Err(format!(
        "{} characters that are neither 64 hex digits nor the base64 of 32 bytes",
        t.chars().count()
    ))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// One data key as the keyring stores it (wrapped).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    owner: String,
    created: u64,
    master: String,
    wrapped: String,
}

/// A data key's record, without the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its id (32 hex digits).
    pub id: String,
    /// What it protects, a path-like name such as `wal/00000000000000000000.wal` or
    /// `partitions/audit/2026-11-20/<segment uuid>`.
    pub owner: String,
    /// When it was made, seconds since 1970.
    pub created: u64,
    /// Id of the master key that wraps it.
    pub master: String,
}

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    version: u32,
    /// Id of the master key that wraps every key.
    master: String,
    /// 32 random bytes wrapped by the master key: unwrapping them proves the master key is right even
    /// when the keyring holds no data key.
    check: String,
    keys: Vec<StoredKey>,
}

struct State {
    master: String,
    check: Vec<u8>,
    keys: BTreeMap<String, StoredKey>,
    by_owner: HashMap<String, String>,
}

impl State {
    fn from_file(f: KeyringFile, path: &Path) -> Result<State, KeyError> {
        let corrupt = |why: String| KeyError::Corrupt {
            path: path.to_path_buf(),
            why,
        };
        if f.version != KEYRING_VERSION {
            return Err(corrupt(format!(
                "version {} (this Quarry reads version {KEYRING_VERSION})",
                f.version
            )));
        }
        let check = b64()
            .decode(&f.check)
            .map_err(|e| corrupt(format!("check value: {e}")))?;
        let mut keys = BTreeMap::new();
        let mut by_owner = HashMap::new();
        for k in f.keys {
            if unhex(&k.id).is_none_or(|b| b.len() != 16) {
                return Err(corrupt(format!(
                    "data key id {:?} is not 32 hex digits",
                    k.id
                )));
            }
            keys.insert(k.id.clone(), k);
        }
        // The newest key of an owner is the one it uses (there is one unless `create_key` made more).
        let mut newest: Vec<&StoredKey> = keys.values().collect();
        newest.sort_by_key(|k| k.created);
        for k in newest {
            by_owner.insert(k.owner.clone(), k.id.clone());
        }
        Ok(State {
            master: f.master,
            check,
            keys,
            by_owner,
        })
    }

    fn to_file(&self) -> KeyringFile {
        KeyringFile {
            version: KEYRING_VERSION,
            master: self.master.clone(),
            check: b64().encode(&self.check),
            keys: self.keys.values().cloned().collect(),
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The data keys of a data directory, wrapped by a master key, persisted in `keys/keyring.json` (mode
/// 0600, replaced atomically on every change). Unwrapped keys are cached in memory. Thread-safe.
pub struct Keyring {
    path: PathBuf,
    state: Mutex<State>,
    unwrapped: RwLock<HashMap<String, [u8; KEY_LEN]>>,
    wrapper: RwLock<Arc<dyn KeyWrapper>>,
    rng: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({})", self.path.display())
    }
}

impl Keyring {
    /// Creates an empty keyring at `path` for master key `wrapper` (the folder is created with mode
    /// 0700). Refuses if the file exists.
    pub fn create(path: &Path, wrapper: Arc<dyn KeyWrapper>) -> Result<Keyring, KeyError> {
        if path.exists() {
            return Err(KeyError::Exists(path.to_path_buf()));
        }
        if let Some(dir) = path.parent() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir).map_err(|error| KeyError::Io {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let rng = SystemRandom::new();
        let mut check = [0u8; KEY_LEN];
        rng.fill(&mut check)
            .map_err(|_| KeyError::Crypto("random generator"))?;
        let state = State {
            master: wrapper.id(),
            check: wrapper.wrap(&check, CHECK_CONTEXT)?,
            keys: BTreeMap::new(),
            by_owner: HashMap::new(),
        };
        write_private_atomic(path, &state)?;
        Ok(Keyring {
            path: path.to_path_buf(),
            state: Mutex::new(state),
            unwrapped: RwLock::new(HashMap::new()),
            wrapper: RwLock::new(wrapper),
            rng,
        })
    }

    /// Opens the keyring at `path` with its master key; a different master key gives
    /// [`KeyError::WrongMaster`] (or [`KeyError::Unwrap`] if its id matches but it does not unwrap).
    pub fn open(path: &Path, wrapper: Arc<dyn KeyWrapper>) -> Result<Keyring, KeyError> {
        let state = read_state(path)?;
        check_master(&state, &*wrapper)?;
        Ok(Keyring {
            path: path.to_path_buf(),
            state: Mutex::new(state),
            unwrapped: RwLock::new(HashMap::new()),
            wrapper: RwLock::new(wrapper),
            rng: SystemRandom::new(),
        })
    }

    /// The keyring file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Id of the master key that wraps the data keys.
    pub fn master_id(&self) -> String {
        self.lock().master.clone()
    }

    /// Number of data keys.
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    /// True if there is no data key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data keys' records (no key material), ordered by id.
    pub fn entries(&self) -> Vec<KeyInfo> {
        self.lock()
            .keys
            .values()
            .map(|k| KeyInfo {
                id: k.id.clone(),
                owner: k.owner.clone(),
                created: k.created,
                master: k.master.clone(),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wrapper(&self) -> Arc<dyn KeyWrapper> {
        self.wrapper
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes a new random data key for `owner`, persists it (wrapped) and returns its id and the key.
    pub fn create_key(&self, owner: &str) -> Result<(String, [u8; KEY_LEN]), KeyError> {
        let mut st = self.lock();
        self.create_locked(&mut st, owner)
    }

    /// The data key of `owner` (the newest if there are several), made and persisted if there is none
    /// and `create`; `None` if there is none and not `create`.
    pub fn key_for_owner(
        &self,
        owner: &str,
        create: bool,
    ) -> Result<Option<(String, [u8; KEY_LEN])>, KeyError> {
        let mut st = self.lock();
        if let Some(id) = st.by_owner.get(owner).cloned() {
            drop(st);
            return Ok(Some((id.clone(), self.get(&id)?)));
        }
        if !create {
            return Ok(None);
        }
        self.create_locked(&mut st, owner).map(Some)
    }

    fn create_locked(
        &self,
        st: &mut State,
        owner: &str,
    ) -> Result<(String, [u8; KEY_LEN]), KeyError> {
        let wrapper = self.wrapper();
        if wrapper.id() != st.master {
            return Err(KeyError::WrongMaster {
                expected: st.master.clone(),
                given: wrapper.id(),
            });
        }
        let mut raw = [0u8; 16 + KEY_LEN];
        self.rng
            .fill(&mut raw)
            .map_err(|_| KeyError::Crypto("random generator"))?;
        let id = hex(&raw[..16]);
        let mut dek = [0u8; KEY_LEN];
        dek.copy_from_slice(&raw[16..]);
        let stored = StoredKey {
            id: id.clone(),
            owner: owner.to_string(),
            created: now_secs(),
            master: st.master.clone(),
            wrapped: b64().encode(wrapper.wrap(&dek, &key_context(&id, owner))?),
        };
        st.keys.insert(id.clone(), stored);
        let previous = st.by_owner.insert(owner.to_string(), id.clone());
        if let Err(e) = write_private_atomic(&self.path, st) {
            st.keys.remove(&id);
            match previous {
                Some(p) => st.by_owner.insert(owner.to_string(), p),
                None => st.by_owner.remove(owner),
            };
            return Err(e);
        }
        self.unwrapped
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), dek);
        Ok((id, dek))
    }

    /// The data key `id`. On a miss the keyring file is read again (another process — the server — may
    /// have added keys since this one was opened).
    pub fn get(&self, id: &str) -> Result<[u8; KEY_LEN], KeyError> {
        if let Some(k) = self
            .unwrapped
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(*k);
        }
        let mut st = self.lock();
        if !st.keys.contains_key(id) {
            let fresh = read_state(&self.path)?;
            if fresh.master != st.master {
                return Err(KeyError::WrongMaster {
                    expected: fresh.master,
                    given: st.master.clone(),
                });
            }
            *st = fresh;
        }
        let stored = st
            .keys
            .get(id)
            .ok_or_else(|| KeyError::NotFound(id.to_string()))?;
        let wrapper = self.wrapper();
        if stored.master != wrapper.id() {
            return Err(KeyError::WrongMaster {
                expected: stored.master.clone(),
                given: wrapper.id(),
            });
        }
        let wrapped = b64()
            .decode(&stored.wrapped)
            .map_err(|e| KeyError::Corrupt {
                path: self.path.clone(),
                why: format!("data key {id}: {e}"),
            })?;
        let dek = wrapper.unwrap(&wrapped, &key_context(id, &stored.owner))?;
        self.unwrapped
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), dek);
        Ok(dek)
    }

    /// Crypto-shreds the data keys with these ids (unknown ids are ignored); returns the ids removed.
    /// Once the keyring is rewritten, what they encrypted cannot be decrypted any more.
    pub fn shred_ids(&self, ids: &[String]) -> Result<Vec<String>, KeyError> {
        self.shred_where(|k| ids.contains(&k.id))
    }

    /// Crypto-shreds the data keys whose owner is `prefix` or lies under it (`prefix/…`): the prefix
    /// `partitions/audit/2026-11-20` takes the partition's key and the keys of all its segments, but not
    /// those of `partitions/audit/2026-11-2`. Returns the ids removed.
    pub fn shred_prefix(&self, prefix: &str) -> Result<Vec<String>, KeyError> {
        let prefix = prefix.trim_end_matches('/');
        self.shred_where(|k| {
            k.owner == prefix
                || (k.owner.starts_with(prefix)
                    && k.owner.as_bytes().get(prefix.len()) == Some(&b'/'))
        })
    }

    fn shred_where(&self, doomed: impl Fn(&StoredKey) -> bool) -> Result<Vec<String>, KeyError> {
        let mut st = self.lock();
        let gone: Vec<StoredKey> = st.keys.values().filter(|k| doomed(k)).cloned().collect();
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        for k in &gone {
            st.keys.remove(&k.id);
            if st.by_owner.get(&k.owner) == Some(&k.id) {
                st.by_owner.remove(&k.owner);
            }
        }
        if let Err(e) = write_private_atomic(&self.path, &st) {
            for k in gone {
                st.by_owner.entry(k.owner.clone()).or_insert(k.id.clone());
                st.keys.insert(k.id.clone(), k);
            }
            return Err(e);
        }
        let mut cache = self.unwrapped.write().unwrap_or_else(|e| e.into_inner());
        for k in &gone {
            cache.remove(&k.id);
        }
        Ok(gone.into_iter().map(|k| k.id).collect())
    }

    /// Rewraps every data key (and the check value) with master key `new`, in one atomic rewrite of the
    /// keyring; no data is touched. `old` must be the current master key. `progress(done, total)` is
    /// called after each key (a KMS call each for a KMS). Returns the number of data keys rewrapped.
    /// Afterwards the keyring uses `new`, and `old` no longer opens it.
    pub fn rotate(
        &self,
        old: &dyn KeyWrapper,
        new: Arc<dyn KeyWrapper>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<usize, KeyError> {
        let mut st = self.lock();
        check_master(&st, old)?;
        let new_id = new.id();
        let total = st.keys.len();
        let mut keys = BTreeMap::new();
        for (i, (id, k)) in st.keys.iter().enumerate() {
            let wrapped = b64().decode(&k.wrapped).map_err(|e| KeyError::Corrupt {
                path: self.path.clone(),
                why: format!("data key {id}: {e}"),
            })?;
            let context = key_context(id, &k.owner);
            let dek = old.unwrap(&wrapped, &context)?;
            let mut k = k.clone();
            k.master = new_id.clone();
            k.wrapped = b64().encode(new.wrap(&dek, &context)?);
            keys.insert(id.clone(), k);
            progress(i + 1, total);
        }
        let check = new.wrap(&old.unwrap(&st.check, CHECK_CONTEXT)?, CHECK_CONTEXT)?;
        let next = State {
            master: new_id,
            check,
            keys,
            by_owner: st.by_owner.clone(),
        };
        write_private_atomic(&self.path, &next)?;
        *st = next;
        *self.wrapper.write().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(total)
    }
}

fn read_state(path: &Path) -> Result<State, KeyError> {
    let bytes = std::fs::read(path).map_err(|error| KeyError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let file: KeyringFile = serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    State::from_file(file, path)
}

fn check_master(st: &State, wrapper: &dyn KeyWrapper) -> Result<(), KeyError> {
    let given = wrapper.id();
    if given != st.master {
        return Err(KeyError::WrongMaster {
            expected: st.master.clone(),
            given,
        });
    }
    wrapper.unwrap(&st.check, CHECK_CONTEXT)?;
    Ok(())
}

/// Writes the keyring: temp file (mode 0600), fsync, rename over, fsync the folder.
fn write_private_atomic(path: &Path, st: &State) -> Result<(), KeyError> {
    let io = |error: std::io::Error| KeyError::Io {
        path: path.to_path_buf(),
        error,
    };
    let bytes = serde_json::to_vec(&st.to_file()).map_err(|e| KeyError::Corrupt {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Arc<dyn KeyWrapper> {
        Arc::new(MasterKey::from_bytes(&[b; 32]).unwrap())
    }

    #[test]
    fn master_key_text_forms() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let want = MasterKey::from_bytes(&bytes).unwrap().id();
        let hexed = hex(&bytes);
        for text in [
            hexed.clone(),
            hexed.to_uppercase(),
            format!("  {hexed}\n"),
            b64().encode(bytes),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ] {
            assert_eq!(
                MasterKey::from_text(&text, "t").unwrap().id(),
                want,
                "{text}"
            );
        }
        for bad in [
            "",
            "   ",
            "abc",
            &hexed[..62],
            &b64().encode([1u8; 16]),
            "zz".repeat(32).as_str(),
        ] {
            let e = MasterKey::from_text(bad, "QUARRY_MASTER_KEY")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("QUARRY_MASTER_KEY: "), "{e}");
        }
        assert!(MasterKey::from_text(&b64().encode([1u8; 16]), "k")
            .unwrap_err()
            .to_string()
            .contains("16 bytes"));
    }

    #[test]
    fn master_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [9u8; 32]).unwrap();
        assert_eq!(
            MasterKey::from_file(&raw).unwrap().id(),
            MasterKey::from_bytes(&[9u8; 32]).unwrap().id()
        );
        let bad = dir.path().join("bad");
        std::fs::write(&bad, [0xffu8; 33]).unwrap();
        let e = MasterKey::from_file(&bad).unwrap_err().to_string();
        assert!(e.contains("bad") && e.contains("33 bytes"), "{e}");
        let missing = dir.path().join("missing");
        assert!(MasterKey::from_file(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing"));

        let gen = dir.path().join("gen.key");
        let k = MasterKey::generate_file(&gen).unwrap();
        assert_eq!(MasterKey::from_file(&gen).unwrap().id(), k.id());
        assert!(matches!(
            MasterKey::generate_file(&gen),
            Err(KeyError::Exists(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert!(MasterKey::file_permission_warning(&gen).is_none());
            std::fs::set_permissions(&gen, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(MasterKey::file_permission_warning(&gen)
                .unwrap()
                .contains("644"));
        }
    }

    #[test]
    fn ids_differ_and_wrapping_needs_the_right_key() {
        let (a, b) = (key(1), key(2));
        assert_ne!(a.id(), b.id());
        assert!(a.id().starts_with("local:") && a.id().len() == 6 + 16);
        assert!(!format!("{a:?}").contains("0101"));
        let dek = [42u8; 32];
        let w = a.wrap(&dek, b"ctx").unwrap();
        assert_ne!(w, a.wrap(&dek, b"ctx").unwrap(), "random nonces");
        assert_eq!(a.unwrap(&w, b"ctx").unwrap(), dek);
        assert!(matches!(b.unwrap(&w, b"ctx"), Err(KeyError::Unwrap { .. })));
        assert!(a.unwrap(&w, b"other").is_err(), "bound to its context");
        let mut t = w.clone();
        t[20] ^= 1;
        assert!(a.unwrap(&t, b"ctx").is_err());
        assert!(a.unwrap(&w[..30], b"ctx").is_err());
        let mut v1 = w.clone();
        v1[0] = LEGACY_WRAP.0;
        assert!(
            a.unwrap(&v1, b"ctx").is_err(),
            "a version cannot be changed"
        );
    }

    #[test]
    fn keyring_create_get_reopen_and_shred() {
        let dir = tempfile::tempdir().unwrap();
        let path = keyring_path(dir.path());
        let ring = Keyring::create(&path, key(1)).unwrap();
        assert!(matches!(
            Keyring::create(&path, key(1)),
            Err(KeyError::Exists(_))
        ));
        let (id1, k1) = ring.create_key("partitions/audit/2026-11-20/aaa").unwrap();
        let (id2, k2) = ring
            .key_for_owner("partitions/audit/2026-11-20", true)
            .unwrap()
            .unwrap();
        let (id3, _) = ring
            .key_for_owner("partitions/audit/2026-11-2", true)
            .unwrap()
            .unwrap();
        let (id4, _) = ring.key_for_owner("wal/1.wal", true).unwrap().unwrap();
        assert_ne!(k1, k2);
        assert_eq!(
            ring.key_for_owner("partitions/audit/2026-11-20", true)
                .unwrap()
                .unwrap()
                .0,
            id2
        );
        assert!(ring.key_for_owner("nobody", false).unwrap().is_none());
        assert_eq!(ring.len(), 4);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // The file holds no key in the clear.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&b64().encode(k1)) && !text.contains(&hex(&k1)));

        let again = Keyring::open(&path, key(1)).unwrap();
        assert_eq!(again.get(&id1).unwrap(), k1);
        assert_eq!(again.entries().len(), 4);
        assert!(matches!(
            Keyring::open(&path, key(2)),
            Err(KeyError::WrongMaster { .. })
        ));

        let mut shredded = ring.shred_prefix("partitions/audit/2026-11-20/").unwrap();
        shredded.sort();
        let mut want = vec![id1.clone(), id2.clone()];
        want.sort();
        assert_eq!(shredded, want);
        assert!(matches!(ring.get(&id1), Err(KeyError::NotFound(_))));
        assert!(ring.get(&id3).is_ok());
        assert_eq!(
            ring.shred_ids(&[id4.clone(), "unknown".into()]).unwrap(),
            vec![id4.clone()]
        );
        assert!(ring.shred_ids(&[id4]).unwrap().is_empty());
        let reread = Keyring::open(&path, key(1)).unwrap();
        assert_eq!(
            reread
                .entries()
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>(),
            vec![id3]
        );
        // A reader opened earlier sees keys made later (it reads the file again on a miss), and not
        // shredded ones.
        let (id5, k5) = ring.create_key("wal/2.wal").unwrap();
        assert_eq!(again.get(&id5).unwrap(), k5);
        assert!(matches!(again.get(&id2), Err(KeyError::NotFound(_))));
    }

    #[test]
    fn rotation_rewraps_without_changing_data_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = keyring_path(dir.path());
        let ring = Keyring::create(&path, key(1)).unwrap();
        let keys: Vec<_> = (0..5)
            .map(|i| ring.create_key(&format!("o/{i}")).unwrap())
            .collect();
        let mut seen = Vec::new();
        assert!(matches!(
            ring.rotate(&*key(3), key(2), &mut |d, t| seen.push((d, t))),
            Err(KeyError::WrongMaster { .. })
        ));
        let n = ring
            .rotate(&*key(1), key(2), &mut |d, t| seen.push((d, t)))
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(seen.last(), Some(&(5, 5)));
        assert_eq!(ring.master_id(), key(2).id());
        // Keys made after the rotation are wrapped by the new key.
        ring.create_key("o/new").unwrap();
        assert!(matches!(
            Keyring::open(&path, key(1)),
            Err(KeyError::WrongMaster { .. })
        ));
        let reopened = Keyring::open(&path, key(2)).unwrap();
        for (id, k) in &keys {
            assert_eq!(&reopened.get(id).unwrap(), k);
        }
        assert!(reopened.entries().iter().all(|e| e.master == key(2).id()));
    }

    #[test]
    fn a_tampered_keyring_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = keyring_path(dir.path());
        let ring = Keyring::create(&path, key(1)).unwrap();
        let (id, _) = ring.create_key("o").unwrap();
        drop(ring);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert!(matches!(
            Keyring::open(&path, key(1)),
            Err(KeyError::Corrupt { .. })
        ));
        // A wrapped key replaced by another's does not unwrap to something silently wrong.
        let mut f: serde_json::Value = serde_json::from_str(&text).unwrap();
        f["keys"][0]["wrapped"] =
            serde_json::Value::String(b64().encode(key(2).wrap(&[0; 32], b"x").unwrap()));
        std::fs::write(&path, serde_json::to_vec(&f).unwrap()).unwrap();
        let ring = Keyring::open(&path, key(1)).unwrap();
        assert!(matches!(ring.get(&id), Err(KeyError::Unwrap { .. })));
    }

    #[test]
    fn a_data_key_is_bound_to_its_id_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = keyring_path(dir.path());
        let ring = Keyring::create(&path, key(1)).unwrap();
        let (a, _) = ring.create_key("partitions/audit/2026-11-20").unwrap();
        let (b, _) = ring.create_key("partitions/audit/2026-11-21").unwrap();
        drop(ring);
        // Owners swapped: each key would now protect (and be shredded with) the other's files.
        let mut f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let owners: Vec<serde_json::Value> =
            (0..2).map(|i| f["keys"][i]["owner"].clone()).collect();
        f["keys"][0]["owner"] = owners[1].clone();
        f["keys"][1]["owner"] = owners[0].clone();
        std::fs::write(&path, serde_json::to_vec(&f).unwrap()).unwrap();
        let ring = Keyring::open(&path, key(1)).unwrap();
        for id in [&a, &b] {
            assert!(matches!(ring.get(id), Err(KeyError::Unwrap { .. })), "{id}");
        }
    }

    #[test]
    fn keys_wrapped_before_binding_still_open_and_rotation_binds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = keyring_path(dir.path());
        let ring = Keyring::create(&path, key(1)).unwrap();
        let (id, dek) = ring.create_key("wal/1.wal").unwrap();
        drop(ring);
        // Rewrite the entry and the check value as an earlier Quarry wrapped them (version 1, no context).
        let legacy = |plain: &[u8; KEY_LEN]| {
            let mk = MasterKey::from_bytes(&[1; 32]).unwrap();
            let nonce = [7u8; NONCE_LEN];
            let mut out = vec![LEGACY_WRAP.0];
            out.extend_from_slice(&nonce);
            out.extend_from_slice(plain);
            let tag = mk
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(LEGACY_WRAP.1),
                    &mut out[1 + NONCE_LEN..],
                )
                .unwrap();
            out.extend_from_slice(tag.as_ref());
            b64().encode(out)
        };
        let mut f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f["keys"][0]["wrapped"] = legacy(&dek).into();
        f["check"] = legacy(&[3; KEY_LEN]).into();
        std::fs::write(&path, serde_json::to_vec(&f).unwrap()).unwrap();
        let ring = Keyring::open(&path, key(1)).unwrap();
        assert_eq!(ring.get(&id).unwrap(), dek);
        ring.rotate(&*key(1), key(2), &mut |_, _| {}).unwrap();
        let f: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for w in [&f["keys"][0]["wrapped"], &f["check"]] {
            let bytes = b64().decode(w.as_str().unwrap()).unwrap();
            assert_eq!(bytes[0], WRAP_VERSION);
        }
        assert_eq!(Keyring::open(&path, key(2)).unwrap().get(&id).unwrap(), dek);
    }

    #[test]
    fn concurrent_use() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Arc::new(Keyring::create(&keyring_path(dir.path()), key(1)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let (id, k) = ring
                            .key_for_owner(&format!("shared/{i}"), true)
                            .unwrap()
                            .unwrap();
                        assert_eq!(ring.get(&id).unwrap(), k);
                        ring.create_key(&format!("t{t}/{i}")).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ring.len(), 10 + 40);
        let reopened = Keyring::open(ring.path(), key(1)).unwrap();
        assert_eq!(reopened.len(), 50);
    }
}
