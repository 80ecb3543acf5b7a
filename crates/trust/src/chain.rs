//! Tamper evidence for a data directory, after CloudTrail's log-file validation: a chain of signed
//! digests that says what every file under the data directory holds, and a verifier that walks the chain
//! and compares it with the files on disk.
//!
//! This module is the format: keys, hashes, the Merkle tree, manifests and digests, the expected state a
//! chain describes, and the verifier. It knows the layout of a data directory (which paths are log data,
//! WAL, state files) but not how segments are read: the store supplies that through [`SegmentSource`]
//! (`quarry_store::integrity` is the writer and the entry point of `quarry verify`).
//!
//! # Format
//!
//! - **Signing key**: ed25519, PKCS#8 (`keys/signing.pk8`, mode 0600, on the server) and its public key
//!   (`keys/signing.pub`: `ed25519:<base64 of the 32 bytes>`). Both paths can be changed; the public key
//!   given to the verifier should come from somewhere else (see the trust model below). A key is named by
//!   its *key id*, the hex SHA-256 of the 32 public key bytes.
//! - **Events and blocks**: the store keeps events in *blocks* (up to 256 events of one source, its unit
//!   of storage and of decompression). A segment's Merkle tree has one leaf per block, in document order:
//!   `SHA-256(0x00 || "qbl2" || len | the block document's stored bytes (its source, formats and every
//!   event's raw text, hint and parse error, as the store serialised them) | event count | each event's
//!   time (i64 BE))`, lengths and counts u64 BE (the store computes it: `quarry_store::integrity`). Hashing
//!   the stored bytes rather than decoded events keeps sealing at the speed of bulk SHA-256. Inner nodes are `SHA-256(0x01 || left || right)` over the RFC 6962 tree (the left subtree
//!   holds the largest power of two smaller than the count; the empty tree is `SHA-256("")`). Every event's
//!   stored record is hashed; an event is proven by its block (which reading it decompresses anyway) and
//!   the block's path to the root. Leaves per block rather than per event keep sealing at the speed of
//!   bulk SHA-256 (a hash per event costs a call each, several times more), and blocks are what merges
//!   move whole, so a merged segment's leaves are its inputs' leaves.
//! - **Segment manifest** ([`SegmentManifest`]): partition, segment id, each file's name, length and
//!   SHA-256 as on disk (ciphertext when encrypted), tantivy document count, block and event counts, the
//!   Merkle root and first leaf, and the events' time range.
//! - **Digest** (`integrity/digests/<seq, 20 digits>.json`, written atomically and never overwritten):
//!   `{"body": DigestBody, "signature": base64}`. The body has the sequence number, kind (`start`,
//!   `periodic`, `final`, `external`), the time it was written, the previous digest's time and signature,
//!   the cadence, the key id, the [`Changes`] since the previous digest, the anomalies the writer saw
//!   (changes it did not make), notes (changes made from outside the store, such as a token created), the
//!   number of sealed events and the SHA-256 of the expected state after it. The signature is ed25519 over
//!   `"quarry-integrity-digest-v1\n" || serde_json(body)` (the body's fields in declaration order, maps
//!   sorted): it covers the previous digest's signature, so each digest vouches for the whole chain
//!   before it.
//! - **Expected state** ([`ChainState`]): folding every digest's changes from the first gives, for every
//!   covered file, what it must hold: sealed segments (their manifests), whole files (length and SHA-256:
//!   `checkpoint.json`, `meta.json`, keys, tokens, detection state) and append-only files (`wal/*.wal`,
//!   `*.jsonl` journals: the byte ranges sealed so far, each with its SHA-256, so a digest hashes only what
//!   was appended since the last one). Segments removed by merges stay as *runs* that must appear unchanged,
//!   contiguous, in a live segment of the same partition; retention deletes whole partitions and says which
//!   policy did.
//!
//! # What is covered
//!
//! Every file under the data directory, except: `LOCK` (an empty lock file, the data directory's lock)
//! and tantivy's empty `.tantivy-*.lock` files in partitions (a lock file with content is reported).
//! Temporary files (`*.tmp`, `.tmp*`, of atomic writes) are sealed only by the digests written while the
//! store is quiet (start, final, external: a crash can leave them; they may go later), and
//! `integrity/notes/*` (changes announced by a command while the server runs) never: new ones are
//! *pending* while a server runs and *unexpected* when none does. The digests are covered by their own
//! signatures and links, and `integrity/state.json` (the writer's cache of the expected state) must match
//! the state hash of the digest it names.
//!
//! # Trust model
//!
//! The server holds the signing key: whoever controls the server process or reads its key can write a
//! valid chain, so the chain proves nothing against them. What it proves is against later change: once a
//! digest is written and its public key (or a digest, see anchors) is held somewhere the attacker cannot
//! change, any change to covered data — modified, removed, inserted, reordered or truncated files, removed
//! or edited digests — is reported. Verifying with the public key found in the data directory proves only
//! that the chain is consistent: an attacker with write access can replace the key and re-sign a whole
//! new chain. Hold the public key elsewhere and pass it to `quarry verify --public-key`.
//!
//! # What verify can and cannot prove
//!
//! - It proves, for everything sealed by the last digest, that the files hold exactly what was sealed,
//!   and that every event ever sealed is still present (in its segment, or in the segment a merge moved it
//!   to) unless a recorded retention decision deleted its partition.
//! - The signatures and links are always checked from the first digest (sequence 0, the genesis), so a
//!   removed, edited, forged or reordered digest anywhere is found. `--since T` limits only the time-gap
//!   report and the anomalies recorded in digests to those after `T`.
//! - Time gaps: each digest records its cadence; two consecutive digests further apart than twice the
//!   cadence plus a slack are a gap, unless the first of them is a clean-shutdown (`final`) or external
//!   digest, in which case the gap is downtime and only noted.
//! - Data written after the last digest is not covered yet. While a server runs (verify finds `LOCK`
//!   held), such changes are *pending*, not findings, when they are consistent extensions: an append-only
//!   file grown past its sealed ranges (with those ranges intact), new segments and new files of the kinds
//!   the store writes, changed mutable files (checkpoint, `meta.json`, detection state), WAL files removed
//!   once indexed, segments no longer referenced by `meta.json` (merged) and partitions removed after the
//!   last digest (the next digest records why; an unexplained one becomes an anomaly). Sealed segment files
//!   and sealed ranges never change legitimately: their change is always a finding. With no server running
//!   the data directory must match the chain exactly and the chain must end with a `final` (or `external`)
//!   digest.
//! - Deleting the last digests: with no server running, a chain that does not end with a final digest
//!   is reported as truncated (it is also what a crash leaves until the next start seals the recovery);
//!   while a server runs, a head older than the cadence allows is a time gap. Files sealed only by the
//!   deleted digests then show as unexpected. What cannot be detected is a *rollback*: deleting the last
//!   digests down to an earlier final digest and putting every file back as it was then. Against that,
//!   keep the head (`quarry verify --json` prints its sequence and signature) somewhere else and pass it
//!   back as an [`Anchor`].
//! - Nothing is proven about data before its first digest: events are covered by the WAL ranges of the
//!   digests written while they were in the WAL, then by their segment's manifest; a change made within
//!   one cadence of the write, before any digest, is sealed as written. A crash leaves what was written
//!   after the last digest uncovered (verify reports it, with the truncated chain, until the next start
//!   seals it as recovered).
//! - Mutable files (checkpoint, `meta.json`, detection state, keys, tokens) are sealed as found at each
//!   digest: a change made to them while the server runs, between two digests, is sealed as if the server
//!   had made it. Append-only files and segments do not have this weakness: the writer hashes only new
//!   bytes and new segments, records as an anomaly anything that shrank or vanished under it, and a
//!   merge's result keeps the leaves sealed for the segments it replaced, so a change made to a sealed
//!   segment before a merge rewrote it is still found.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::digest::{Context, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Version of the digest format written into every digest.
pub const FORMAT_VERSION: u32 = 1;
/// Folder of the digests, relative to the data directory.
pub const DIGEST_DIR: &str = "integrity/digests";
/// Folder where commands leave notes for a running server to seal, relative to the data directory.
pub const NOTES_DIR: &str = "integrity/notes";
/// The writer's cache of the expected state, relative to the data directory.
pub const STATE_CACHE: &str = "integrity/state.json";
/// Default place of the signing key, relative to the data directory.
pub const SIGNING_KEY_FILE: &str = "keys/signing.pk8";
/// Default place of the public key, relative to the data directory.
pub const PUBLIC_KEY_FILE: &str = "keys/signing.pub";
/// Prefix of the signed message of a digest.
const SIGNING_DOMAIN: &[u8] = b"quarry-integrity-digest-v1\n";
/// Prefix of the public key file.
const PUBLIC_KEY_PREFIX: &str = "ed25519:";
/// A SHA-256 value.
pub type Hash = [u8; 32];

/// Failures reading or writing keys and digests.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A key file is not a key.
    #[error("{path}: {msg}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A digest or state file is malformed.
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Another writer appended a digest with this sequence number first.
    #[error("digest {0} exists already: another process is writing the chain")]
    Exists(u64),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ChainError + '_ {
    move |source| ChainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------------
// Hashing

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    to_hash(ring::digest::digest(&SHA256, data).as_ref())
}

fn to_hash(b: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&b[..32]);
    h
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Reads a 64-digit hex SHA-256.
pub fn from_hex(s: &str) -> Option<Hash> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let v = |c: u8| (c as char).to_digit(16);
        h[i] = (v(pair[0])? * 16 + v(pair[1])?) as u8;
    }
    Some(h)
}

/// SHA-256 of `len` bytes of `file` from offset `from`; fails with `UnexpectedEof` if the file is shorter.
pub fn hash_range(file: &mut File, from: u64, len: u64) -> io::Result<Hash> {
    file.seek(SeekFrom::Start(from))?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; (256 << 10).min(len.max(1) as usize)];
    let mut left = len;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        file.read_exact(&mut buf[..n])?;
        ctx.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(to_hash(ctx.finish().as_ref()))
}

/// Length and SHA-256 of a whole open file (as long as it is when called).
pub fn hash_open_file(file: &mut File) -> io::Result<(u64, Hash)> {
    let len = file.metadata()?.len();
    Ok((len, hash_range(file, 0, len)?))
}

/// Length and SHA-256 of a whole file.
pub fn hash_file(path: &Path) -> io::Result<(u64, Hash)> {
    hash_open_file(&mut File::open(path)?)
}

// ---------------------------------------------------------------------------------------------------
// Merkle tree

/// RFC 6962 leaf hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0]);
    ctx.update(data);
    to_hash(ctx.finish().as_ref())
}

/// RFC 6962 inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[1]);
    ctx.update(left);
    ctx.update(right);
    to_hash(ctx.finish().as_ref())
}

/// Builds an RFC 6962 Merkle tree root from leaf hashes given one at a time, in O(log n) memory.
#[derive(Debug, Clone, Default)]
pub struct MerkleBuilder {
    /// Roots of complete subtrees, left to right, with their heights (strictly decreasing).
    stack: Vec<(u32, Hash)>,
    count: u64,
}

impl MerkleBuilder {
    /// Adds the next leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(h, top)) = self.stack.last() {
            if h != node.0 {
                break;
            }
            self.stack.pop();
            node = (h + 1, node_hash(&top, &node.1));
        }
        self.stack.push(node);
        self.count += 1;
    }

    /// Leaves added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The root of the leaves added so far (`SHA-256("")` for none).
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut acc)) = it.next() else {
            return sha256(b"");
        };
        for (_, left) in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The Merkle root of a list of leaf hashes.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    let mut b = MerkleBuilder::default();
    for l in leaves {
        b.push(*l);
    }
    b.root()
}

/// A run of events that must appear, contiguous and unchanged, in a stream of leaves.
#[derive(Debug, Clone)]
pub struct Run {
    /// Caller's identifier of the run.
    pub id: usize,
    /// Its first leaf.
    pub first_leaf: Hash,
    /// Its number of leaves.
    pub leaves: u64,
    /// The Merkle root of its leaves.
    pub root: Hash,
}

/// Finds runs (the blocks of segments that merges replaced) in the leaves (blocks) of the segments that
/// hold them now. Candidates start where a leaf equals a run's first leaf, and a run is found when
/// the Merkle root of the following `leaves` leaves equals its root. Feed each segment's leaves, then call
/// [`RunMatcher::end_segment`] (a run never spans segments).
#[derive(Debug, Default)]
pub struct RunMatcher {
    runs: Vec<Run>,
    by_first: HashMap<Hash, Vec<usize>>,
    active: Vec<(usize, MerkleBuilder)>,
    found: Vec<bool>,
}

/// At most this many candidate starts of one run are followed at once (identical events repeated many
/// times would otherwise make matching quadratic); further starts are skipped while these are open.
const MAX_ACTIVE_PER_RUN: usize = 16;

impl RunMatcher {
    /// A matcher for these runs.
    pub fn new(runs: Vec<Run>) -> Self {
        let mut by_first: HashMap<Hash, Vec<usize>> = HashMap::new();
        let mut found = vec![false; runs.len()];
        for (i, r) in runs.iter().enumerate() {
            if r.leaves == 0 {
                found[i] = true;
            } else {
                by_first.entry(r.first_leaf).or_default().push(i);
            }
        }
        RunMatcher {
            runs,
            by_first,
            active: Vec::new(),
            found,
        }
    }

    /// True when there is nothing to look for.
    pub fn is_idle(&self) -> bool {
        self.by_first.is_empty()
    }

    /// Feeds the next leaf of the current segment.
    pub fn push(&mut self, leaf: &Hash) {
        if let Some(starts) = self.by_first.get(leaf) {
            for &i in starts {
                let open = self.active.iter().filter(|(a, _)| *a == i).count();
                if !self.found[i] && open < MAX_ACTIVE_PER_RUN {
                    self.active.push((i, MerkleBuilder::default()));
                }
            }
        }
        if self.active.is_empty() {
            return;
        }
        let runs = &self.runs;
        let found = &mut self.found;
        self.active.retain_mut(|(i, b)| {
            if found[*i] {
                return false;
            }
            b.push(*leaf);
            if b.count() < runs[*i].leaves {
                return true;
            }
            if b.root() == runs[*i].root {
                found[*i] = true;
            }
            false
        });
    }

    /// Ends the current segment: open candidates are dropped.
    pub fn end_segment(&mut self) {
        self.active.clear();
    }

    /// The runs not found so far.
    pub fn missing(&self) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.found[*i])
            .map(|(_, r)| r)
    }
}

// ---------------------------------------------------------------------------------------------------
// Keys

/// An ed25519 public key: what the verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<PublicKey> {
        (b.len() == 32).then(|| {
            let mut k = [0u8; 32];
            k.copy_from_slice(b);
            PublicKey(k)
        })
    }

    /// Reads a public key file: `ed25519:<base64>` (what [`PublicKey::to_text`] writes), bare base64 of
    /// the 32 bytes, or the 32 raw bytes.
    pub fn load(path: &Path) -> Result<PublicKey, ChainError> {
        let bytes = fs::read(path).map_err(io_err(path))?;
        Self::parse(&bytes).ok_or_else(|| ChainError::Key {
            path: path.to_path_buf(),
            msg: "not an ed25519 public key (expected `ed25519:` and the base64 of 32 bytes)"
                .into(),
        })
    }

    /// Parses the contents of a public key file (see [`PublicKey::load`]).
    pub fn parse(bytes: &[u8]) -> Option<PublicKey> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let t = text.trim();
            let t = t.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(t);
            if let Ok(raw) = B64.decode(t.trim()) {
                return Self::from_bytes(&raw);
            }
        }
        Self::from_bytes(bytes)
    }

    /// The text of a public key file: `ed25519:<base64>` and a newline.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}\n", B64.encode(self.0))
    }

    /// The key's id: hex SHA-256 of its 32 bytes.
    pub fn key_id(&self) -> String {
        to_hex(&sha256(&self.0))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// True if `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// The signing key of a chain (held by the server).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public.key_id())
    }
}

impl SigningKey {
    /// A new key, not saved anywhere (tests, or a caller that stores the PKCS#8 itself).
    pub fn generate_in_memory() -> Result<(SigningKey, Vec<u8>), ChainError> {
        let doc =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| ChainError::Key {
                path: PathBuf::new(),
                msg: "cannot generate an ed25519 key".into(),
            })?;
        let pkcs8 = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&pkcs8, Path::new("(generated)"))?, pkcs8))
    }

    /// Generates a key, writes it as PKCS#8 to `key_path` (mode 0600, refusing to replace a file) and its
    /// public key to `public_path`.
    pub fn generate(key_path: &Path, public_path: &Path) -> Result<SigningKey, ChainError> {
        let (key, pkcs8) = Self::generate_in_memory()?;
        for p in [key_path, public_path] {
            if let Some(dir) = p.parent() {
                fs::create_dir_all(dir).map_err(io_err(dir))?;
            }
        }
        write_new_private(key_path, &pkcs8)?;
        write_file_atomic(public_path, key.public.to_text().as_bytes())?;
        Ok(key)
    }

    /// Reads a PKCS#8 ed25519 key.
    pub fn load(key_path: &Path) -> Result<SigningKey, ChainError> {
        let bytes = fs::read(key_path).map_err(io_err(key_path))?;
        Self::from_pkcs8(&bytes, key_path)
    }

    fn from_pkcs8(bytes: &[u8], path: &Path) -> Result<SigningKey, ChainError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes).map_err(|e| ChainError::Key {
                path: path.to_path_buf(),
                msg: format!("not a PKCS#8 ed25519 key: {e}"),
            })?;
        let public =
            PublicKey::from_bytes(pair.public_key().as_ref()).ok_or_else(|| ChainError::Key {
                path: path.to_path_buf(),
                msg: "unexpected public key length".into(),
            })?;
        Ok(SigningKey { pair, public })
    }

    /// Its public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), ChainError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), ChainError> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Writes a file so that readers see the old or the new content: temporary file, fsync, rename.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), ChainError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent(path)
}

// ---------------------------------------------------------------------------------------------------
// Format

/// One file of a sealed segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// File name within the partition directory.
    pub name: String,
    /// Length in bytes.
    pub len: u64,
    /// Hex SHA-256 of its bytes on disk.
    pub sha256: String,
}

/// The manifest of a sealed tantivy segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentManifest {
    /// Partition directory, relative to the data directory (`partitions/<kind>/<YYYY-MM-DD>`, or
    /// `<YYYY-MM-DD>@<namespace>` for a namespace's own).
    pub partition: String,
    /// Segment id (32 hex digits, as in its file names).
    pub segment: String,
    /// Its files, sorted by name.
    pub files: Vec<FileDigest>,
    /// tantivy documents (block and event documents).
    pub docs: u64,
    /// Stored blocks.
    pub blocks: u64,
    /// Events.
    pub events: u64,
    /// Hex Merkle root of its blocks' leaves.
    pub merkle_root: String,
    /// Hex leaf of its first block (empty when it has none).
    #[serde(default)]
    pub first_leaf: String,
    /// Earliest event time (UTC ns; `i64::MAX` when empty).
    pub min_ts: i64,
    /// Latest event time (UTC ns; `i64::MIN` when empty).
    pub max_ts: i64,
}

/// Why something covered is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// A merge replaced the segment; its events are in these segments (sealed in the same digest).
    Merged {
        /// The segments sealed in the same digest in that partition.
        into: Vec<String>,
    },
    /// Retention deleted the partition.
    Retention {
        /// The rule: `age` or `size`, with its detail.
        policy: String,
    },
    /// A WAL file removed because every record in it is in segments.
    Indexed {
        /// The checkpoint's replay position when it was removed.
        replay_from: u64,
    },
    /// Crash recovery cut or removed a torn WAL tail.
    CrashRecovery {
        /// What recovery found.
        detail: String,
    },
    /// tantivy removed a file no segment uses.
    GarbageCollected,
    /// The writer does not know (always accompanied by an anomaly).
    Unexplained,
}

/// A segment that is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRemoval {
    /// Its partition.
    pub partition: String,
    /// Its id.
    pub segment: String,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

/// A partition that is gone, with everything in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRemoval {
    /// Its directory relative to the data directory.
    pub partition: String,
    /// Sealed segments it held.
    pub segments: u64,
    /// Sealed events it held.
    pub events: u64,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

/// Bytes appended to an append-only file, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRange {
    /// File, relative to the data directory.
    pub path: String,
    /// First byte.
    pub from: u64,
    /// Byte after the last.
    pub to: u64,
    /// Hex SHA-256 of the bytes `from..to`.
    pub sha256: String,
}

/// The new content of a file sealed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WholeFile {
    /// File, relative to the data directory.
    pub path: String,
    /// Length.
    pub len: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// A file that is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRemoval {
    /// File, relative to the data directory.
    pub path: String,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

/// An append-only file cut back: its sealed ranges past `len` are dropped (`len` is a range boundary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// File, relative to the data directory.
    pub path: String,
    /// Sealed length kept.
    pub len: u64,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

/// Everything covered that changed since the previous digest, applied in this order: partitions removed,
/// segments removed, segments added, files removed, truncations, appended ranges, whole files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Partitions deleted (by retention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions_removed: Vec<PartitionRemoval>,
    /// Segments gone (merged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments_removed: Vec<SegmentRemoval>,
    /// New sealed segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments_added: Vec<SegmentManifest>,
    /// Files gone (WAL files once indexed, unused segment files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_removed: Vec<FileRemoval>,
    /// Append-only files cut back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<Truncation>,
    /// Bytes appended to append-only files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appended: Vec<AppendRange>,
    /// Files sealed as a whole (new or changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<WholeFile>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self == &Changes::default()
    }
}

/// What a finding (or an anomaly recorded by the writer) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Content differs from what was sealed.
    Modified,
    /// Something sealed is gone.
    Missing,
    /// Something is there that was never sealed (inserted).
    Unexpected,
    /// Sealed content found in another place or order.
    Reordered,
    /// A file is shorter than what was sealed.
    Truncated,
    /// A digest signed by another key.
    Forged,
    /// A digest whose signature does not match its content.
    BadSignature,
    /// Digests that do not follow each other (link, sequence, or state).
    BrokenChain,
    /// A period without digests.
    TimeGap,
}

impl Category {
    /// All categories, in report order.
    pub const ALL: [Category; 9] = [
        Category::Forged,
        Category::BadSignature,
        Category::BrokenChain,
        Category::Missing,
        Category::Truncated,
        Category::Modified,
        Category::Reordered,
        Category::Unexpected,
        Category::TimeGap,
    ];

    /// Its name in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Category::Modified => "modified",
            Category::Missing => "missing",
            Category::Unexpected => "unexpected",
            Category::Reordered => "reordered",
            Category::Truncated => "truncated",
            Category::Forged => "forged",
            Category::BadSignature => "bad-signature",
            Category::BrokenChain => "broken-chain",
            Category::TimeGap => "time-gap",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change the writer saw but did not make, recorded in the digest that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    /// What kind of change.
    pub category: Category,
    /// Path relative to the data directory.
    pub path: String,
    /// Details.
    pub detail: String,
}

/// A change made from outside the store (a command), recorded with the digest that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// What happened, e.g. `token created`, `keys rotated`.
    pub what: String,
    /// Details (never secrets).
    #[serde(default)]
    pub detail: String,
    /// The files it changed, relative to the data directory.
    #[serde(default)]
    pub files: Vec<String>,
    /// When it happened (UTC ns).
    #[serde(default)]
    pub time_ns: i64,
}

/// Why a digest was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestKind {
    /// A store opened the data directory (the first digest of a chain is one too).
    Start,
    /// The cadence elapsed.
    Periodic,
    /// The store closed cleanly: the digest covers every file.
    Final,
    /// A command changed the data directory while no server ran: the digest covers every file.
    External,
}

impl DigestKind {
    /// True if nothing should change after such a digest until the next start (the data directory was
    /// left quiet).
    pub fn quiescent(&self) -> bool {
        matches!(self, DigestKind::Final | DigestKind::External)
    }

    /// Its name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DigestKind::Start => "start",
            DigestKind::Periodic => "periodic",
            DigestKind::Final => "final",
            DigestKind::External => "external",
        }
    }
}

/// Everything a digest says; the signature covers it all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestBody {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// Sequence number (0 for the first digest of a chain).
    pub seq: u64,
    /// Why it was written.
    pub kind: DigestKind,
    /// When it was written (UTC ns).
    pub time_ns: i64,
    /// When the previous digest was written (the start of the interval this one covers).
    pub prev_time_ns: Option<i64>,
    /// The writer's cadence in milliseconds (a longer silence after this digest is a time gap).
    pub cadence_ms: u64,
    /// Key id of the signing key.
    pub key_id: String,
    /// The previous digest's signature (empty for the first).
    pub prev_signature: String,
    /// What changed since the previous digest.
    pub changes: Changes,
    /// Changes the writer did not make.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<Anomaly>,
    /// Changes made from outside the store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// Events in the sealed segments after this digest.
    pub events: u64,
    /// Hex SHA-256 of the expected state after this digest ([`ChainState::hash`]).
    pub state_hash: String,
}

/// A signed digest, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// What it says.
    pub body: DigestBody,
    /// Base64 ed25519 signature of [`Digest::signed_message`].
    pub signature: String,
}

/// Result of checking a digest's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Signed by the trusted key over exactly this content.
    Valid,
    /// Claims another key.
    OtherKey,
    /// Claims the trusted key, but the signature does not match the content.
    Invalid,
}

impl Digest {
    /// The signed message of a body: the domain prefix and the body's canonical JSON.
    pub fn signed_message(body: &DigestBody) -> Vec<u8> {
        let mut m = SIGNING_DOMAIN.to_vec();
        m.extend_from_slice(&serde_json::to_vec(body).unwrap_or_default());
        m
    }

    /// Signs a body.
    pub fn sign(body: DigestBody, key: &SigningKey) -> Digest {
        let signature = B64.encode(key.sign(&Self::signed_message(&body)));
        Digest { body, signature }
    }

    /// Checks the signature against the trusted key.
    pub fn check(&self, key: &PublicKey) -> SignatureCheck {
        let valid = B64
            .decode(&self.signature)
            .is_ok_and(|sig| key.verify(&Self::signed_message(&self.body), &sig));
        if valid {
            SignatureCheck::Valid
        } else if self.body.key_id != key.key_id() {
            SignatureCheck::OtherKey
        } else {
            SignatureCheck::Invalid
        }
    }
}

/// Path of digest `seq` under a data directory.
pub fn digest_path(data_dir: &Path, seq: u64) -> PathBuf {
    data_dir.join(DIGEST_DIR).join(digest_file_name(seq))
}

/// File name of digest `seq`.
pub fn digest_file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// Path of digest `seq` relative to the data directory.
pub fn digest_rel(seq: u64) -> String {
    format!("{DIGEST_DIR}/{}", digest_file_name(seq))
}

/// Writes a digest atomically, never replacing an existing one ([`ChainError::Exists`]).
pub fn write_digest(data_dir: &Path, digest: &Digest) -> Result<PathBuf, ChainError> {
    let dir = data_dir.join(DIGEST_DIR);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = digest_path(data_dir, digest.body.seq);
    let tmp = dir.join(format!(".{}.tmp", digest_file_name(digest.body.seq)));
    let mut bytes = serde_json::to_vec_pretty(digest).map_err(|e| ChainError::Format {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    bytes.push(b'\n');
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    // A hard link fails if the target exists: two writers cannot both append the same sequence number.
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ChainError::Exists(digest.body.seq))
        }
        Err(e) => return Err(io_err(&path)(e)),
    }
    sync_parent(&path)?;
    Ok(path)
}

/// Reads a digest file.
pub fn read_digest(path: &Path) -> Result<Digest, ChainError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|e| ChainError::Format {
        path: path.to_path_buf(),
        msg: format!("not a digest: {e}"),
    })
}

/// Digest files by sequence number, sorted, and the other entries of the digest folder.
pub type DigestFiles = (Vec<(u64, PathBuf)>, Vec<PathBuf>);

/// The digest files of a data directory by sequence number, and the other entries of the digest folder.
pub fn list_digests(data_dir: &Path) -> Result<DigestFiles, ChainError> {
    let dir = data_dir.join(DIGEST_DIR);
    let mut good = Vec::new();
    let mut other = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((good, other)),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    for entry in rd {
        let path = entry.map_err(io_err(&dir))?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        match seq {
            Some(s) if path.is_file() => good.push((s, path)),
            _ => other.push(path),
        }
    }
    good.sort();
    other.sort();
    Ok((good, other))
}

// ---------------------------------------------------------------------------------------------------
// Expected state

/// A sealed range of an append-only file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// First byte.
    pub from: u64,
    /// Byte after the last.
    pub to: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// What a covered file must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Tracked {
    /// Sealed as a whole.
    Whole {
        /// Length.
        len: u64,
        /// Hex SHA-256.
        sha256: String,
    },
    /// Append-only: these contiguous ranges from 0 are sealed; bytes past `len` are not yet.
    Append {
        /// Sealed length (the end of the last range).
        len: u64,
        /// Sealed ranges.
        ranges: Vec<Range>,
    },
}

/// A segment a merge replaced: its events must still be found, contiguous and unchanged, in a live
/// segment of its partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedSegment {
    /// Its id.
    pub segment: String,
    /// Its blocks.
    pub blocks: u64,
    /// Its events.
    pub events: u64,
    /// Hex leaf of its first block.
    pub first_leaf: String,
    /// Hex Merkle root of its blocks' leaves.
    pub merkle_root: String,
    /// The digest that recorded the merge.
    pub seq: u64,
}

/// The expected state of a data directory: the fold of a chain's changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// Sealed segments by partition and id.
    pub segments: BTreeMap<String, BTreeMap<String, SegmentManifest>>,
    /// Segments replaced by merges, by partition.
    pub merged: BTreeMap<String, Vec<MergedSegment>>,
    /// Covered files other than segment files, by path relative to the data directory.
    pub files: BTreeMap<String, Tracked>,
}

impl ChainState {
    /// Applies a digest's changes; returns the contradictions found (a change to something that is not
    /// there, a range that does not continue its file).
    pub fn apply(&mut self, seq: u64, c: &Changes) -> Vec<String> {
        let mut bad = Vec::new();
        for p in &c.partitions_removed {
            self.remove_partition(&p.partition);
        }
        for r in &c.segments_removed {
            let removed = self
                .segments
                .get_mut(&r.partition)
                .and_then(|m| m.remove(&r.segment));
            match removed {
                None => bad.push(format!(
                    "removes segment {} of {} which is not sealed",
                    r.segment, r.partition
                )),
                Some(m) => {
                    if matches!(r.reason, Reason::Merged { .. }) && m.events > 0 {
                        self.merged
                            .entry(r.partition.clone())
                            .or_default()
                            .push(MergedSegment {
                                segment: m.segment,
                                blocks: m.blocks,
                                events: m.events,
                                first_leaf: m.first_leaf,
                                merkle_root: m.merkle_root,
                                seq,
                            });
                    }
                }
            }
            if self
                .segments
                .get(&r.partition)
                .is_some_and(|m| m.is_empty())
            {
                self.segments.remove(&r.partition);
            }
        }
        for m in &c.segments_added {
            let part = self.segments.entry(m.partition.clone()).or_default();
            if part.insert(m.segment.clone(), m.clone()).is_some() {
                bad.push(format!(
                    "seals segment {} of {} twice",
                    m.segment, m.partition
                ));
            }
        }
        for f in &c.files_removed {
            if self.files.remove(&f.path).is_none() {
                bad.push(format!("removes {} which is not covered", f.path));
            }
        }
        for t in &c.truncated {
            match self.files.get_mut(&t.path) {
                Some(Tracked::Append { len, ranges }) => {
                    ranges.retain(|r| r.to <= t.len);
                    *len = ranges.last().map(|r| r.to).unwrap_or(0);
                    if *len != t.len {
                        bad.push(format!(
                            "cuts {} at {} which is not a sealed range boundary",
                            t.path, t.len
                        ));
                    }
                }
                _ => bad.push(format!(
                    "cuts {} which is not an append-only covered file",
                    t.path
                )),
            }
        }
        for a in &c.appended {
            let entry = self.files.entry(a.path.clone()).or_insert(Tracked::Append {
                len: 0,
                ranges: Vec::new(),
            });
            match entry {
                Tracked::Append { len, ranges } => {
                    if a.from != *len || a.to < a.from {
                        bad.push(format!(
                            "appends {}..{} to {} whose sealed length is {}",
                            a.from, a.to, a.path, len
                        ));
                    }
                    if a.to > a.from {
                        ranges.push(Range {
                            from: a.from,
                            to: a.to,
                            sha256: a.sha256.clone(),
                        });
                    }
                    *len = a.to;
                }
                Tracked::Whole { .. } => {
                    bad.push(format!("appends to {} which is sealed whole", a.path))
                }
            }
        }
        for f in &c.files {
            self.files.insert(
                f.path.clone(),
                Tracked::Whole {
                    len: f.len,
                    sha256: f.sha256.clone(),
                },
            );
        }
        bad
    }

    fn remove_partition(&mut self, partition: &str) {
        self.segments.remove(partition);
        self.merged.remove(partition);
        let prefix = format!("{partition}/");
        self.files.retain(|p, _| !p.starts_with(&prefix));
    }

    /// Hex SHA-256 of the state's canonical JSON.
    pub fn hash(&self) -> String {
        to_hex(&sha256(&serde_json::to_vec(self).unwrap_or_default()))
    }

    /// Events in sealed segments.
    pub fn events(&self) -> u64 {
        self.segments
            .values()
            .flat_map(|m| m.values())
            .map(|m| m.events)
            .sum()
    }

    /// Partitions the state knows (with sealed segments or files).
    pub fn partitions(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.segments.keys().cloned().collect();
        for path in self.files.keys() {
            if let Some(p) = partition_of(path) {
                out.insert(p.to_string());
            }
        }
        out
    }
}

/// The writer's cache of the expected state (`integrity/state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateCache {
    /// The digest whose state this is.
    pub seq: u64,
    /// The state.
    pub state: ChainState,
}

/// Reads the state cache and checks it against the chain: returns the state and its sequence number if
/// the cache's state hash equals the one recorded by digest `seq`; `None` if there is no usable cache.
pub fn load_state_cache(data_dir: &Path) -> Option<StateCache> {
    let bytes = fs::read(data_dir.join(STATE_CACHE)).ok()?;
    let cache: StateCache = serde_json::from_slice(&bytes).ok()?;
    let d = read_digest(&digest_path(data_dir, cache.seq)).ok()?;
    (d.body.seq == cache.seq && d.body.state_hash == cache.state.hash()).then_some(cache)
}

/// Writes the state cache.
pub fn write_state_cache(data_dir: &Path, cache: &StateCache) -> Result<(), ChainError> {
    let path = data_dir.join(STATE_CACHE);
    let bytes = serde_json::to_vec(cache).map_err(|e| ChainError::Format {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    write_file_atomic(&path, &bytes)
}

// ---------------------------------------------------------------------------------------------------
// Layout of a data directory

/// What a path under a data directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileClass {
    /// `LOCK`: excluded.
    Lock,
    /// A tantivy lock file in a partition (`.tantivy-*.lock`): excluded while empty.
    TantivyLock,
    /// A temporary file of an atomic write (`*.tmp`, `.tmp*`): sealed only when the store is quiet.
    Transient,
    /// A digest file (or anything else in the digest folder).
    Digest,
    /// A note left for a running server (`integrity/notes/*`).
    Note,
    /// The writer's state cache.
    StateCache,
    /// A WAL file (`wal/<lsn>.wal`): append-only.
    Wal {
        /// LSN of its first byte.
        start: u64,
    },
    /// A journal (`*.jsonl` outside partitions): append-only.
    Journal,
    /// A file of a tantivy segment, `<partition>/<32 hex>.<ext>`.
    SegmentFile {
        /// Partition directory.
        partition: String,
        /// Segment id.
        segment: String,
    },
    /// Another file in a partition (`meta.json`, `.managed.json`): sealed whole.
    PartitionFile {
        /// Partition directory.
        partition: String,
    },
    /// A state file the store or its commands write (`checkpoint.json`, `alerts/*`, `keys/*`, `auth/*`):
    /// sealed whole.
    State,
    /// Anything else: the store never writes it.
    Unknown,
}

impl FileClass {
    /// True for the append-only kinds.
    pub fn append_only(&self) -> bool {
        matches!(self, FileClass::Wal { .. } | FileClass::Journal)
    }

    /// True for files the store or its commands create (so a new one while a server runs is pending).
    pub fn store_made(&self) -> bool {
        !matches!(self, FileClass::Unknown)
    }
}

/// The partition directory (`partitions/<kind>/<day>` or `partitions/<kind>/<day>@<namespace>`) a
/// relative path is in.
pub fn partition_of(rel: &str) -> Option<&str> {
    let mut it = rel.match_indices('/');
    if !rel.starts_with("partitions/") {
        return None;
    }
    let _ = it.next()?;
    let _ = it.next()?;
    let (end, _) = it.next()?;
    Some(&rel[..end])
}

/// Classifies a path relative to the data directory (`/`-separated).
pub fn classify(rel: &str) -> FileClass {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if rel == "LOCK" {
        return FileClass::Lock;
    }
    if rel.starts_with(&format!("{DIGEST_DIR}/")) {
        return FileClass::Digest;
    }
    if name.ends_with(".tmp") || name.starts_with(".tmp") {
        return FileClass::Transient;
    }
    if rel.starts_with(&format!("{NOTES_DIR}/")) {
        return FileClass::Note;
    }
    if rel == STATE_CACHE {
        return FileClass::StateCache;
    }
    if let Some(partition) = partition_of(rel) {
        let local = &rel[partition.len() + 1..];
        if local.contains('/') {
            return FileClass::Unknown;
        }
        if local.starts_with(".tantivy-") && local.ends_with(".lock") {
            return FileClass::TantivyLock;
        }
        if let Some((id, _)) = local.split_once('.') {
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return FileClass::SegmentFile {
                    partition: partition.to_string(),
                    segment: id.to_ascii_lowercase(),
                };
            }
        }
        return FileClass::PartitionFile {
            partition: partition.to_string(),
        };
    }
    if let Some(w) = rel.strip_prefix("wal/") {
        if let Some(start) = w.strip_suffix(".wal").and_then(|n| n.parse::<u64>().ok()) {
            return FileClass::Wal { start };
        }
        return FileClass::Unknown;
    }
    if name.ends_with(".jsonl") && !rel.starts_with("partitions/") {
        return FileClass::Journal;
    }
    if rel == "checkpoint.json"
        || rel == "holds.json"
        || ["alerts/", "keys/", "auth/"]
            .iter()
            .any(|d| rel.starts_with(d))
    {
        return FileClass::State;
    }
    FileClass::Unknown
}

/// A file found under a data directory.
#[derive(Debug, Clone)]
pub struct DiskFile {
    /// Path relative to the data directory, `/`-separated.
    pub rel: String,
    /// Length.
    pub len: u64,
    /// Modification time.
    pub modified: Option<std::time::SystemTime>,
    /// False for a symbolic link or anything that is not a regular file.
    pub regular: bool,
}

/// Every file under a data directory (not following symbolic links), sorted; directories named in
/// `skip` (relative) are not entered.
pub fn walk_files(data_dir: &Path, skip: &[&str]) -> Result<Vec<DiskFile>, ChainError> {
    let mut out = Vec::new();
    let mut stack = vec![(data_dir.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(io_err(&dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                out.push(DiskFile {
                    rel: format!("{rel}{}", entry.file_name().to_string_lossy()),
                    len: 0,
                    modified: None,
                    regular: false,
                });
                continue;
            };
            let child = format!("{rel}{name}");
            let meta = match fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&entry.path())(e)),
            };
            if meta.is_dir() {
                if !skip.contains(&child.as_str()) {
                    stack.push((entry.path(), format!("{child}/")));
                }
                continue;
            }
            out.push(DiskFile {
                rel: child,
                len: meta.len(),
                modified: meta.modified().ok(),
                regular: meta.is_file(),
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The checkpoint's replay position (`replay_from` of `checkpoint.json`): WAL bytes before it are in
/// segments.
pub fn checkpoint_replay_from(data_dir: &Path) -> Option<u64> {
    let bytes = fs::read(data_dir.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("replay_from")?.as_u64()
}

/// Formats UTC nanoseconds as RFC 3339 (seconds precision).
pub fn format_time(ns: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{ns}ns"),
    }
}

fn format_span(ns: i64) -> String {
    let s = ns / 1_000_000_000;
    if s >= 86_400 {
        format!("{}d{}h", s / 86_400, s % 86_400 / 3600)
    } else if s >= 3600 {
        format!("{}h{}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}.{:03}s", s, ns % 1_000_000_000 / 1_000_000)
    }
}

/// The current time, UTC nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------------
// Verification

/// One thing verify reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What it is.
    pub category: Category,
    /// Path relative to the data directory.
    pub path: String,
    /// Details.
    pub detail: String,
}

impl Finding {
    fn new(category: Category, path: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            category,
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// A digest known from elsewhere (a head recorded off the host): the chain must contain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Its sequence number.
    pub seq: u64,
    /// Its signature (base64).
    pub signature: String,
}

/// The last digest of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Sequence number.
    pub seq: u64,
    /// When it was written (UTC ns).
    pub time_ns: i64,
    /// Why.
    pub kind: DigestKind,
    /// Its signature (what an [`Anchor`] records).
    pub signature: String,
    /// The writer's cadence, ms.
    pub cadence_ms: u64,
}

/// A note recorded in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedNote {
    /// The digest.
    pub seq: u64,
    /// When the digest was written.
    pub time_ns: i64,
    /// The note.
    pub note: Note,
}

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Report time gaps and recorded anomalies only from this time (UTC ns) on.
    pub since: Option<i64>,
    /// Now (UTC ns).
    pub now: i64,
    /// Added to twice the cadence before a silence is a time gap.
    pub gap_slack_ns: i64,
    /// A digest the chain must contain.
    pub anchor: Option<Anchor>,
    /// A server holds the data directory: changes after the last digest may be pending.
    pub server_running: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            since: None,
            now: now_ns(),
            gap_slack_ns: 10_000_000_000,
            anchor: None,
            server_running: false,
        }
    }
}

impl VerifyOptions {
    fn gap_limit(&self, cadence_ms: u64) -> i64 {
        (cadence_ms as i64)
            .saturating_mul(2_000_000)
            .saturating_add(self.gap_slack_ns)
    }

    fn in_scope(&self, t: i64) -> bool {
        self.since.is_none_or(|s| t >= s)
    }
}

/// The result of walking a chain.
#[derive(Debug, Clone, Default)]
pub struct ChainWalk {
    /// The expected state at the head.
    pub state: ChainState,
    /// What is wrong with the chain.
    pub findings: Vec<Finding>,
    /// Downtimes and other remarks.
    pub info: Vec<String>,
    /// Notes recorded in the chain.
    pub notes: Vec<RecordedNote>,
    /// The last digest.
    pub head: Option<Head>,
    /// Digests read.
    pub digests: u64,
    /// State hashes recorded by the digests at these sequence numbers (those asked for).
    pub state_hashes: HashMap<u64, String>,
}

/// Walks the chain of a data directory from its first digest: signatures against `key`, links, sequence,
/// time order, time gaps (from `opts.since`), anomalies recorded by the writer (from `opts.since`),
/// contradictions between digests, and the anchor. Returns the expected state at the head.
pub fn walk_chain(
    data_dir: &Path,
    key: &PublicKey,
    opts: &VerifyOptions,
    want_state_hash: &[u64],
) -> Result<ChainWalk, ChainError> {
    let (digests, junk) = list_digests(data_dir)?;
    let mut w = ChainWalk::default();
    for p in junk {
        let rel = rel_path(data_dir, &p);
        // A digest being written by a running server.
        if !(rel.ends_with(".tmp") && opts.server_running) {
            w.findings.push(Finding::new(
                Category::Unexpected,
                rel,
                "not a digest (digest files are named by a 20-digit sequence number)",
            ));
        }
    }
    let trusted_id = key.key_id();
    let mut prev: Option<Head> = None;
    let mut expected = 0u64;
    let mut anchor_seen = false;
    let mut chain_trouble = false;
    let mut head_state_hash: Option<String> = None;
    for (seq, path) in digests {
        let rel = rel_path(data_dir, &path);
        let mut linked = prev.is_some() || seq == 0;
        if seq > expected {
            let what = if seq - expected == 1 {
                format!("digest {expected} is missing")
            } else {
                format!("digests {expected} to {} are missing", seq - 1)
            };
            w.findings
                .push(Finding::new(Category::Missing, digest_rel(expected), what));
            chain_trouble = true;
            linked = false;
        }
        expected = seq + 1;
        let d = match read_digest(&path) {
            Ok(d) => d,
            Err(e) => {
                w.findings
                    .push(Finding::new(Category::Modified, rel, e.to_string()));
                chain_trouble = true;
                prev = None;
                continue;
            }
        };
        w.digests += 1;
        let b = &d.body;
        if b.seq != seq {
            w.findings.push(Finding::new(
                Category::Reordered,
                &rel,
                format!("the file of digest {seq} holds digest {}", b.seq),
            ));
            chain_trouble = true;
        }
        match d.check(key) {
            SignatureCheck::Valid => {}
            SignatureCheck::OtherKey => {
                w.findings.push(Finding::new(
                    Category::Forged,
                    &rel,
                    format!(
                        "signed by key {}…, not by the trusted key {}…",
                        b.key_id.get(..16).unwrap_or(&b.key_id),
                        &trusted_id[..16]
                    ),
                ));
                chain_trouble = true;
            }
            SignatureCheck::Invalid => {
                w.findings.push(Finding::new(
                    Category::BadSignature,
                    &rel,
                    "the signature does not match the content: the digest was changed after it was signed",
                ));
                chain_trouble = true;
            }
        }
        if let (true, Some(p)) = (linked, &prev) {
            if b.prev_signature != p.signature {
                w.findings.push(Finding::new(
                    Category::BrokenChain,
                    &rel,
                    format!(
                        "does not follow digest {}: its previous signature differs",
                        p.seq
                    ),
                ));
                chain_trouble = true;
            }
            if b.time_ns < p.time_ns {
                w.findings.push(Finding::new(
                    Category::Reordered,
                    &rel,
                    format!(
                        "written at {}, before digest {} ({})",
                        format_time(b.time_ns),
                        p.seq,
                        format_time(p.time_ns)
                    ),
                ));
            } else if b.time_ns - p.time_ns > opts.gap_limit(p.cadence_ms) {
                if p.kind.quiescent() {
                    w.info.push(format!(
                        "down from {} to {} ({})",
                        format_time(p.time_ns),
                        format_time(b.time_ns),
                        format_span(b.time_ns - p.time_ns)
                    ));
                } else if opts.in_scope(b.time_ns) {
                    w.findings.push(Finding::new(
                        Category::TimeGap,
                        &rel,
                        format!(
                            "no digest from {} to {} ({}, cadence {}): the server stopped without a final digest, or digests were removed",
                            format_time(p.time_ns),
                            format_time(b.time_ns),
                            format_span(b.time_ns - p.time_ns),
                            format_span(p.cadence_ms as i64 * 1_000_000)
                        ),
                    ));
                }
            }
        } else if seq == 0 && !b.prev_signature.is_empty() {
            w.findings.push(Finding::new(
                Category::BrokenChain,
                &rel,
                "the first digest names a previous digest",
            ));
            chain_trouble = true;
        }
        for bad in w.state.apply(b.seq, &b.changes) {
            w.findings.push(Finding::new(
                Category::BrokenChain,
                &rel,
                format!("digest {}: {bad}", b.seq),
            ));
            chain_trouble = true;
        }
        if opts.in_scope(b.time_ns) {
            for a in &b.anomalies {
                w.findings.push(Finding::new(
                    a.category,
                    &a.path,
                    format!(
                        "recorded by digest {} at {}: {}",
                        b.seq,
                        format_time(b.time_ns),
                        a.detail
                    ),
                ));
            }
        }
        for n in &b.notes {
            w.notes.push(RecordedNote {
                seq: b.seq,
                time_ns: b.time_ns,
                note: n.clone(),
            });
        }
        if want_state_hash.contains(&b.seq) {
            w.state_hashes.insert(b.seq, b.state_hash.clone());
        }
        if let Some(a) = &opts.anchor {
            if a.seq == b.seq {
                anchor_seen = true;
                if a.signature != d.signature {
                    w.findings.push(Finding::new(
                        Category::Forged,
                        &rel,
                        "differs from the anchor recorded elsewhere: the chain was rewritten",
                    ));
                }
            }
        }
        prev = Some(Head {
            seq: b.seq,
            time_ns: b.time_ns,
            kind: b.kind,
            signature: d.signature.clone(),
            cadence_ms: b.cadence_ms,
        });
        w.head = prev.clone();
        // The state hash is checked at the head only: hashing the state at every digest would cost the
        // state's size per digest.
        head_state_hash = Some(b.state_hash.clone());
    }
    if let (Some(h), Some(recorded)) = (&w.head, head_state_hash) {
        if !chain_trouble && recorded != w.state.hash() {
            w.findings.push(Finding::new(
                Category::BrokenChain,
                digest_rel(h.seq),
                "the state the digests add up to differs from the state the last digest recorded",
            ));
        }
    }
    if let Some(a) = &opts.anchor {
        if !anchor_seen {
            let head = w.head.as_ref().map(|h| h.seq);
            w.findings.push(Finding::new(
                if head.is_none_or(|h| h < a.seq) {
                    Category::Truncated
                } else {
                    Category::Missing
                },
                digest_rel(a.seq),
                format!(
                    "the anchor names digest {} but the chain {}",
                    a.seq,
                    match head {
                        Some(h) if h < a.seq =>
                            format!("ends at digest {h}: later digests were deleted"),
                        Some(_) => "does not contain it".to_string(),
                        None => "is empty".to_string(),
                    }
                ),
            ));
        }
    }
    Ok(w)
}

fn rel_path(data_dir: &Path, p: &Path) -> String {
    p.strip_prefix(data_dir)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The events of a segment as the verifier recomputes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeafSummary {
    /// tantivy documents.
    pub docs: u64,
}

/// How the verifier reads segments (the store implements it).
pub trait SegmentSource {
    /// False when events cannot be read (an encrypted data directory without its key): only file hashes
    /// are checked then.
    fn readable(&self) -> bool {
        true
    }
    /// The segment ids (32 hex digits) a partition's `meta.json` lists, in order.
    fn segments(&mut self, partition: &str) -> Result<Vec<String>, String>;
    /// Feeds the leaf of every stored block of a segment (see "Events and blocks" above) with its number of events, in
    /// document order.
    fn blocks(
        &mut self,
        partition: &str,
        segment: &str,
        sink: &mut dyn FnMut(Hash, u64),
    ) -> Result<LeafSummary, String>;
}

/// What comparing the data directory with the expected state found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiskCheck {
    /// Findings.
    pub findings: Vec<Finding>,
    /// Changes after the last digest that are consistent extensions (only while a server runs).
    pub pending: Vec<Finding>,
    /// Files compared.
    pub files: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Segments whose events were recomputed.
    pub segments: u64,
    /// Events recomputed.
    pub events: u64,
}

struct Expect<'a> {
    len: u64,
    sha256: &'a str,
    /// Part of a sealed segment (never changes legitimately).
    immutable: bool,
}

/// Compares the files under a data directory with the expected state: every covered file's bytes
/// (whole files and segment files hashed, append-only files range by range), every sealed segment's
/// events (recomputed through `source`), every merged segment's events (found again in a live
/// segment), files that are not covered, and the state cache. While `opts.server_running`, changes after
/// the last digest that are consistent extensions are pending instead of findings.
pub fn compare_disk(
    data_dir: &Path,
    state: &ChainState,
    opts: &VerifyOptions,
    source: &mut dyn SegmentSource,
    state_cache_hash: Option<(u64, Option<String>)>,
) -> Result<DiskCheck, ChainError> {
    let running = opts.server_running;
    let mut out = DiskCheck::default();
    let files = walk_files(data_dir, &[DIGEST_DIR])?;
    let on_disk: HashMap<&str, &DiskFile> = files.iter().map(|f| (f.rel.as_str(), f)).collect();

    // What each covered path must hold, and which path each sealed content belongs to (to tell a
    // reordering from a modification).
    let mut expect: BTreeMap<String, Expect<'_>> = BTreeMap::new();
    let mut seg_of: HashMap<String, (&str, &str)> = HashMap::new();
    for (p, segs) in &state.segments {
        for (id, m) in segs {
            for f in &m.files {
                let path = format!("{p}/{}", f.name);
                seg_of.insert(path.clone(), (p.as_str(), id.as_str()));
                expect.insert(
                    path,
                    Expect {
                        len: f.len,
                        sha256: &f.sha256,
                        immutable: true,
                    },
                );
            }
        }
    }
    for (path, t) in &state.files {
        if let Tracked::Whole { len, sha256 } = t {
            let immutable = matches!(classify(path), FileClass::SegmentFile { .. });
            expect.insert(
                path.clone(),
                Expect {
                    len: *len,
                    sha256,
                    immutable,
                },
            );
        }
    }
    let mut by_hash: HashMap<&str, &str> = HashMap::new();
    for (path, e) in &expect {
        if e.len > 0 {
            by_hash.entry(e.sha256).or_insert(path.as_str());
        }
    }
    let parts_on_disk: BTreeSet<String> = files
        .iter()
        .filter_map(|f| partition_of(&f.rel).map(str::to_string))
        .collect();
    let mut bad_segments: HashSet<(String, String)> = HashSet::new();
    let replay_from = checkpoint_replay_from(data_dir);

    for f in &files {
        let class = classify(&f.rel);
        match class {
            FileClass::Lock | FileClass::Digest => continue,
            FileClass::TantivyLock => {
                if f.len > 0 {
                    out.findings.push(Finding::new(
                        Category::Unexpected,
                        &f.rel,
                        format!("a lock file with {} bytes of content", f.len),
                    ));
                }
                continue;
            }
            FileClass::Transient | FileClass::Note if !expect.contains_key(&f.rel) => {
                let what = "a temporary file or note, never sealed";
                if running {
                    out.pending
                        .push(Finding::new(Category::Unexpected, &f.rel, what));
                } else {
                    out.findings.push(Finding::new(
                        Category::Unexpected,
                        &f.rel,
                        format!("{what}, left while no server runs"),
                    ));
                }
                continue;
            }
            FileClass::StateCache => {
                check_state_cache(data_dir, &f.rel, &state_cache_hash, &mut out);
                continue;
            }
            _ => {}
        }
        if !f.regular {
            out.findings.push(Finding::new(
                Category::Unexpected,
                &f.rel,
                "not a regular file (a symbolic link or device)",
            ));
            continue;
        }
        out.files += 1;
        if let Some(e) = expect.get(&f.rel) {
            let problem = check_whole(data_dir, f, e, &by_hash, &mut out)?;
            if let Some(finding) = problem {
                if running && !e.immutable {
                    out.pending.push(Finding::new(
                        Category::Modified,
                        &f.rel,
                        "changed after the last digest (a mutable file; the next digest seals it)",
                    ));
                } else {
                    if let Some((p, s)) = seg_of.get(&f.rel) {
                        bad_segments.insert((p.to_string(), s.to_string()));
                    }
                    out.findings.push(finding);
                }
            }
            continue;
        }
        if let Some(Tracked::Append { len, ranges }) = state.files.get(&f.rel) {
            check_append(data_dir, f, *len, ranges, state, opts, &mut out)?;
            continue;
        }
        // Not covered.
        let sealed_segment = match &class {
            FileClass::SegmentFile { partition, segment } => state
                .segments
                .get(partition)
                .is_some_and(|m| m.contains_key(segment)),
            _ => false,
        };
        if sealed_segment {
            out.findings.push(Finding::new(
                Category::Unexpected,
                &f.rel,
                "a file added to a sealed segment",
            ));
        } else if running && class.store_made() {
            out.pending.push(Finding::new(
                Category::Unexpected,
                &f.rel,
                "new since the last digest (the next digest seals it)",
            ));
        } else {
            out.findings.push(Finding::new(
                Category::Unexpected,
                &f.rel,
                if class.store_made() {
                    "not covered by the chain: written after the last digest while no server held the data directory, or inserted"
                } else {
                    "not covered by the chain, and not a file the store writes: inserted"
                },
            ));
        }
    }

    // Covered things that are gone.
    for p in state.partitions() {
        if !parts_on_disk.contains(&p) {
            let (segs, events) = state
                .segments
                .get(&p)
                .map(|m| (m.len(), m.values().map(|s| s.events).sum::<u64>()))
                .unwrap_or((0, 0));
            let detail = format!(
                "the partition is gone ({segs} sealed segments, {events} events) without a recorded retention decision"
            );
            if running {
                out.pending.push(Finding::new(
                    Category::Missing,
                    &p,
                    "removed after the last digest (the next digest records why)",
                ));
            } else {
                out.findings
                    .push(Finding::new(Category::Missing, &p, detail));
            }
        }
    }
    let gone_partition =
        |path: &str| partition_of(path).is_some_and(|p| !parts_on_disk.contains(p));
    let mut current_segments: HashMap<String, Result<Vec<String>, String>> = HashMap::new();
    for (path, e) in &expect {
        if on_disk.contains_key(path.as_str()) || gone_partition(path) {
            continue;
        }
        if let Some((p, s)) = seg_of.get(path) {
            bad_segments.insert((p.to_string(), s.to_string()));
            if running {
                let listed = current_segments
                    .entry(p.to_string())
                    .or_insert_with(|| source.segments(p))
                    .as_ref()
                    .map(|ids| ids.iter().any(|id| id == s))
                    .unwrap_or(true);
                if !listed {
                    out.pending.push(Finding::new(
                        Category::Missing,
                        path,
                        "its segment was merged after the last digest (the next digest records it)",
                    ));
                    continue;
                }
            }
            out.findings.push(Finding::new(
                Category::Missing,
                path,
                format!("a file of sealed segment {s} ({} bytes) is gone", e.len),
            ));
        } else if running && !e.immutable {
            out.pending.push(Finding::new(
                Category::Missing,
                path,
                "removed after the last digest",
            ));
        } else {
            out.findings.push(Finding::new(
                Category::Missing,
                path,
                format!("a covered file ({} bytes) is gone", e.len),
            ));
        }
    }
    for (path, t) in &state.files {
        let Tracked::Append { len, .. } = t else {
            continue;
        };
        if on_disk.contains_key(path.as_str()) || gone_partition(path) {
            continue;
        }
        let indexed = match (classify(path), replay_from) {
            (FileClass::Wal { start }, Some(r)) => start.saturating_add(*len) <= r,
            _ => false,
        };
        if running && indexed {
            out.pending.push(Finding::new(
                Category::Missing,
                path,
                "removed after the last digest once indexed (the next digest records it)",
            ));
        } else {
            out.findings.push(Finding::new(
                Category::Missing,
                path,
                format!("an append-only file with {len} sealed bytes is gone"),
            ));
        }
    }

    // Events: every segment of every partition on disk, checked against its manifest; merged segments'
    // events found again.
    let mut parts: BTreeSet<String> = state.segments.keys().cloned().collect();
    parts.extend(state.merged.keys().cloned());
    parts.retain(|p| parts_on_disk.contains(p));
    if !source.readable() {
        parts.clear();
    }
    for p in parts {
        let ids = match current_segments.remove(&p) {
            Some(r) => r,
            None => source.segments(&p),
        };
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                out.findings.push(Finding::new(
                    Category::Modified,
                    &p,
                    format!("the partition cannot be read: {e}"),
                ));
                continue;
            }
        };
        let sealed = state.segments.get(&p);
        let merged = state.merged.get(&p).map(|v| v.as_slice()).unwrap_or(&[]);
        let runs: Vec<Run> = merged
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                Some(Run {
                    id: i,
                    first_leaf: from_hex(&m.first_leaf)?,
                    leaves: m.blocks,
                    root: from_hex(&m.merkle_root)?,
                })
            })
            .collect();
        let mut matcher = RunMatcher::new(runs);
        for id in &ids {
            let manifest = sealed.and_then(|s| s.get(id));
            if manifest.is_none() && matcher.is_idle() {
                continue;
            }
            if bad_segments.contains(&(p.clone(), id.clone())) {
                continue;
            }
            let mut builder = MerkleBuilder::default();
            let mut first: Option<Hash> = None;
            let mut events = 0u64;
            let mut sink = |root: Hash, n: u64| {
                first.get_or_insert(root);
                builder.push(root);
                matcher.push(&root);
                events += n;
            };
            let read = source.blocks(&p, id, &mut sink);
            matcher.end_segment();
            out.segments += 1;
            out.events += events;
            let Some(m) = manifest else { continue };
            let path = format!("{p}/{id}");
            match read {
                Err(e) => out.findings.push(Finding::new(
                    Category::Modified,
                    path,
                    format!("the sealed segment cannot be read: {e}"),
                )),
                Ok(sum) => {
                    let root = to_hex(&builder.root());
                    let first = first.map(|f| to_hex(&f)).unwrap_or_default();
                    if events != m.events
                        || builder.count() != m.blocks
                        || root != m.merkle_root
                        || first != m.first_leaf
                        || sum.docs != m.docs
                    {
                        out.findings.push(Finding::new(
                            Category::Modified,
                            path,
                            format!(
                                "its events differ from the manifest: {} events (sealed {}), Merkle root {}… (sealed {}…)",
                                events,
                                m.events,
                                &root[..16],
                                m.merkle_root.get(..16).unwrap_or("")
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(s) = sealed {
            for id in s.keys() {
                if !ids.contains(id) && !bad_segments.contains(&(p.clone(), id.clone())) {
                    let f = Finding::new(
                        Category::Missing,
                        format!("{p}/{id}"),
                        "a sealed segment is no longer listed in meta.json",
                    );
                    if running {
                        out.pending.push(f);
                    } else {
                        out.findings.push(f);
                    }
                }
            }
        }
        let damaged = ids
            .iter()
            .any(|id| bad_segments.contains(&(p.clone(), id.clone())));
        for run in matcher.missing() {
            let m = &merged[run.id];
            if damaged {
                continue;
            }
            out.findings.push(Finding::new(
                Category::Missing,
                format!("{p}/{}", m.segment),
                format!(
                    "the {} events of segment {}, merged (digest {}), are not found unchanged in any segment of the partition",
                    m.events, m.segment, m.seq
                ),
            ));
        }
    }
    Ok(out)
}

fn check_state_cache(
    data_dir: &Path,
    rel: &str,
    recorded: &Option<(u64, Option<String>)>,
    out: &mut DiskCheck,
) {
    let cache: Option<StateCache> = fs::read(data_dir.join(rel))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let problem = match (&cache, recorded) {
        (None, _) | (_, None) => Some("the state cache cannot be read".to_string()),
        (Some(_), Some((seq, None))) => Some(format!(
            "the state cache names digest {seq}, which is not in the chain"
        )),
        (Some(c), Some((seq, Some(h)))) => (c.seq != *seq || c.state.hash() != *h)
            .then(|| format!("the state cache differs from the state digest {seq} recorded")),
    };
    if let Some(p) = problem {
        out.findings.push(Finding::new(Category::Modified, rel, p));
    }
}

/// Reads only the sequence number of the state cache (what the chain walk must look up).
pub fn state_cache_seq(data_dir: &Path) -> Option<u64> {
    #[derive(Deserialize)]
    struct SeqOnly {
        seq: u64,
    }
    let bytes = fs::read(data_dir.join(STATE_CACHE)).ok()?;
    serde_json::from_slice::<SeqOnly>(&bytes)
        .ok()
        .map(|s| s.seq)
}

fn check_whole(
    data_dir: &Path,
    f: &DiskFile,
    e: &Expect<'_>,
    by_hash: &HashMap<&str, &str>,
    out: &mut DiskCheck,
) -> Result<Option<Finding>, ChainError> {
    let path = data_dir.join(&f.rel);
    let (len, h) = match hash_file(&path) {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Some(Finding::new(
                Category::Missing,
                &f.rel,
                "vanished while being checked",
            )))
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    out.bytes += len;
    let hex = to_hex(&h);
    if len == e.len && hex == e.sha256 {
        return Ok(None);
    }
    if let Some(other) = by_hash.get(hex.as_str()).filter(|o| **o != f.rel) {
        return Ok(Some(Finding::new(
            Category::Reordered,
            &f.rel,
            format!("holds the sealed content of {other}"),
        )));
    }
    Ok(Some(if len < e.len {
        Finding::new(
            Category::Truncated,
            &f.rel,
            format!("{len} bytes, sealed with {}", e.len),
        )
    } else {
        Finding::new(
            Category::Modified,
            &f.rel,
            format!(
                "content differs from the sealed content ({len} bytes, sealed with {})",
                e.len
            ),
        )
    }))
}

fn ranges_match(file: &mut File, ranges: &[Range], out: &mut DiskCheck) -> io::Result<bool> {
    for r in ranges {
        match hash_range(file, r.from, r.to - r.from) {
            Ok(h) => {
                out.bytes += r.to - r.from;
                if to_hex(&h) != r.sha256 {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn check_append(
    data_dir: &Path,
    f: &DiskFile,
    len: u64,
    ranges: &[Range],
    state: &ChainState,
    opts: &VerifyOptions,
    out: &mut DiskCheck,
) -> Result<(), ChainError> {
    let path = data_dir.join(&f.rel);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let f = Finding::new(Category::Missing, &f.rel, "vanished while being checked");
            if opts.server_running {
                out.pending.push(f);
            } else {
                out.findings.push(f);
            }
            return Ok(());
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let own = f.len >= len && ranges_match(&mut file, ranges, out).map_err(io_err(&path))?;
    if own && f.len == len {
        return Ok(());
    }
    // Does it hold exactly another append-only file's sealed content (files swapped or renamed)?
    for (p, t) in &state.files {
        if let Tracked::Append { len: l, ranges: r } = t {
            if p != &f.rel
                && *l == f.len
                && *l > 0
                && ranges_match(&mut file, r, out).map_err(io_err(&path))?
            {
                out.findings.push(Finding::new(
                    Category::Reordered,
                    &f.rel,
                    format!("holds the sealed content of {p}"),
                ));
                return Ok(());
            }
        }
    }
    if f.len < len {
        out.findings.push(Finding::new(
            Category::Truncated,
            &f.rel,
            format!("{} bytes, {len} sealed", f.len),
        ));
        return Ok(());
    }
    if !own {
        out.findings.push(Finding::new(
            Category::Modified,
            &f.rel,
            "sealed bytes changed",
        ));
        return Ok(());
    }
    if f.len > len {
        let extra = f.len - len;
        if opts.server_running {
            out.pending.push(Finding::new(
                Category::Unexpected,
                &f.rel,
                format!("{extra} bytes appended after the last digest"),
            ));
        } else {
            out.findings.push(Finding::new(
                Category::Unexpected,
                &f.rel,
                format!("{extra} bytes appended that no digest sealed"),
            ));
        }
    }
    Ok(())
}

/// Everything verify found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Findings, by category then path.
    pub findings: Vec<Finding>,
    /// Changes not covered yet but consistent (only while a server runs).
    pub pending: Vec<Finding>,
    /// Downtimes and remarks.
    pub info: Vec<String>,
    /// Notes recorded in the chain (changes made by commands).
    pub notes: Vec<RecordedNote>,
    /// The last digest.
    pub head: Option<Head>,
    /// Digests walked.
    pub digests: u64,
    /// Files compared.
    pub files: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Segments whose events were recomputed.
    pub segments: u64,
    /// Events recomputed.
    pub events: u64,
    /// A server held the data directory during verification.
    pub server_running: bool,
    /// Key id of the key the signatures were checked against.
    pub key_id: String,
    /// True when that key was read from the data directory itself (consistency only, not authenticity).
    pub key_from_data_dir: bool,
}

impl Report {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Number of findings per category, in report order.
    pub fn counts(&self) -> Vec<(Category, usize)> {
        Category::ALL
            .iter()
            .map(|c| {
                (
                    *c,
                    self.findings.iter().filter(|f| f.category == *c).count(),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// True if a finding of this category names this path (or a path under it).
    pub fn has(&self, category: Category, path: &str) -> bool {
        self.findings.iter().any(|f| {
            f.category == category && (f.path == path || f.path.starts_with(&format!("{path}/")))
        })
    }
}

/// Verifies a data directory: walks the chain (see [`walk_chain`]), checks its head, and compares the
/// files with the expected state (see [`compare_disk`]).
pub fn verify_data_dir(
    data_dir: &Path,
    key: &PublicKey,
    opts: &VerifyOptions,
    source: &mut dyn SegmentSource,
) -> Result<Report, ChainError> {
    let cache_seq = state_cache_seq(data_dir);
    let want: Vec<u64> = cache_seq.into_iter().collect();
    let walk = walk_chain(data_dir, key, opts, &want)?;
    let mut findings = walk.findings;
    match &walk.head {
        None => findings.push(Finding::new(
            Category::Missing,
            DIGEST_DIR,
            "no integrity chain: no digest was ever written here (integrity off?), or all digests were deleted",
        )),
        Some(h) if opts.server_running => {
            let age = opts.now.saturating_sub(h.time_ns);
            if age > opts.gap_limit(h.cadence_ms) && opts.in_scope(opts.now) {
                findings.push(Finding::new(
                    Category::TimeGap,
                    digest_rel(h.seq + 1),
                    format!(
                        "the last digest ({}) was written {} ago, cadence {}: the server stopped writing digests, or the last ones were deleted",
                        h.seq,
                        format_span(age),
                        format_span(h.cadence_ms as i64 * 1_000_000)
                    ),
                ));
            }
        }
        Some(h) if !h.kind.quiescent() => findings.push(Finding::new(
            Category::Truncated,
            digest_rel(h.seq + 1),
            format!(
                "the chain ends with digest {} ({}, {}), not with a final digest: the last digests were deleted, or the server did not stop cleanly",
                h.seq,
                h.kind.as_str(),
                format_time(h.time_ns)
            ),
        )),
        Some(_) => {}
    }
    let recorded = cache_seq.map(|s| (s, walk.state_hashes.get(&s).cloned()));
    let disk = compare_disk(data_dir, &walk.state, opts, source, recorded)?;
    findings.extend(disk.findings);
    findings.sort_by(|a, b| {
        let rank = |c: &Category| Category::ALL.iter().position(|x| x == c);
        rank(&a.category)
            .cmp(&rank(&b.category))
            .then_with(|| a.path.cmp(&b.path))
    });
    findings.dedup();
    Ok(Report {
        findings,
        pending: disk.pending,
        info: walk.info,
        notes: walk.notes,
        head: walk.head,
        digests: walk.digests,
        files: disk.files,
        bytes: disk.bytes,
        segments: disk.segments,
        events: disk.events,
        server_running: opts.server_running,
        key_id: key.key_id(),
        key_from_data_dir: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_matches_rfc6962_recursion() {
        fn mth(leaves: &[Hash]) -> Hash {
            match leaves.len() {
                0 => sha256(b""),
                1 => leaves[0],
                n => {
                    let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                    node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
                }
            }
        }
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 0..leaves.len() {
            assert_eq!(merkle_root(&leaves[..n]), mth(&leaves[..n]), "n = {n}");
        }
        // Domain separation: a leaf is not a node.
        assert_ne!(leaf_hash(&[1; 64]), node_hash(&[1; 32], &[1; 32]));
    }

    #[test]
    fn run_matcher_finds_contiguous_runs_only() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let run = |id, from: usize, to: usize| Run {
            id,
            first_leaf: leaves[from],
            leaves: (to - from) as u64,
            root: merkle_root(&leaves[from..to]),
        };
        let mut m = RunMatcher::new(vec![run(0, 3, 10), run(1, 20, 40), run(2, 5, 7)]);
        // A stream with leaves 0..40 except that leaf 25 is changed.
        for (i, l) in leaves.iter().enumerate() {
            let l = if i == 25 { sha256(b"x") } else { *l };
            m.push(&l);
        }
        m.end_segment();
        let missing: Vec<usize> = m.missing().map(|r| r.id).collect();
        assert_eq!(missing, vec![1]);
    }

    #[test]
    fn keys_sign_verify_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("keys/signing.pk8");
        let p = dir.path().join("keys/signing.pub");
        let key = SigningKey::generate(&k, &p).unwrap();
        assert!(
            SigningKey::generate(&k, &p).is_err(),
            "never replaces a key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&k).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let again = SigningKey::load(&k).unwrap();
        let public = PublicKey::load(&p).unwrap();
        assert_eq!(again.public(), &public);
        let sig = key.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        assert!(PublicKey::parse(b"ed25519:nonsense").is_none());
        fs::write(&p, b"not a key").unwrap();
        assert!(PublicKey::load(&p).is_err());
        fs::write(&k, b"not a key").unwrap();
        assert!(SigningKey::load(&k).is_err());
    }

    fn body(seq: u64, prev: &str, key: &SigningKey) -> DigestBody {
        DigestBody {
            version: FORMAT_VERSION,
            seq,
            kind: if seq == 0 {
                DigestKind::Start
            } else {
                DigestKind::Final
            },
            time_ns: 1_000 + seq as i64,
            prev_time_ns: None,
            cadence_ms: 60_000,
            key_id: key.public().key_id(),
            prev_signature: prev.to_string(),
            changes: Changes::default(),
            anomalies: Vec::new(),
            notes: Vec::new(),
            events: 0,
            state_hash: ChainState::default().hash(),
        }
    }

    #[test]
    fn digests_sign_link_and_detect_edits_and_forgeries() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = SigningKey::generate_in_memory().unwrap();
        let (other, _) = SigningKey::generate_in_memory().unwrap();
        let d0 = Digest::sign(body(0, "", &key), &key);
        write_digest(dir.path(), &d0).unwrap();
        assert!(matches!(
            write_digest(dir.path(), &d0),
            Err(ChainError::Exists(0))
        ));
        let d1 = Digest::sign(body(1, &d0.signature, &key), &key);
        write_digest(dir.path(), &d1).unwrap();
        let opts = VerifyOptions::default();
        let w = walk_chain(dir.path(), key.public(), &opts, &[]).unwrap();
        assert!(w.findings.is_empty(), "{:?}", w.findings);
        assert_eq!(w.head.unwrap().seq, 1);

        let mut edited = d1.clone();
        edited.body.events = 5;
        assert_eq!(edited.check(key.public()), SignatureCheck::Invalid);
        let forged = Digest::sign(
            DigestBody {
                key_id: other.public().key_id(),
                ..d1.body.clone()
            },
            &other,
        );
        assert_eq!(forged.check(key.public()), SignatureCheck::OtherKey);
        assert_eq!(d1.check(key.public()), SignatureCheck::Valid);

        // Anchors: a chain cut back below the anchor is truncated.
        let anchored = VerifyOptions {
            anchor: Some(Anchor {
                seq: 2,
                signature: "x".into(),
            }),
            ..VerifyOptions::default()
        };
        let w = walk_chain(dir.path(), key.public(), &anchored, &[]).unwrap();
        assert_eq!(w.findings.len(), 1);
        assert_eq!(w.findings[0].category, Category::Truncated);
    }

    #[test]
    fn state_applies_changes_and_flags_contradictions() {
        let mut s = ChainState::default();
        let add = Changes {
            appended: vec![AppendRange {
                path: "wal/0.wal".into(),
                from: 0,
                to: 10,
                sha256: "a".into(),
            }],
            files: vec![WholeFile {
                path: "checkpoint.json".into(),
                len: 3,
                sha256: "b".into(),
            }],
            ..Changes::default()
        };
        assert!(s.apply(0, &add).is_empty());
        let bad = Changes {
            appended: vec![AppendRange {
                path: "wal/0.wal".into(),
                from: 5,
                to: 12,
                sha256: "c".into(),
            }],
            files_removed: vec![FileRemoval {
                path: "nope".into(),
                reason: Reason::Unexplained,
            }],
            ..Changes::default()
        };
        assert_eq!(s.apply(1, &bad).len(), 2);
    }

    #[test]
    fn classifies_the_layout() {
        assert_eq!(classify("LOCK"), FileClass::Lock);
        assert_eq!(
            classify("wal/00000000000000000042.wal"),
            FileClass::Wal { start: 42 }
        );
        assert_eq!(classify("checkpoint.json"), FileClass::State);
        assert_eq!(classify("checkpoint.tmp"), FileClass::Transient);
        assert_eq!(classify("alerts/alerts.jsonl"), FileClass::Journal);
        assert_eq!(classify("auth/tokens.json"), FileClass::State);
        assert_eq!(
            classify("integrity/digests/00000000000000000001.json"),
            FileClass::Digest
        );
        assert_eq!(classify("integrity/state.json"), FileClass::StateCache);
        assert_eq!(classify("notes.txt"), FileClass::Unknown);
        let own = "partitions/container/2024-05-01@payments";
        assert_eq!(partition_of(&format!("{own}/meta.json")), Some(own));
        let p = "partitions/audit/2024-05-01";
        assert_eq!(partition_of(&format!("{p}/meta.json")), Some(p));
        assert_eq!(
            classify(&format!("{p}/0123456789abcdef0123456789abcdef.store")),
            FileClass::SegmentFile {
                partition: p.into(),
                segment: "0123456789abcdef0123456789abcdef".into()
            }
        );
        assert_eq!(
            classify(&format!("{p}/.tantivy-meta.lock")),
            FileClass::TantivyLock
        );
        assert_eq!(classify(&format!("{p}/.tmpAbC123")), FileClass::Transient);
        assert_eq!(
            classify(&format!("{p}/meta.json")),
            FileClass::PartitionFile {
                partition: p.into()
            }
        );
    }
}
