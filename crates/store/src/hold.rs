//! Legal holds: time ranges of source kinds that retention must not delete, whatever its rules say, until
//! the hold is released (litigation, an investigation, a regulator's request).
//!
//! Holds live in `<data dir>/holds.json`, written atomically so that `quarry hold` can change them while a
//! server runs; the store reads the file again at every retention pass. A partition (a kind and a UTC
//! day) is kept while any hold covers its kind and overlaps its day. If the file cannot be read,
//! retention deletes nothing and says why: a hold must never be lost to a bad file.

use crate::partition::PartKey;
use crate::write_atomic;
use quarry_model::Kind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Its name (a case or ticket id), unique among the holds.
    pub name: String,
    /// Kinds held; empty holds every kind.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// Start of the held range, UTC ns (inclusive).
    pub from_ns: i64,
    /// End of the held range, UTC ns (exclusive).
    pub to_ns: i64,
    /// Why, for the record.
    #[serde(default)]
    pub reason: String,
    /// When it was placed, UTC ns.
    pub created_ns: i64,
}

impl Hold {
    /// True when the hold keeps partition `key`.
    pub fn covers(&self, key: &PartKey) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&key.kind))
            && key.start_ns() < self.to_ns
            && key.end_ns() > self.from_ns
    }
}

/// The contents of `holds.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holds {
    /// Holds in force.
    pub holds: Vec<Hold>,
}

/// Hold file failures.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what Quarry wrote.
    #[error("{path} is not a valid hold file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A bad request (a duplicate or unknown name, an empty range).
    #[error("{0}")]
    Invalid(String),
}

/// `<data dir>/holds.json`.
pub fn holds_path(data_dir: &Path) -> PathBuf {
    data_dir.join("holds.json")
}

impl Holds {
    /// The holds of a data directory (none when the file does not exist).
    pub fn load(data_dir: &Path) -> Result<Holds, HoldError> {
        let path = holds_path(data_dir);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| HoldError::Corrupt {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Holds::default()),
            Err(source) => Err(HoldError::Io { path, source }),
        }
    }

    fn save(&self, data_dir: &Path) -> Result<(), HoldError> {
        let path = holds_path(data_dir);
        let text = serde_json::to_vec_pretty(self).map_err(|e| HoldError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &text).map_err(|source| HoldError::Io { path, source })
    }

    /// Places a hold.
    pub fn add(data_dir: &Path, hold: Hold) -> Result<(), HoldError> {
        if hold.name.trim().is_empty() {
            return Err(HoldError::Invalid("a hold needs a name".into()));
        }
        if hold.from_ns >= hold.to_ns {
            return Err(HoldError::Invalid(format!(
                "hold {:?}: its range is empty (from must be before to)",
                hold.name
            )));
        }
        let mut all = Holds::load(data_dir)?;
        if all.holds.iter().any(|h| h.name == hold.name) {
            return Err(HoldError::Invalid(format!(
                "a hold named {:?} exists already",
                hold.name
            )));
        }
        all.holds.push(hold);
        all.save(data_dir)
    }

    /// Releases a hold by name; returns it.
    pub fn release(data_dir: &Path, name: &str) -> Result<Hold, HoldError> {
        let mut all = Holds::load(data_dir)?;
        let i = all
            .holds
            .iter()
            .position(|h| h.name == name)
            .ok_or_else(|| HoldError::Invalid(format!("no hold named {name:?}")))?;
        let hold = all.holds.remove(i);
        all.save(data_dir)?;
        Ok(hold)
    }

    /// The first hold that keeps partition `key`.
    pub fn covering(&self, key: &PartKey) -> Option<&Hold> {
        self.holds.iter().find(|h| h.covers(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    fn hold(name: &str, kinds: Vec<Kind>, from: i64, to: i64) -> Hold {
        Hold {
            name: name.into(),
            kinds,
            from_ns: from,
            to_ns: to,
            reason: String::new(),
            created_ns: 0,
        }
    }

    #[test]
    fn holds_cover_kinds_and_days() {
        let dir = tempfile::tempdir().unwrap();
        Holds::add(
            dir.path(),
            hold("case-1", vec![Kind::Audit], 10 * DAY, 12 * DAY),
        )
        .unwrap();
        let held = Holds::load(dir.path()).unwrap();
        let key = |kind, day: i64| PartKey::of(kind, day * DAY + 5);
        assert!(held.covering(&key(Kind::Audit, 10)).is_some());
        assert!(held.covering(&key(Kind::Audit, 11)).is_some());
        assert!(
            held.covering(&key(Kind::Audit, 12)).is_none(),
            "to is exclusive"
        );
        assert!(held.covering(&key(Kind::Audit, 9)).is_none());
        assert!(held.covering(&key(Kind::Container, 10)).is_none());
        assert!(Holds::add(dir.path(), hold("case-1", vec![], 0, 1)).is_err());
        assert!(Holds::add(dir.path(), hold("case-2", vec![], 5, 5)).is_err());
        Holds::add(dir.path(), hold("all", vec![], 0, DAY)).unwrap();
        assert!(Holds::load(dir.path())
            .unwrap()
            .covering(&key(Kind::VpcFlow, 0))
            .is_some());
        assert_eq!(Holds::release(dir.path(), "case-1").unwrap().name, "case-1");
        assert!(Holds::release(dir.path(), "case-1").is_err());
        std::fs::write(holds_path(dir.path()), b"{not json").unwrap();
        assert!(Holds::load(dir.path()).is_err());
    }
}
