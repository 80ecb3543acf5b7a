//! Encryption at rest: the WAL and every partition file encrypted with AES-256-GCM in authenticated
//! blocks, under per-file data keys wrapped by a master key (see [`quarry_trust::keys`]).
//!
//! # What it protects against
//!
//! A stolen disk, a discarded volume, a cloud snapshot or a backup of the data directory: without the
//! master key, events, message text, field values and index terms cannot be read, and any change to a
//! file is detected when it is read (an error, never wrong data). Expired data is *crypto-shredded*:
//! retention deletes a partition's data keys with its files, and segments that merges made obsolete lose
//! their key with their last file, so even a copy of the old files taken before is unreadable (as long as
//! the keyring of that copy is not kept too).
//!
//! It does not protect against an attacker who is root on the running server (keys are in its memory),
//! who holds the master key, or who only wants to learn metadata left in the clear: the layout (source
//! kinds and days of the partition folders), file sizes and times, `checkpoint.json` (WAL position, batch
//! and source ids for deduplication) and the keyring's owner names. It does not by itself prevent rolling
//! back a whole file to an older encrypted version of the same file; the integrity chain covers that.
//!
//! # Rule: encryption is chosen when a data directory is created
//!
//! A data directory with `keys/keyring.json` is encrypted and cannot be opened without its master key; a
//! data directory that holds plaintext data (WAL records or partitions) and no keyring cannot be opened
//! with a master key (no mixing). A new or empty data directory opened with a key becomes encrypted.
//!
//! # File format (partition files)
//!
//! ```text
//! header (32 bytes): "QRYENC" | version 1 | block shift (16: 64 KiB) | data key id (16) | nonce prefix (8)
//! blocks:            ciphertext of min(block size, rest) bytes | GCM tag (16)
//! ```
//!
//! Every block is sealed with the file's data key; its nonce is the file's random nonce prefix followed by
//! the block index (u32, big endian), so nonces never repeat within a key. The additional data of a block
//! is SHA-256(label | header | binding name) | block index | last-block flag, where the binding name is the
//! file's path in the data directory (`partitions/audit/2026-11-20/<uuid>.idx`): a block moved, swapped,
//! dropped or cut, a header edited, or a file swapped for another's all fail authentication. The last block
//! holds 1 to block-size bytes (an empty file has one empty last block), so the plaintext length follows
//! from the file length and a truncation at a block boundary is detected too.
//!
//! One data key per tantivy segment (files `<uuid>.<ext>`, owner `partitions/<kind>/<day>/<uuid>`); a
//! partition's `meta.json` and `.managed.json` use the partition's key (owner `partitions/<kind>/<day>`;
//! `<day>@<namespace>` for a namespace's own partitions).
//!
//! Reading decrypts only the blocks a read needs, through a shared, bounded LRU cache of decrypted blocks
//! and of multi-block ranges (tantivy reads a column or a term dictionary whole, again after every commit
//! reload), so queries do not pay decryption twice. Reads within one cached block are zero-copy.
//!
//! # WAL records
//!
//! Records keep their framing (`len u32 | crc32 u32 | body`); the body becomes `nonce (12) | ciphertext |
//! tag (16)` under the WAL file's data key (owner `wal/<file name>`), the nonce random per record, the
//! additional data binding the file name and the record's position. A record that fails authentication is
//! handled like one with a bad CRC (the log ends there; the bytes are counted as torn) and logged as
//! tampering. A WAL file's key is shredded when the file is removed.

use crate::partition;
use crate::StoreError;
use parking_lot::{Mutex, RwLock};
use quarry_trust::keys::{self, KeyError, Keyring};
pub use quarry_trust::keys::{KeyWrapper, MasterKey};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, OwnedBytes,
    TerminatingWrite, WatchCallback, WatchHandle, WritePtr,
};
use tantivy::HasLen;

/// Default size of the cache of decrypted blocks, bytes.
pub const DEFAULT_CACHE_BYTES: usize = 128 << 20;
/// Plaintext bytes per block of new files: 1 << 16 = 64 KiB.
pub const BLOCK_SHIFT: u8 = 16;

const MAGIC: &[u8; 6] = b"QRYENC";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 32;
const TAG_LEN: usize = 16;
const FILE_LABEL: &[u8] = b"quarry encrypted file v1\0";
const WAL_LABEL: &[u8] = b"quarry wal record v1\0";
/// Bytes an encrypted WAL record body adds to the plaintext body.
pub const RECORD_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Bookkeeping charged per cache entry on top of its bytes.
const ENTRY_OVERHEAD: usize = 96;

/// How a store encrypts (the `encryption` field of [`crate::StoreConfig`]).
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    /// The master key (or a KMS) that wraps the data keys.
    pub master: Arc<dyn KeyWrapper>,
    /// Bytes of decrypted blocks kept in memory for reads (0 turns the cache off).
    pub cache_bytes: usize,
}

impl EncryptionConfig {
    /// Encryption with this master key and the default cache size.
    pub fn new(master: Arc<dyn KeyWrapper>) -> Self {
        EncryptionConfig {
            master,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

fn key_err(e: KeyError) -> StoreError {
    StoreError::Encryption(e.to_string())
}

fn io_err(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A data key's id (raw) and cipher.
type OwnerKey = ([u8; 16], Arc<LessSafeKey>);

/// The encryption state of an open data directory: its keyring, the ciphers of the data keys in use and
/// the cache of decrypted blocks. Shared by the WAL and every partition.
pub struct Crypt {
    data_dir: PathBuf,
    keyring: Keyring,
    ciphers: RwLock<FxHashMap<[u8; 16], Arc<LessSafeKey>>>,
    cache: Arc<BlockCache>,
    rng: SystemRandom,
}

impl fmt::Debug for Crypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crypt({})", self.data_dir.display())
    }
}

impl Crypt {
    /// Decides how `data_dir` is encrypted and opens its keyring: `None` for a plaintext data directory.
    /// Applies the rule of the module documentation (errors: an encrypted directory without a key, a
    /// plaintext one with a key, a wrong key). A new keyring is created only if `writable`; a writable
    /// open also shreds keys left without files by a crash (between a file's removal and its key's).
    pub fn open(
        data_dir: &Path,
        cfg: Option<&EncryptionConfig>,
        writable: bool,
    ) -> Result<Option<Arc<Crypt>>, StoreError> {
        let path = keys::keyring_path(data_dir);
        let keyring = match (path.exists(), cfg) {
            (true, None) => {
                return Err(StoreError::Encryption(format!(
                    "data directory {} is encrypted ({} exists): give its master key (--master-key-file or QUARRY_MASTER_KEY)",
                    data_dir.display(),
                    keys::KEYRING_FILE
                )))
            }
            (false, None) => return Ok(None),
            (true, Some(c)) => Keyring::open(&path, c.master.clone()).map_err(key_err)?,
            (false, Some(c)) => {
                if let Some(what) = plaintext_data(data_dir) {
                    return Err(StoreError::Encryption(format!(
                        "data directory {} holds unencrypted data ({what}) and no keyring; encryption at rest is chosen when a data directory is created: open it without a master key, or start a new data directory",
                        data_dir.display()
                    )));
                }
                if !writable {
                    return Ok(None);
                }
                Keyring::create(&path, c.master.clone()).map_err(key_err)?
            }
        };
        let cache_bytes = cfg.map(|c| c.cache_bytes).unwrap_or(DEFAULT_CACHE_BYTES);
        let crypt = Arc::new(Crypt {
            data_dir: data_dir.to_path_buf(),
            keyring,
            ciphers: RwLock::new(FxHashMap::default()),
            cache: Arc::new(BlockCache::new(cache_bytes)),
            rng: SystemRandom::new(),
        });
        if writable {
            let n = crypt.sweep().map_err(key_err)?;
            if n > 0 {
                tracing::info!(
                    keys = n,
                    "shredded data keys whose files were already removed"
                );
            }
        }
        Ok(Some(crypt))
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Hits, misses and size of the cache of decrypted blocks.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The path of `p` inside the data directory, with `/` separators: the owner name of its keys.
    fn owner_of(&self, p: &Path) -> String {
        let rel = p.strip_prefix(&self.data_dir).unwrap_or(p);
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }

    fn cipher(&self, id: [u8; 16], dek: Option<[u8; 32]>) -> Result<Arc<LessSafeKey>, KeyError> {
        if let Some(c) = self.ciphers.read().get(&id) {
            return Ok(c.clone());
        }
        let dek = match dek {
            Some(k) => k,
            None => self.keyring.get(&keys::hex(&id))?,
        };
        let key = UnboundKey::new(&AES_256_GCM, &dek).map_err(|_| KeyError::Crypto("AES key"))?;
        let c = Arc::new(LessSafeKey::new(key));
        self.ciphers.write().insert(id, c.clone());
        Ok(c)
    }

    /// The data key of `owner` (made if `create`), as (id, cipher).
    fn owner_key(&self, owner: &str, create: bool) -> Result<Option<OwnerKey>, KeyError> {
        let Some((id, dek)) = self.keyring.key_for_owner(owner, create)? else {
            return Ok(None);
        };
        let raw = key_id_bytes(&id).ok_or(KeyError::Crypto("data key id"))?;
        Ok(Some((raw, self.cipher(raw, Some(dek))?)))
    }

    /// Crypto-shreds the keys of `prefix` and everything under it; returns how many.
    fn shred_prefix(&self, prefix: &str) -> Result<usize, KeyError> {
        let ids = self.keyring.shred_prefix(prefix)?;
        let mut ciphers = self.ciphers.write();
        for id in &ids {
            if let Some(raw) = key_id_bytes(id) {
                ciphers.remove(&raw);
            }
        }
        Ok(ids.len())
    }

    /// Crypto-shreds the keys of a partition (its own and its segments'), once its folder is deleted.
    pub fn shred_partition(&self, dir: &Path) -> Result<usize, StoreError> {
        self.shred_prefix(&self.owner_of(dir)).map_err(key_err)
    }

    /// The encrypted tantivy directory over `inner`, a partition folder of this data directory.
    pub fn directory(self: &Arc<Self>, dir: &Path, inner: MmapDirectory) -> EncryptedDirectory {
        EncryptedDirectory {
            inner,
            owner: Arc::from(self.owner_of(dir)),
            root: dir.to_path_buf(),
            crypt: self.clone(),
        }
    }

    /// The record cipher of WAL file `name`, made if `create`; `None` if it has no key and not `create`.
    pub(crate) fn wal_cipher(
        self: &Arc<Self>,
        name: &str,
        create: bool,
    ) -> Result<Option<RecordCipher>, KeyError> {
        Ok(self
            .owner_key(&format!("wal/{name}"), create)?
            .map(|(_, key)| RecordCipher {
                key,
                name: name.to_string(),
                crypt: self.clone(),
            }))
    }

    /// Crypto-shreds the key of WAL file `name` (removed).
    pub(crate) fn shred_wal(&self, name: &str) -> Result<usize, KeyError> {
        self.shred_prefix(&format!("wal/{name}"))
    }

    /// Shreds keys whose files are gone: WAL files removed, partitions deleted, segments merged away.
    fn sweep(&self) -> Result<usize, KeyError> {
        let mut doomed = Vec::new();
        let mut listings: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
        for k in self.keyring.entries() {
            let parts: Vec<&str> = k.owner.split('/').collect();
            let gone = match parts.as_slice() {
                ["wal", name] => !self.data_dir.join("wal").join(name).exists(),
                ["partitions", kind, day] => !self
                    .data_dir
                    .join("partitions")
                    .join(kind)
                    .join(day)
                    .is_dir(),
                ["partitions", kind, day, uuid] => {
                    let dir = format!("partitions/{kind}/{day}");
                    let files = listings.entry(dir.clone()).or_insert_with(|| {
                        std::fs::read_dir(self.data_dir.join(&dir)).ok().map(|rd| {
                            rd.flatten()
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                    });
                    match files {
                        None => true,
                        Some(fs) => !fs.iter().any(|f| segment_uuid(f) == Some(*uuid)),
                    }
                }
                _ => false,
            };
            if gone {
                doomed.push(k.id);
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        Ok(self.keyring.shred_ids(&doomed)?.len())
    }
}

/// Something in a data directory without a keyring that shows it holds plaintext data.
fn plaintext_data(data_dir: &Path) -> Option<String> {
    if let Ok(rd) = std::fs::read_dir(data_dir.join("wal")) {
        for e in rd.flatten() {
            if e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0) {
                return Some(format!("wal/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    partition::discover(data_dir)
        .first()
        .map(|(_, dir)| dir.display().to_string())
}

fn key_id_bytes(id: &str) -> Option<[u8; 16]> {
    keys::unhex(id)?.try_into().ok()
}

/// The segment id of a tantivy segment file name (`<32 hex digits>.<ext>`).
fn segment_uuid(name: &str) -> Option<&str> {
    let (stem, _) = name.split_once('.')?;
    (stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit())).then_some(stem)
}

/// The per-file cipher state: key, nonce prefix, binding of header and name, block size.
#[derive(Clone)]
struct FileCipher {
    key: Arc<LessSafeKey>,
    nonce_prefix: [u8; 8],
    binding: [u8; 32],
    block_size: usize,
}

impl FileCipher {
    fn new(key: Arc<LessSafeKey>, header: &[u8; HEADER_LEN], name: &str) -> FileCipher {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(FILE_LABEL);
        ctx.update(header);
        ctx.update(name.as_bytes());
        let mut binding = [0u8; 32];
        binding.copy_from_slice(ctx.finish().as_ref());
        let mut nonce_prefix = [0u8; 8];
        nonce_prefix.copy_from_slice(&header[24..32]);
        FileCipher {
            key,
            nonce_prefix,
            binding,
            block_size: 1 << header[7],
        }
    }

    fn nonce(&self, block: u64) -> io::Result<Nonce> {
        let i = u32::try_from(block).map_err(|_| io_err("encrypted file has too many blocks"))?;
        let mut n = [0u8; NONCE_LEN];
        n[..8].copy_from_slice(&self.nonce_prefix);
        n[8..].copy_from_slice(&i.to_be_bytes());
        Ok(Nonce::assume_unique_for_key(n))
    }

    fn aad(&self, block: u64, last: bool) -> [u8; 41] {
        let mut a = [0u8; 41];
        a[..32].copy_from_slice(&self.binding);
        a[32..40].copy_from_slice(&block.to_le_bytes());
        a[40] = last as u8;
        a
    }

    fn seal(&self, block: u64, last: bool, data: &mut [u8]) -> io::Result<Tag> {
        self.key
            .seal_in_place_separate_tag(self.nonce(block)?, Aad::from(self.aad(block, last)), data)
            .map_err(|_| io::Error::other("encryption failed"))
    }

    fn open(&self, block: u64, last: bool, data: &mut [u8], tag: &[u8]) -> Result<(), ()> {
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| ())?;
        let nonce = self.nonce(block).map_err(|_| ())?;
        self.key
            .open_in_place_separate_tag(
                nonce,
                Aad::from(self.aad(block, last)),
                Tag::from(tag),
                data,
                0..,
            )
            .map(|_| ())
            .map_err(|_| ())
    }
}

/// Where the blocks of an encrypted file lie.
#[derive(Debug, Clone, Copy)]
struct Layout {
    block_size: usize,
    /// Plaintext length.
    len: usize,
    blocks: u64,
}

impl Layout {
    /// The layout of an encrypted file of `file_len` bytes; `None` if no valid file has that length.
    fn of(file_len: usize, block_size: usize) -> Option<Layout> {
        let body = file_len.checked_sub(HEADER_LEN)?;
        if body < TAG_LEN {
            return None;
        }
        let stride = block_size + TAG_LEN;
        let blocks = body.div_ceil(stride);
        let last_plain = (body - (blocks - 1) * stride).checked_sub(TAG_LEN)?;
        if last_plain > block_size || (last_plain == 0 && blocks > 1) {
            return None;
        }
        Some(Layout {
            block_size,
            len: (blocks - 1) * block_size + last_plain,
            blocks: blocks as u64,
        })
    }

    fn plain_len(&self, block: u64) -> usize {
        if block + 1 == self.blocks {
            self.len - block as usize * self.block_size
        } else {
            self.block_size
        }
    }

    /// Byte range of block `block` (ciphertext and tag) in the file.
    fn cipher_range(&self, block: u64) -> Range<usize> {
        let start = HEADER_LEN + block as usize * (self.block_size + TAG_LEN);
        start..start + self.plain_len(block) + TAG_LEN
    }
}

struct Header {
    raw: [u8; HEADER_LEN],
    key_id: [u8; 16],
}

fn parse_header(bytes: &[u8], name: &str) -> io::Result<Header> {
    let raw: [u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| io_err(format!("{name}: too short for an encrypted file")))?;
    if &raw[..6] != MAGIC {
        return Err(io_err(format!(
            "{name}: not an encrypted Quarry file (plaintext data in an encrypted data directory?)"
        )));
    }
    if raw[6] != VERSION {
        return Err(io_err(format!(
            "{name}: encrypted file version {} (this Quarry reads version {VERSION})",
            raw[6]
        )));
    }
    if !(12..=24).contains(&raw[7]) {
        return Err(io_err(format!("{name}: bad block size in header")));
    }
    let mut key_id = [0u8; 16];
    key_id.copy_from_slice(&raw[8..24]);
    Ok(Header { raw, key_id })
}

fn new_header(rng: &SystemRandom, key_id: [u8; 16]) -> io::Result<[u8; HEADER_LEN]> {
    let mut h = [0u8; HEADER_LEN];
    h[..6].copy_from_slice(MAGIC);
    h[6] = VERSION;
    h[7] = BLOCK_SHIFT;
    h[8..24].copy_from_slice(&key_id);
    rng.fill(&mut h[24..32])
        .map_err(|_| io::Error::other("random generator failed"))?;
    Ok(h)
}

/// Appends the plaintext of block `block` of `file` (the whole encrypted file) to `out`; on an
/// authentication failure `out` is left as it was.
fn decrypt_block(
    cipher: &FileCipher,
    layout: &Layout,
    file: &[u8],
    block: u64,
    out: &mut Vec<u8>,
    name: &str,
) -> io::Result<()> {
    let r = layout.cipher_range(block);
    let plain = layout.plain_len(block);
    let Some(ct) = file.get(r.clone()) else {
        return Err(io_err(format!("{name}: block {block} is cut short")));
    };
    let at = out.len();
    out.extend_from_slice(&ct[..plain]);
    if cipher
        .open(
            block,
            block + 1 == layout.blocks,
            &mut out[at..],
            &ct[plain..],
        )
        .is_err()
    {
        out.truncate(at);
        return Err(io_err(format!(
            "{name}: block {block} fails authentication (the file was altered or damaged, or is not this file)"
        )));
    }
    Ok(())
}

/// Encrypts as it writes: whole blocks are sealed as soon as more data follows them; the last one when
/// the writer is terminated (or [`EncryptingWriter::finish`]ed).
struct EncryptingWriter<W: Write> {
    out: W,
    cipher: FileCipher,
    buf: Vec<u8>,
    block: u64,
    done: bool,
}

impl<W: Write> EncryptingWriter<W> {
    fn new(mut out: W, cipher: FileCipher, header: &[u8; HEADER_LEN]) -> io::Result<Self> {
        out.write_all(header)?;
        let block_size = cipher.block_size;
        Ok(EncryptingWriter {
            out,
            cipher,
            buf: Vec::with_capacity(block_size),
            block: 0,
            done: false,
        })
    }

    fn seal_block(&mut self, last: bool) -> io::Result<()> {
        let tag = self.cipher.seal(self.block, last, &mut self.buf)?;
        self.out.write_all(&self.buf)?;
        self.out.write_all(tag.as_ref())?;
        self.buf.clear();
        self.block += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.done {
            self.seal_block(true)?;
            self.done = true;
        }
        self.out.flush()
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.done {
            return Err(io::Error::other("write after the end of an encrypted file"));
        }
        if data.is_empty() {
            return Ok(0);
        }
        if self.buf.len() == self.cipher.block_size {
            self.seal_block(false)?;
        }
        let n = data.len().min(self.cipher.block_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Only sealed blocks can be flushed: the open one may still grow.
        self.out.flush()
    }
}

impl TerminatingWrite for EncryptingWriter<WritePtr> {
    fn terminate_ref(&mut self, token: AntiCallToken) -> io::Result<()> {
        self.finish()?;
        self.out.terminate_ref(token)
    }
}

/// Identifies a cached range: the file (its data key id and random nonce prefix) and the plaintext range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey {
    key_id: [u8; 16],
    nonce_prefix: [u8; 8],
    start: u64,
    end: u64,
}

/// Counters of the block cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to decrypt.
    pub misses: u64,
    /// Bytes held (with bookkeeping).
    pub bytes: usize,
    /// Entries held.
    pub entries: usize,
}

/// A bounded LRU cache of decrypted blocks and ranges, shared by all partitions of a store.
struct BlockCache {
    state: Mutex<CacheState>,
    capacity: usize,
    max_entry: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    map: FxHashMap<CacheKey, (OwnedBytes, u64)>,
    lru: BTreeMap<u64, CacheKey>,
    tick: u64,
    bytes: usize,
}

impl BlockCache {
    fn new(capacity: usize) -> BlockCache {
        BlockCache {
            state: Mutex::new(CacheState::default()),
            capacity,
            max_entry: capacity / 8,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn get(&self, key: &CacheKey) -> Option<OwnedBytes> {
        let mut st = self.state.lock();
        st.tick += 1;
        let tick = st.tick;
        let CacheState { map, lru, .. } = &mut *st;
        match map.get_mut(key) {
            Some((bytes, t)) => {
                lru.remove(t);
                *t = tick;
                lru.insert(tick, *key);
                let b = bytes.clone();
                drop(st);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(b)
            }
            None => {
                drop(st);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn insert(&self, key: CacheKey, bytes: OwnedBytes) {
        let weight = bytes.len() + ENTRY_OVERHEAD;
        if weight > self.max_entry {
            return;
        }
        let mut st = self.state.lock();
        if st.map.contains_key(&key) {
            return;
        }
        st.tick += 1;
        let tick = st.tick;
        st.map.insert(key, (bytes, tick));
        st.lru.insert(tick, key);
        st.bytes += weight;
        while st.bytes > self.capacity {
            let Some((_, old)) = st.lru.pop_first() else {
                break;
            };
            if let Some((b, _)) = st.map.remove(&old) {
                st.bytes -= b.len() + ENTRY_OVERHEAD;
            }
        }
    }

    fn stats(&self) -> CacheStats {
        let st = self.state.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: st.bytes,
            entries: st.map.len(),
        }
    }
}

/// A tantivy [`FileHandle`] that decrypts the blocks a read needs (through the shared cache).
struct EncryptedFile {
    file: OwnedBytes,
    cipher: FileCipher,
    layout: Layout,
    cache: Arc<BlockCache>,
    key_id: [u8; 16],
    name: String,
}

impl fmt::Debug for EncryptedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedFile({}, {} bytes)", self.name, self.layout.len)
    }
}

impl EncryptedFile {
    fn cache_key(&self, start: usize, end: usize) -> CacheKey {
        CacheKey {
            key_id: self.key_id,
            nonce_prefix: self.cipher.nonce_prefix,
            start: start as u64,
            end: end as u64,
        }
    }

    fn block_range(&self, block: u64) -> Range<usize> {
        let start = block as usize * self.layout.block_size;
        start..start + self.layout.plain_len(block)
    }

    fn decrypt_into(&self, block: u64, out: &mut Vec<u8>) -> io::Result<()> {
        decrypt_block(
            &self.cipher,
            &self.layout,
            self.file.as_slice(),
            block,
            out,
            &self.name,
        )
    }

    /// The plaintext of one block, from the cache or decrypted (and cached).
    fn block(&self, block: u64) -> io::Result<OwnedBytes> {
        let r = self.block_range(block);
        let key = self.cache_key(r.start, r.end);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        let mut v = Vec::with_capacity(r.len());
        self.decrypt_into(block, &mut v)?;
        let b = OwnedBytes::new(v);
        self.cache.insert(key, b.clone());
        Ok(b)
    }
}

impl HasLen for EncryptedFile {
    fn len(&self) -> usize {
        self.layout.len
    }
}

impl FileHandle for EncryptedFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if range.start > range.end || range.end > self.layout.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: read of {range:?} beyond its {} bytes",
                    self.name, self.layout.len
                ),
            ));
        }
        if range.is_empty() {
            return Ok(OwnedBytes::empty());
        }
        let bs = self.layout.block_size;
        let (first, last) = ((range.start / bs) as u64, ((range.end - 1) / bs) as u64);
        if first == last {
            let base = first as usize * bs;
            return Ok(self
                .block(first)?
                .slice(range.start - base..range.end - base));
        }
        let key = self.cache_key(range.start, range.end);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        // Blocks read whole are decrypted straight into the result; partly read ones go through the
        // block cache (their neighbours are likely read next).
        let mut out = Vec::with_capacity(range.len());
        let mut decrypted = false;
        for block in first..=last {
            let r = self.block_range(block);
            let (s, e) = (range.start.max(r.start), range.end.min(r.end));
            if (s, e) == (r.start, r.end) {
                match self.cache.get(&self.cache_key(r.start, r.end)) {
                    Some(b) => out.extend_from_slice(&b),
                    None => {
                        self.decrypt_into(block, &mut out)?;
                        decrypted = true;
                    }
                }
            } else {
                let b = self.block(block)?;
                out.extend_from_slice(&b[s - r.start..e - r.start]);
            }
        }
        let bytes = OwnedBytes::new(out);
        if decrypted {
            self.cache.insert(key, bytes.clone());
        }
        Ok(bytes)
    }
}

/// A tantivy [`Directory`] whose files are encrypted (see the module documentation), over the
/// [`MmapDirectory`] of a partition folder. Locks, watching, existence and syncing are the inner
/// directory's; deleting the last file of a segment shreds the segment's key.
#[derive(Clone)]
pub struct EncryptedDirectory {
    inner: MmapDirectory,
    crypt: Arc<Crypt>,
    /// Owner name of the partition (`partitions/<kind>/<day>`).
    owner: Arc<str>,
    root: PathBuf,
}

impl fmt::Debug for EncryptedDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedDirectory({})", self.root.display())
    }
}

impl EncryptedDirectory {
    /// Name a file is bound to: its path in the data directory.
    fn binding(&self, path: &Path) -> String {
        format!("{}/{}", self.owner, path.to_string_lossy())
    }

    /// Owner of the key of a file: its segment's, or the partition's for other files.
    fn key_owner(&self, path: &Path) -> String {
        match path.to_str().and_then(segment_uuid) {
            Some(uuid) => format!("{}/{uuid}", self.owner),
            None => self.owner.to_string(),
        }
    }

    fn write_cipher(&self, path: &Path) -> io::Result<(FileCipher, [u8; HEADER_LEN])> {
        let owner = self.key_owner(path);
        let (id, key) = self
            .crypt
            .owner_key(&owner, true)
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::other(format!("no data key for {owner}")))?;
        let header = new_header(&self.crypt.rng, id)?;
        Ok((FileCipher::new(key, &header, &self.binding(path)), header))
    }

    fn read_cipher(&self, bytes: &[u8], path: &Path) -> io::Result<(FileCipher, Layout, Header)> {
        let name = self.binding(path);
        let header = parse_header(bytes, &name)?;
        let key = self
            .crypt
            .cipher(header.key_id, None)
            .map_err(|e| io_err(format!("{name}: {e}")))?;
        let cipher = FileCipher::new(key, &header.raw, &name);
        let layout = Layout::of(bytes.len(), cipher.block_size).ok_or_else(|| {
            io_err(format!(
                "{name}: length {} is not that of a whole encrypted file (cut short?)",
                bytes.len()
            ))
        })?;
        Ok((cipher, layout, header))
    }

    /// True if a file of segment `uuid` is left in the folder (or the folder cannot be read).
    fn segment_has_files(&self, uuid: &str) -> bool {
        match std::fs::read_dir(&self.root) {
            Ok(rd) => rd
                .flatten()
                .any(|e| segment_uuid(&e.file_name().to_string_lossy()) == Some(uuid)),
            Err(_) => true,
        }
    }
}

impl Directory for EncryptedDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        let raw = self.inner.get_file_handle(path)?;
        let wrap = |e: io::Error| OpenReadError::wrap_io_error(e, path.to_path_buf());
        let file = raw.read_bytes(0..raw.len()).map_err(wrap)?;
        let (cipher, layout, header) = self.read_cipher(file.as_slice(), path).map_err(wrap)?;
        Ok(Arc::new(EncryptedFile {
            file,
            cipher,
            layout,
            cache: self.crypt.cache.clone(),
            key_id: header.key_id,
            name: self.binding(path),
        }))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)?;
        if let Some(uuid) = path.to_str().and_then(segment_uuid) {
            if !self.segment_has_files(uuid) {
                let owner = format!("{}/{uuid}", self.owner);
                // The file is gone whatever happens here; a key left behind is shredded at the next open.
                if let Err(e) = self.crypt.shred_prefix(&owner) {
                    tracing::warn!(segment = %owner, error = %e, "could not shred the key of a deleted segment");
                }
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let wrap = |e: io::Error| OpenWriteError::wrap_io_error(e, path.to_path_buf());
        let (cipher, header) = self.write_cipher(path).map_err(wrap)?;
        let out = self.inner.open_write(path)?;
        let w = EncryptingWriter::new(out, cipher, &header).map_err(wrap)?;
        Ok(BufWriter::new(Box::new(w)))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let bytes = self.inner.atomic_read(path)?;
        let wrap = |e: io::Error| OpenReadError::wrap_io_error(e, path.to_path_buf());
        let (cipher, layout, _) = self.read_cipher(&bytes, path).map_err(wrap)?;
        let mut out = Vec::with_capacity(layout.len);
        for block in 0..layout.blocks {
            decrypt_block(
                &cipher,
                &layout,
                &bytes,
                block,
                &mut out,
                &self.binding(path),
            )
            .map_err(wrap)?;
        }
        Ok(out)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let (cipher, header) = self.write_cipher(path)?;
        let blocks = data.len().div_ceil(cipher.block_size).max(1);
        let mut out = Vec::with_capacity(HEADER_LEN + data.len() + blocks * TAG_LEN);
        {
            let mut w = EncryptingWriter::new(&mut out, cipher, &header)?;
            w.write_all(data)?;
            w.finish()?;
        }
        self.inner.atomic_write(path, &out)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}

/// Seals and opens the records of one WAL file with its data key.
pub(crate) struct RecordCipher {
    key: Arc<LessSafeKey>,
    name: String,
    crypt: Arc<Crypt>,
}

impl RecordCipher {
    fn aad(&self, at: u64) -> Vec<u8> {
        let mut a = Vec::with_capacity(WAL_LABEL.len() + self.name.len() + 9);
        a.extend_from_slice(WAL_LABEL);
        a.extend_from_slice(self.name.as_bytes());
        a.push(0);
        a.extend_from_slice(&at.to_le_bytes());
        a
    }

    /// Appends `nonce | ciphertext | tag` of `plain`, a record body to be written at WAL position `at`.
    pub(crate) fn seal_append(&self, at: u64, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        self.crypt
            .rng
            .fill(&mut nonce)
            .map_err(|_| io::Error::other("random generator failed"))?;
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(at)),
                &mut out[start..],
            )
            .map_err(|_| io::Error::other("encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// The plaintext of a record body read at WAL position `at`, decrypted in place; `None` if it fails
    /// authentication.
    pub(crate) fn open<'a>(&self, at: u64, body: &'a mut [u8]) -> Option<&'a [u8]> {
        if body.len() < RECORD_OVERHEAD {
            return None;
        }
        let (nonce, rest) = body.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(self.aad(at)), rest)
            .ok()?;
        Some(&*plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypt(dir: &Path, cache: usize) -> Arc<Crypt> {
        let cfg = EncryptionConfig {
            master: Arc::new(MasterKey::from_bytes(&[7; 32]).unwrap()),
            cache_bytes: cache,
        };
        Crypt::open(dir, Some(&cfg), true).unwrap().unwrap()
    }

    fn part_dir(data: &Path) -> (PathBuf, MmapDirectory) {
        let d = data.join("partitions/audit/2024-05-01");
        std::fs::create_dir_all(&d).unwrap();
        let m = MmapDirectory::open(&d).unwrap();
        (d, m)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    const SEG: &str = "0123456789abcdef0123456789abcdef";

    fn write(dir: &EncryptedDirectory, name: &str, data: &[u8], chunk: usize) {
        let mut w = dir.open_write(Path::new(name)).unwrap();
        for c in data.chunks(chunk.max(1)) {
            w.write_all(c).unwrap();
        }
        w.terminate().unwrap();
    }

    #[test]
    fn layouts() {
        let b: usize = 1 << 16;
        for len in [0, 1, b - 1, b, b + 1, 3 * b, 3 * b + 5] {
            let blocks = len.div_ceil(b).max(1);
            let file = HEADER_LEN + len + blocks * TAG_LEN;
            let l = Layout::of(file, b).unwrap();
            assert_eq!((l.len, l.blocks), (len, blocks as u64), "{len}");
        }
        assert!(Layout::of(HEADER_LEN + 10, b).is_none());
        assert!(Layout::of(HEADER_LEN + b + TAG_LEN + TAG_LEN, b).is_none());
        assert!(
            Layout::of(HEADER_LEN + b + TAG_LEN + 5, b).is_none(),
            "a cut last tag"
        );
    }

    #[test]
    fn round_trip_reads_any_range() {
        let data_dir = tempfile::tempdir().unwrap();
        let c = crypt(data_dir.path(), 8 << 20);
        let (d, m) = part_dir(data_dir.path());
        let dir = c.directory(&d, m);
        let b = 1 << BLOCK_SHIFT;
        for (i, len) in [0usize, 1, 100, b - 1, b, b + 1, 2 * b, 5 * b + 17]
            .into_iter()
            .enumerate()
        {
            let name = format!("{SEG}.f{i}");
            let data = pattern(len);
            write(&dir, &name, &data, 1000 + i * 777);
            let on_disk = std::fs::read(d.join(&name)).unwrap();
            assert_eq!(&on_disk[..6], MAGIC);
            if len > 64 {
                assert!(
                    !on_disk.windows(32).any(|w| w == &data[..32]),
                    "plaintext on disk"
                );
            }
            let f = dir.open_read(Path::new(&name)).unwrap();
            assert_eq!(f.len(), len);
            assert_eq!(f.read_bytes().unwrap().as_slice(), &data[..]);
            for (s, e) in [
                (0, len),
                (0, len / 2),
                (len / 3, len),
                (b.min(len), len),
                (len.saturating_sub(1), len),
            ] {
                if s <= e {
                    assert_eq!(
                        f.read_bytes_slice(s..e).unwrap().as_slice(),
                        &data[s..e],
                        "{len} {s}..{e}"
                    );
                }
            }
        }
        // Many small reads across block edges, twice: the second pass comes from the cache.
        let name = format!("{SEG}.f7");
        let data = pattern(5 * b + 17);
        let f = dir.open_read(Path::new(&name)).unwrap();
        for _ in 0..2 {
            for s in (0..data.len() - 300).step_by(4099) {
                assert_eq!(
                    f.read_bytes_slice(s..s + 300).unwrap().as_slice(),
                    &data[s..s + 300]
                );
            }
        }
        let st = c.cache_stats();
        assert!(
            st.hits > 0 && st.entries > 0 && st.bytes <= 8 << 20,
            "{st:?}"
        );
        // Out of range is an error, not a panic.
        assert!(dir
            .get_file_handle(Path::new(&name))
            .unwrap()
            .read_bytes(0..data.len() + 1)
            .is_err());
    }

    #[test]
    fn atomic_files_are_encrypted_and_bound_to_their_name() {
        let data_dir = tempfile::tempdir().unwrap();
        let c = crypt(data_dir.path(), 1 << 20);
        let (d, m) = part_dir(data_dir.path());
        let dir = c.directory(&d, m);
        let meta = br#"{"segments":[],"secret":"value"}"#;
        dir.atomic_write(Path::new("meta.json"), meta).unwrap();
        assert!(!std::fs::read(d.join("meta.json"))
            .unwrap()
            .windows(6)
            .any(|w| w == b"secret"));
        assert_eq!(dir.atomic_read(Path::new("meta.json")).unwrap(), meta);
        // A file copied under another name (or into another partition) does not open.
        std::fs::copy(d.join("meta.json"), d.join(".managed.json")).unwrap();
        let e = dir
            .atomic_read(Path::new(".managed.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("authentication"), "{e}");
        // Plaintext where a ciphertext is expected is refused.
        std::fs::write(d.join("plain.json"), meta).unwrap();
        let e = dir
            .atomic_read(Path::new("plain.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an encrypted"), "{e}");
    }

    #[test]
    fn any_change_is_detected() {
        let data_dir = tempfile::tempdir().unwrap();
        let c = crypt(data_dir.path(), 0);
        let (d, m) = part_dir(data_dir.path());
        let dir = c.directory(&d, m);
        let b = 1 << BLOCK_SHIFT;
        let data = pattern(3 * b + 100);
        let name = format!("{SEG}.idx");
        write(&dir, &name, &data, 4096);
        let path = d.join(&name);
        let good = std::fs::read(&path).unwrap();
        let read_all = || -> io::Result<Vec<u8>> {
            let h = dir
                .get_file_handle(Path::new(&name))
                .map_err(io::Error::other)?;
            Ok(h.read_bytes(0..h.len())?.as_slice().to_vec())
        };
        // Flipped bytes anywhere: header, first, middle and last block, tag.
        for at in [
            3,
            10,
            30,
            HEADER_LEN + 5,
            HEADER_LEN + b + 20,
            good.len() - 40,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            assert!(read_all().is_err(), "flip at {at} undetected");
        }
        // Cut at a block boundary, cut inside a block, a block dropped, two blocks swapped.
        let stride = b + TAG_LEN;
        let cuts: Vec<Vec<u8>> = vec![
            good[..HEADER_LEN + 3 * stride].to_vec(),
            good[..good.len() - 7].to_vec(),
            [
                &good[..HEADER_LEN + stride],
                &good[HEADER_LEN + 2 * stride..],
            ]
            .concat(),
            [
                &good[..HEADER_LEN],
                &good[HEADER_LEN + stride..HEADER_LEN + 2 * stride],
                &good[HEADER_LEN..HEADER_LEN + stride],
                &good[HEADER_LEN + 2 * stride..],
            ]
            .concat(),
        ];
        for (i, bad) in cuts.iter().enumerate() {
            std::fs::write(&path, bad).unwrap();
            assert!(read_all().is_err(), "change {i} undetected");
        }
        std::fs::write(&path, &good).unwrap();
        assert_eq!(read_all().unwrap(), data);
    }

    #[test]
    fn segment_keys_are_shared_and_shredded_with_the_last_file() {
        let data_dir = tempfile::tempdir().unwrap();
        let c = crypt(data_dir.path(), 1 << 20);
        let (d, m) = part_dir(data_dir.path());
        let dir = c.directory(&d, m);
        write(&dir, &format!("{SEG}.idx"), b"postings", 3);
        write(&dir, &format!("{SEG}.store"), b"documents", 3);
        dir.atomic_write(Path::new("meta.json"), b"{}").unwrap();
        let owners: Vec<String> = c.keyring().entries().into_iter().map(|e| e.owner).collect();
        assert_eq!(
            owners.iter().filter(|o| o.ends_with(SEG)).count(),
            1,
            "{owners:?}"
        );
        assert!(owners.contains(&"partitions/audit/2024-05-01".to_string()));
        dir.delete(Path::new(&format!("{SEG}.idx"))).unwrap();
        assert_eq!(c.keyring().len(), 2);
        dir.delete(Path::new(&format!("{SEG}.store"))).unwrap();
        assert_eq!(c.keyring().len(), 1);
        // Retention: the partition goes, then its keys.
        write(&dir, &format!("{}.idx", "f".repeat(32)), b"x", 1);
        assert_eq!(c.keyring().len(), 2);
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(c.shred_partition(&d).unwrap(), 2);
        assert!(c.keyring().is_empty());
    }

    #[test]
    fn orphan_keys_are_swept_at_open() {
        let data_dir = tempfile::tempdir().unwrap();
        let c = crypt(data_dir.path(), 1 << 20);
        let (d, m) = part_dir(data_dir.path());
        let dir = c.directory(&d, m);
        write(&dir, &format!("{SEG}.idx"), b"keep", 1);
        let other = "a".repeat(32);
        write(&dir, &format!("{other}.idx"), b"lost", 1);
        std::fs::remove_file(d.join(format!("{other}.idx"))).unwrap();
        c.wal_cipher("00000000000000000000.wal", true).unwrap();
        assert_eq!(c.keyring().len(), 3);
        drop((dir, c));
        let c = crypt(data_dir.path(), 1 << 20);
        let owners: Vec<String> = c.keyring().entries().into_iter().map(|e| e.owner).collect();
        assert_eq!(owners, vec![format!("partitions/audit/2024-05-01/{SEG}")]);
    }

    #[test]
    fn the_encryption_rule() {
        let master: Arc<dyn KeyWrapper> = Arc::new(MasterKey::from_bytes(&[1; 32]).unwrap());
        let cfg = EncryptionConfig::new(master);
        // Plaintext data, then a key: refused.
        let plain = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(plain.path().join("wal")).unwrap();
        std::fs::write(plain.path().join("wal/00000000000000000000.wal"), b"x").unwrap();
        let e = Crypt::open(plain.path(), Some(&cfg), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unencrypted"), "{e}");
        assert!(Crypt::open(plain.path(), None, true).unwrap().is_none());
        // Encrypted: no key refused, wrong key refused, right key fine; read-only does not create.
        let enc = tempfile::tempdir().unwrap();
        assert!(Crypt::open(enc.path(), Some(&cfg), false)
            .unwrap()
            .is_none());
        assert!(!keys::keyring_path(enc.path()).exists());
        Crypt::open(enc.path(), Some(&cfg), true).unwrap().unwrap();
        let e = Crypt::open(enc.path(), None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is encrypted"), "{e}");
        let wrong = EncryptionConfig::new(Arc::new(MasterKey::from_bytes(&[2; 32]).unwrap()));
        let e = Crypt::open(enc.path(), Some(&wrong), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wrong master key"), "{e}");
        assert!(Crypt::open(enc.path(), Some(&cfg), false)
            .unwrap()
            .is_some());
    }

    #[test]
    fn wal_records_bind_their_position() {
        let data_dir = tempfile::tempdir().unwrap();
        let c = crypt(data_dir.path(), 0);
        let w = c.wal_cipher("1.wal", true).unwrap().unwrap();
        let mut body = Vec::new();
        w.seal_append(100, b"record body", &mut body).unwrap();
        assert_eq!(body.len(), 11 + RECORD_OVERHEAD);
        assert_eq!(w.open(100, &mut body.clone()).unwrap(), b"record body");
        assert!(w.open(101, &mut body.clone()).is_none());
        let other = c.wal_cipher("2.wal", true).unwrap().unwrap();
        assert!(other.open(100, &mut body.clone()).is_none());
        let mut bad = body.clone();
        bad[15] ^= 1;
        assert!(w.open(100, &mut bad).is_none());
        assert!(w.open(100, &mut [0u8; 5]).is_none());
    }
}
