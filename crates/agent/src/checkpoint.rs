//! Checkpoints: for every file the agent reads, its identity and how far the server has acknowledged it,
//! plus the acknowledged position of the disk queue and the journald cursor. Written atomically (temp
//! file, fsync, rename, directory fsync) and only ever advanced by acknowledgements.

use crate::queue::{sync_dir, Position};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Current checkpoint file version.
const VERSION: u32 = 1;

/// A file's identity and acknowledged progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// The stream id the server deduplicates on.
    pub source_id: String,
    /// Where the file was last seen.
    pub path: PathBuf,
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// How many leading bytes the fingerprint covers.
    pub fp_len: u32,
    /// Hash of those bytes.
    pub fp_hash: u64,
    /// Highest acknowledged batch position (see `tail`), 0 when none.
    pub acked_seq: u64,
    /// File offset to read again from after a restart, as of the acknowledged batch.
    pub acked_resume: u64,
    /// Set once the file is gone and read to its end: the last batch position; the state is dropped once
    /// that is acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_seq: Option<u64>,
}

/// The checkpoint file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// When it was written, UTC ns: files rotated away after this while the agent was down are new.
    pub written_ns: i64,
    /// Everything in the disk queue before this has been acknowledged.
    pub queue_acked: Position,
    /// Files.
    pub files: Vec<FileState>,
    /// Where the journald stream stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journald: Option<JournalState>,
}

/// The journald stream's acknowledged position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalState {
    /// Its stream id (`NODE/journald-FIRSTSTART`): a new state directory starts a new stream, so the server
    /// never takes its batches for ones it already has.
    pub source_id: String,
    /// Position of the last acknowledged batch (batches are numbered from 1).
    pub seq: u64,
    /// Cursor of that batch's last entry.
    pub cursor: String,
}

/// Checkpoint errors.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The file is not a checkpoint of this version.
    #[error("checkpoint {path} is unreadable ({reason}); move it away to start over")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the checkpoint at `path`; `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.into(),
                source,
            })
        }
    };
    let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Bad {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if cp.version != VERSION {
        return Err(CheckpointError::Bad {
            path: path.into(),
            reason: format!("version {} (expected {VERSION})", cp.version),
        });
    }
    Ok(Some(cp))
}

/// Writes `cp` to `path` atomically: a reader sees the old or the new checkpoint, never a mix.
pub fn save(path: &Path, cp: &Checkpoint) -> Result<(), CheckpointError> {
    let io_err = |source| CheckpointError::Io {
        path: path.into(),
        source,
    };
    let bytes = serde_json::to_vec(cp).map_err(|e| io_err(io::Error::other(e)))?;
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err)?;
    f.write_all(&bytes).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err)?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(io_err)
}

/// The shared table of file states: the reader adds and updates identities, the shipper records
/// acknowledgements, and the checkpoint is a snapshot of it.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    files: HashMap<String, FileState>,
    queue_acked: Position,
    journald: Option<JournalState>,
    dirty: bool,
}

impl Registry {
    /// A registry holding a loaded checkpoint's states.
    pub fn from_checkpoint(cp: &Checkpoint) -> Registry {
        let r = Registry::default();
        {
            let mut g = r.inner.lock();
            g.queue_acked = cp.queue_acked;
            g.journald = cp.journald.clone();
            for f in &cp.files {
                g.files.insert(f.source_id.clone(), f.clone());
            }
        }
        r
    }

    /// Adds or updates a file's identity (keeping its acknowledged progress).
    pub fn upsert(&self, st: FileState) {
        let mut g = self.inner.lock();
        match g.files.get_mut(&st.source_id) {
            Some(cur) => {
                cur.path = st.path;
                cur.dev = st.dev;
                cur.ino = st.ino;
                cur.fp_len = st.fp_len;
                cur.fp_hash = st.fp_hash;
                cur.final_seq = st.final_seq;
            }
            None => {
                g.files.insert(st.source_id.clone(), st);
            }
        }
        g.dirty = true;
    }

    /// Takes a queued batch's view of a file: a stream first seen after the last checkpoint is added, and a
    /// known one takes the identity if it covers more of the file's head (the checkpoint may predate it).
    pub fn adopt(&self, st: &FileState) {
        let mut g = self.inner.lock();
        match g.files.get_mut(&st.source_id) {
            Some(cur) if st.fp_len > cur.fp_len => {
                cur.path = st.path.clone();
                cur.dev = st.dev;
                cur.ino = st.ino;
                cur.fp_len = st.fp_len;
                cur.fp_hash = st.fp_hash;
            }
            Some(_) => return,
            None => {
                g.files.insert(st.source_id.clone(), st.clone());
            }
        }
        g.dirty = true;
    }

    /// Records that the batch `seq` of `source_id` (to be resumed at `resume`) is acknowledged.
    pub fn ack(&self, source_id: &str, seq: u64, resume: u64) {
        let mut g = self.inner.lock();
        if let Some(f) = g.files.get_mut(source_id) {
            if seq > f.acked_seq {
                f.acked_seq = seq;
                f.acked_resume = resume;
            }
        }
        g.dirty = true;
    }

    /// Records the acknowledged queue position.
    pub fn ack_queue(&self, pos: Position) {
        let mut g = self.inner.lock();
        g.queue_acked = g.queue_acked.max(pos);
        g.dirty = true;
    }

    /// Records that journald batch `seq` of `source_id`, ending at `cursor`, is acknowledged.
    pub fn ack_journal(&self, source_id: &str, seq: u64, cursor: &str) {
        let mut g = self.inner.lock();
        if g.journald
            .as_ref()
            .is_none_or(|j| j.source_id != source_id || seq > j.seq)
        {
            g.journald = Some(JournalState {
                source_id: source_id.to_string(),
                seq,
                cursor: cursor.to_string(),
            });
            g.dirty = true;
        }
    }

    /// The acknowledged journald position.
    pub fn journal(&self) -> Option<JournalState> {
        self.inner.lock().journald.clone()
    }

    /// The state of `source_id`.
    pub fn get(&self, source_id: &str) -> Option<FileState> {
        self.inner.lock().files.get(source_id).cloned()
    }

    /// Every state.
    pub fn all(&self) -> Vec<FileState> {
        self.inner.lock().files.values().cloned().collect()
    }

    /// The first state that satisfies `pred`.
    pub fn find(&self, mut pred: impl FnMut(&FileState) -> bool) -> Option<FileState> {
        self.inner.lock().files.values().find(|s| pred(s)).cloned()
    }

    /// Forgets a file (its stream will never be read again).
    pub fn remove(&self, source_id: &str) {
        let mut g = self.inner.lock();
        g.files.remove(source_id);
        g.dirty = true;
    }

    /// A checkpoint of the current state if anything changed since the last one; files that are gone and
    /// fully acknowledged are dropped from it.
    pub fn snapshot_if_dirty(&self, now_ns: i64) -> Option<Checkpoint> {
        let mut g = self.inner.lock();
        if !g.dirty {
            return None;
        }
        g.dirty = false;
        g.files
            .retain(|_, f| f.final_seq.is_none_or(|last| f.acked_seq < last));
        let mut files: Vec<FileState> = g.files.values().cloned().collect();
        files.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        Some(Checkpoint {
            version: VERSION,
            written_ns: now_ns,
            queue_acked: g.queue_acked,
            files,
            journald: g.journald.clone(),
        })
    }

    /// Marks the registry changed so the next snapshot is written (after a failed write).
    pub fn mark_dirty(&self) {
        self.inner.lock().dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str) -> FileState {
        FileState {
            source_id: id.into(),
            path: "/var/log/pods/a_b_c/d/0.log".into(),
            dev: 1,
            ino: 2,
            fp_len: 10,
            fp_hash: 3,
            acked_seq: 0,
            acked_resume: 0,
            final_seq: None,
        }
    }

    #[test]
    fn acknowledgements_only_advance_and_gone_files_are_dropped() {
        let r = Registry::default();
        r.upsert(state("a"));
        r.upsert(state("b"));
        r.ack("a", 100, 40);
        r.ack("a", 80, 10);
        assert_eq!(r.get("a").unwrap().acked_seq, 100);
        assert_eq!(r.get("a").unwrap().acked_resume, 40);
        let mut gone = state("b");
        gone.final_seq = Some(50);
        r.upsert(gone);
        r.ack("b", 50, 25);
        let cp = r.snapshot_if_dirty(7).unwrap();
        assert_eq!(cp.files.len(), 1);
        assert!(r.snapshot_if_dirty(8).is_none(), "nothing changed");
    }

    #[test]
    fn a_queued_identity_is_adopted_when_it_covers_more_of_the_head() {
        let r = Registry::default();
        let mut done = state("a");
        done.final_seq = Some(9);
        r.upsert(done);
        r.ack("a", 5, 5);
        let mut queued = state("a");
        queued.fp_len = 200;
        queued.fp_hash = 4;
        r.adopt(&queued);
        let got = r.get("a").unwrap();
        assert_eq!((got.fp_len, got.fp_hash), (200, 4));
        assert_eq!(
            (got.acked_seq, got.final_seq),
            (5, Some(9)),
            "progress is kept"
        );
        r.adopt(&state("a"));
        assert_eq!(r.get("a").unwrap().fp_len, 200, "a shorter head is older");
        r.adopt(&state("b"));
        assert!(r.get("b").is_some(), "a stream only the queue knows");
    }

    #[test]
    fn save_and_load_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        assert_eq!(load(&path).unwrap(), None);
        let r = Registry::default();
        r.upsert(state("a"));
        r.ack_queue(Position {
            segment: 3,
            offset: 9,
        });
        r.ack_journal("n/journald-1", 3, "s=abc");
        r.ack_journal("n/journald-1", 2, "s=older");
        assert_eq!(r.journal().unwrap().cursor, "s=abc");
        let cp = r.snapshot_if_dirty(1).unwrap();
        save(&path, &cp).unwrap();
        assert_eq!(load(&path).unwrap(), Some(cp));
        assert!(!path.with_extension("tmp").exists());
        fs::write(&path, b"{not json").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("unreadable"), "{e}");
    }
}
