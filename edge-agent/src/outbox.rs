//! The durable outbox: signed readings (and their frames) on disk until the broker has them.
//!
//! One entry per reading: `{seq:020}.cose` (the signed envelope) and optionally
//! `{seq:020}.frame`. Each file is written to a `.tmp`, fsynced, renamed, and the directory
//! is fsynced before [`Outbox::append`] returns, so an entry either exists whole or not at
//! all after kill -9 or power loss; leftovers are cleaned at [`Outbox::open`].
//!
//! The outbox is also the sequence counter: the next sequence number is one more than the
//! newest entry, or than the `acked` watermark written before the newest entry is removed.
//! A number is therefore persisted (as its entry) before the reading can leave the device,
//! and never reused for anything that did; a crash before the entry is durable loses only a
//! number nobody saw, so the published sequence has no gaps.
//!
//! Bounded: when `max_entries` or `max_bytes` would be exceeded, [`Outbox::append`] refuses
//! with [`OutboxError::Full`]; nothing is ever dropped. Blocking: call it from
//! `spawn_blocking` or a dedicated thread.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const WATERMARK: &str = "acked";

/// Size bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: u64,
    pub max_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbox full ({entries} readings, {bytes} bytes): capture refused")]
    Full { entries: u64, bytes: u64 },
    #[error("sequence {got} appended, but {expected} is next")]
    SeqMismatch { expected: u64, got: u64 },
    #[error("{0} is not a valid acknowledgement watermark")]
    Corrupt(PathBuf),
    #[error("no entry {0} in the outbox")]
    Missing(u64),
}

/// One stored reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub reading: Vec<u8>,
    pub frame: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    bytes: u64,
    has_frame: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    limits: Limits,
    entries: BTreeMap<u64, Meta>,
    bytes: u64,
    next_seq: u64,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OutboxError + 'a {
    move |source| OutboxError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

/// Writes `bytes` to `path` via a fsynced temporary file and a rename (no directory sync).
fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), OutboxError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io("rename", &tmp))
}

impl Outbox {
    /// Opens (creating) the outbox in `dir`, cleaning what a crash left half-written.
    pub fn open(dir: &Path, limits: Limits) -> Result<Outbox, OutboxError> {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let mut entries = BTreeMap::new();
        let mut frames = BTreeMap::new();
        let mut cleaned = false;
        for item in fs::read_dir(dir).map_err(io("list", dir))? {
            let item = item.map_err(io("list", dir))?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            let (stem, ext) = name.split_once('.').unwrap_or((&name, ""));
            let seq = stem.parse::<u64>().ok().filter(|_| stem.len() == 20);
            match (seq, ext) {
                (Some(seq), "cose") => {
                    let len = item.metadata().map_err(io("inspect", &path))?.len();
                    entries.insert(seq, len);
                }
                (Some(seq), "frame") => {
                    let len = item.metadata().map_err(io("inspect", &path))?.len();
                    frames.insert(seq, len);
                }
                (_, "tmp") => {
                    fs::remove_file(&path).map_err(io("remove", &path))?;
                    cleaned = true;
                }
                _ => {}
            }
        }
        let mut out = BTreeMap::new();
        let mut bytes = 0;
        for (seq, len) in entries {
            let frame = frames.remove(&seq);
            let size = len + frame.unwrap_or(0);
            bytes += size;
            out.insert(
                seq,
                Meta {
                    bytes: size,
                    has_frame: frame.is_some(),
                },
            );
        }
        // frames whose reading never became durable
        for seq in frames.keys() {
            let p = dir.join(format!("{seq:020}.frame"));
            fs::remove_file(&p).map_err(io("remove", &p))?;
            cleaned = true;
        }
        if cleaned {
            sync_dir(dir)?;
        }
        let wm_path = dir.join(WATERMARK);
        let watermark = match fs::read_to_string(&wm_path) {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| OutboxError::Corrupt(wm_path.clone()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io("read", &wm_path)(e)),
        };
        let newest = out.keys().next_back().copied().unwrap_or(0);
        Ok(Outbox {
            dir: dir.to_path_buf(),
            limits,
            entries: out,
            bytes,
            next_seq: newest.max(watermark) + 1,
        })
    }

    /// The sequence number the next reading must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last sequence number handed out, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.next_seq.checked_sub(1).filter(|&s| s > 0)
    }

    pub fn depth(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether an entry of `size` bytes would be refused.
    pub fn is_full(&self, size: u64) -> bool {
        self.depth() + 1 > self.limits.max_entries || self.bytes + size > self.limits.max_bytes
    }

    /// Stores reading `seq` (must be [`Outbox::next_seq`]) durably.
    pub fn append(
        &mut self,
        seq: u64,
        reading: &[u8],
        frame: Option<&[u8]>,
    ) -> Result<(), OutboxError> {
        if seq != self.next_seq {
            return Err(OutboxError::SeqMismatch {
                expected: self.next_seq,
                got: seq,
            });
        }
        let size = (reading.len() + frame.map_or(0, |f| f.len())) as u64;
        if self.is_full(size) {
            return Err(OutboxError::Full {
                entries: self.depth(),
                bytes: self.bytes,
            });
        }
        if let Some(frame) = frame {
            write_durable(&self.dir.join(format!("{seq:020}.frame")), frame)?;
        }
        write_durable(&self.dir.join(format!("{seq:020}.cose")), reading)?;
        sync_dir(&self.dir)?;
        self.entries.insert(
            seq,
            Meta {
                bytes: size,
                has_frame: frame.is_some(),
            },
        );
        self.bytes += size;
        self.next_seq = seq + 1;
        Ok(())
    }

    /// Up to `limit` stored sequence numbers from `from` on, oldest first.
    pub fn seqs_from(&self, from: u64, limit: usize) -> Vec<u64> {
        self.entries
            .range(from..)
            .take(limit)
            .map(|(s, _)| *s)
            .collect()
    }

    pub fn read(&self, seq: u64) -> Result<Entry, OutboxError> {
        let meta = self.entries.get(&seq).ok_or(OutboxError::Missing(seq))?;
        let p = self.dir.join(format!("{seq:020}.cose"));
        let reading = fs::read(&p).map_err(io("read", &p))?;
        let frame = if meta.has_frame {
            let p = self.dir.join(format!("{seq:020}.frame"));
            Some(fs::read(&p).map_err(io("read", &p))?)
        } else {
            None
        };
        Ok(Entry {
            seq,
            reading,
            frame,
        })
    }

    /// Removes an acknowledged entry. Removing the newest entry first persists the watermark,
    /// so its sequence number is never handed out again.
    pub fn remove(&mut self, seq: u64) -> Result<(), OutboxError> {
        let Some(meta) = self.entries.get(&seq).copied() else {
            return Ok(()); // already gone (a re-delivery acknowledged twice)
        };
        if self.entries.keys().next_back() == Some(&seq) {
            write_durable(&self.dir.join(WATERMARK), format!("{seq}\n").as_bytes())?;
            sync_dir(&self.dir)?;
        }
        let p = self.dir.join(format!("{seq:020}.cose"));
        fs::remove_file(&p).map_err(io("remove", &p))?;
        if meta.has_frame {
            let p = self.dir.join(format!("{seq:020}.frame"));
            let _ = fs::remove_file(&p);
        }
        self.entries.remove(&seq);
        self.bytes -= meta.bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: Limits = Limits {
        max_entries: 1000,
        max_bytes: 1 << 30,
    };

    #[test]
    fn sequence_survives_reopen_and_removal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Outbox::open(dir.path(), BIG).expect("open");
        assert_eq!(o.next_seq(), 1);
        o.append(1, b"one", None).expect("append");
        o.append(2, b"two", Some(b"jpeg")).expect("append");
        assert_eq!(
            o.append(5, b"x", None).map_err(|e| e.to_string()),
            Err("sequence 5 appended, but 3 is next".into())
        );
        drop(o);
        let mut o = Outbox::open(dir.path(), BIG).expect("reopen");
        assert_eq!(o.next_seq(), 3);
        assert_eq!(o.seqs_from(0, 10), vec![1, 2]);
        assert_eq!(o.read(2).expect("read").frame, Some(b"jpeg".to_vec()));
        o.remove(1).expect("remove");
        o.remove(2).expect("remove newest writes the watermark");
        assert_eq!(o.depth(), 0);
        drop(o);
        let o = Outbox::open(dir.path(), BIG).expect("reopen empty");
        assert_eq!(o.next_seq(), 3, "numbers are never reused");
    }

    #[test]
    fn half_written_files_are_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Outbox::open(dir.path(), BIG).expect("open");
        o.append(1, b"one", None).expect("append");
        drop(o);
        fs::write(dir.path().join(format!("{:020}.tmp", 2)), b"torn").expect("write");
        fs::write(dir.path().join(format!("{:020}.frame", 2)), b"orphan").expect("write");
        let o = Outbox::open(dir.path(), BIG).expect("reopen");
        assert_eq!(o.seqs_from(0, 10), vec![1]);
        assert_eq!(o.next_seq(), 2);
        assert!(!dir.path().join(format!("{:020}.frame", 2)).exists());
    }

    #[test]
    fn full_outbox_refuses_and_never_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits {
            max_entries: 2,
            max_bytes: 1 << 20,
        };
        let mut o = Outbox::open(dir.path(), limits).expect("open");
        o.append(1, b"a", None).expect("append");
        o.append(2, b"b", None).expect("append");
        assert!(matches!(
            o.append(3, b"c", None),
            Err(OutboxError::Full { .. })
        ));
        assert_eq!(o.seqs_from(0, 10), vec![1, 2]);
        assert_eq!(o.next_seq(), 3, "a refused capture does not use a number");
        o.remove(1).expect("remove");
        o.append(3, b"c", None).expect("room again");
        let small = Limits {
            max_entries: 100,
            max_bytes: 4,
        };
        let dir2 = tempfile::tempdir().expect("tempdir");
        let mut o = Outbox::open(dir2.path(), small).expect("open");
        assert!(matches!(
            o.append(1, b"12345", None),
            Err(OutboxError::Full { .. })
        ));
    }
}
