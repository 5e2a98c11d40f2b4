//! The embedded store's write-ahead log.
//!
//! A batch's writes are acknowledged once they are in this log and the log
//! is on disk: one sequential append and one `fdatasync` per batch. The
//! same writes then go into the overlay that readers read over the redb
//! file (`overlay.rs`). Now and then a *checkpoint* writes the overlay to
//! the file in one durable commit, on a thread of its own, and stores the
//! sequence number of the last batch it holds. There are two log files:
//! when a checkpoint starts, the batches after it go to the other file,
//! which starts over, so the file being checkpointed keeps its batches
//! until the file holds them.
//!
//! A batch in the file costs about as many page writes as it touches
//! leaves (one per conversation written to, plus index leaves), each with
//! its own `pwrite`; in the log it costs its bytes. A checkpoint writes a
//! page once however many batches changed it since the last one.
//!
//! After a crash the file is back at its last checkpoint, and every batch
//! the logs hold after it is applied again, in order, before anyone reads
//! ([`super::file::DbFile::open`]). A record is the batch's physical
//! writes (table, key, value or removal), so applying one again gives the
//! same bytes.
//!
//! A record on disk: length (u32), CRC-32 of what follows the CRC (u32),
//! sequence number (u64), then the writes; integers little-endian. The log
//! is read up to the first record that is cut short, fails its CRC or does
//! not follow its predecessor's sequence number: a record is acknowledged
//! only after the `fdatasync` that covers it returned, so what follows such
//! a record was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::Error;

/// The log's file, next to the database file (`mychat.wal` by
/// `mychat.redb`).
pub fn path_of(db: &Path) -> PathBuf {
    db.with_extension("wal")
}

const HEADER: usize = 16;
/// A new log is written full of zeros up to this size, more than a
/// checkpoint lets the log grow to, so an append overwrites blocks that
/// are already written: it neither grows the file nor allocates or
/// converts blocks, and its `fdatasync` has only the record's pages to
/// write, no file-system journal commit. (Blocks merely allocated with
/// `fallocate` are "unwritten" until written, and marking them written
/// took a journal commit at about every other sync: 220–250 µs a sync
/// here against 140–150 µs over written zeros.) Zeros are no record.
const RESERVE: u64 = 32 << 20;
/// The page size appends are rounded up to.
const PAGE: u64 = 4096;
/// The zeros are written this much at a time.
const FILL_CHUNK: usize = 1 << 20;
/// A record larger than this is not one we wrote.
const MAX_RECORD: usize = 1 << 30;

const INSERT: u8 = 1;
const REMOVE: u8 = 2;

/// The writes of one batch, encoded as the log stores them.
#[derive(Default)]
pub struct Ops(Vec<u8>);

impl Ops {
    pub fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) {
        self.head(INSERT, table, key);
        self.0
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.0.extend_from_slice(value);
    }

    pub fn remove(&mut self, table: &str, key: &[u8]) {
        self.head(REMOVE, table, key);
    }

    fn head(&mut self, op: u8, table: &str, key: &[u8]) {
        self.0.push(op);
        self.0.push(table.len() as u8);
        self.0.extend_from_slice(table.as_bytes());
        self.0.extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.0.extend_from_slice(key);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One write of a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Insert {
        table: &'a str,
        key: &'a [u8],
        value: &'a [u8],
    },
    Remove {
        table: &'a str,
        key: &'a [u8],
    },
}

/// The writes of a record's body, in order.
pub fn ops(mut body: &[u8]) -> Result<Vec<Op<'_>>, Error> {
    fn take<'a>(body: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
        if body.len() < n {
            return Err(Error::Storage("write-ahead log record is cut short".into()));
        }
        let (head, rest) = body.split_at(n);
        *body = rest;
        Ok(head)
    }
    fn len(body: &mut &[u8]) -> Result<usize, Error> {
        let bytes = take(body, 4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize)
    }
    let mut out = Vec::new();
    while !body.is_empty() {
        let op = take(&mut body, 1)?[0];
        let name_len = take(&mut body, 1)?[0] as usize;
        let table = std::str::from_utf8(take(&mut body, name_len)?)
            .map_err(|_| Error::Storage("write-ahead log names a table badly".into()))?;
        let key_len = len(&mut body)?;
        let key = take(&mut body, key_len)?;
        out.push(match op {
            INSERT => {
                let value_len = len(&mut body)?;
                Op::Insert {
                    table,
                    key,
                    value: take(&mut body, value_len)?,
                }
            }
            REMOVE => Op::Remove { table, key },
            other => {
                return Err(Error::Storage(format!(
                    "write-ahead log holds an unknown write {other}"
                )));
            }
        });
    }
    Ok(out)
}

/// A record read back from the log.
pub struct Record {
    pub seq: u64,
    pub body: Vec<u8>,
}

pub struct Wal {
    file: File,
    /// Bytes of whole records in the file.
    len: u64,
    /// The sequence number the next record gets.
    next_seq: u64,
    #[cfg(feature = "fault-injection")]
    pub(super) faults: std::sync::Arc<faults::Faults>,
}

impl Wal {
    /// Opens (or creates) the log and reads its records: the longest run
    /// of whole records, each following the one before.
    pub fn open(path: &Path) -> std::io::Result<(Wal, Vec<Record>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let size = file.metadata()?.len();
        let (records, len) = read(&file, size)?;
        if size < RESERVE {
            reserve(&file, size);
        }
        let next_seq = records.last().map_or(1, |r| r.seq + 1);
        let wal = Wal {
            file,
            len,
            next_seq,
            #[cfg(feature = "fault-injection")]
            faults: Default::default(),
        };
        Ok((wal, records))
    }

    /// Bytes of records in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The sequence number of the last record written (or of the batch a
    /// checkpoint holds, after [`Wal::restart`]).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Appends one batch and waits until it is on disk; returns its
    /// sequence number. On failure the record is cut off again, so it is
    /// not applied at the next start either (unless that cut fails too).
    pub fn append(&mut self, ops: &Ops) -> std::io::Result<u64> {
        let seq = self.next_seq;
        let mut record = Vec::with_capacity(HEADER + ops.0.len() + PAGE as usize);
        record.extend_from_slice(&(ops.0.len() as u32).to_le_bytes());
        record.extend_from_slice(&[0; 4]);
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&ops.0);
        let crc = crc32fast::hash(&record[8..]);
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        let size = record.len();
        // Zeros up to the end of the last page the record touches: a page
        // written whole is not read from disk first (the log's pages are
        // not kept in memory), and the next record starts in a page this
        // write left in memory. Zeros are no record.
        let end = self.len + size as u64;
        record.resize(size + ((PAGE - end % PAGE) % PAGE) as usize, 0);
        let written = self.write_at_end(&record).and_then(|()| self.sync());
        match written {
            Ok(()) => {
                self.len += size as u64;
                self.next_seq += 1;
                Ok(seq)
            }
            Err(e) => {
                // Zeros over the record, so it is not read back.
                use std::os::unix::fs::FileExt;
                let zeros = vec![0u8; record.len()];
                let _ = self
                    .file
                    .write_all_at(&zeros, self.len)
                    .and_then(|()| self.sync());
                Err(e)
            }
        }
    }

    /// Writes at the end of the records. After a restart that is inside
    /// the file, over old records, so the append changes no file metadata
    /// and its `fdatasync` writes only the record's pages; the file grows
    /// only past its largest size so far.
    fn write_at_end(&mut self, record: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(record, self.len)
    }

    fn sync(&self) -> std::io::Result<()> {
        #[cfg(feature = "fault-injection")]
        if let Some(e) = self.faults.take() {
            return Err(e);
        }
        self.file.sync_data()?;
        Ok(())
    }

    /// Empties the log once a checkpoint holds everything up to `seq`:
    /// the next record, `seq + 1`, is written at the start of the file,
    /// over the old ones. Those behind it are not read again, as their
    /// numbers do not follow it (and are at most `seq`, which the
    /// checkpoint holds).
    pub fn restart(&mut self, seq: u64) -> std::io::Result<()> {
        self.len = 0;
        self.next_seq = seq + 1;
        Ok(())
    }
}

/// Writes the log's file full of zeros from `from` up to [`RESERVE`],
/// durably, once in the life of a data dir (about 60 ms here). A file
/// system with less than four times that free, or one that fails on the
/// way, keeps the file as it was: the log then grows as it is written,
/// which works too, only slower to sync.
fn reserve(file: &File, from: u64) {
    use std::os::unix::fs::FileExt;
    let room = rustix::fs::fstatvfs(file)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0);
    if room < RESERVE.saturating_mul(4) {
        tracing::debug!(
            free_bytes = room,
            "too little free space to reserve room for the write-ahead log"
        );
        return;
    }
    let zeros = vec![0u8; FILL_CHUNK];
    let filled = (|| {
        let mut at = from;
        while at < RESERVE {
            let n = (RESERVE - at).min(FILL_CHUNK as u64) as usize;
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        file.sync_all()
    })();
    match filled {
        // The zeros need not stay in memory; reads stop at the records.
        Ok(()) => {
            let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
        }
        Err(e) => {
            tracing::debug!(error = %e, "the write-ahead log's space could not be reserved");
            let _ = file.set_len(from).and_then(|()| file.sync_all());
        }
    }
}

/// The records at the start of a log of `size` bytes, and how many bytes
/// they take. Reads up to the first record that is not whole, so a log
/// that ends early (the reserved zeros) costs no more than its records.
fn read(file: &File, size: u64) -> std::io::Result<(Vec<Record>, u64)> {
    let mut reader = std::io::BufReader::new(file);
    let mut records: Vec<Record> = Vec::new();
    let mut at = 0u64;
    let mut head = [0u8; HEADER];
    while at + HEADER as u64 <= size {
        reader.read_exact(&mut head)?;
        let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        if len > MAX_RECORD || at + (HEADER + len) as u64 > size {
            break;
        }
        if records.last().is_some_and(|last| last.seq + 1 != seq) {
            break;
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&head[8..]);
        hasher.update(&body);
        if hasher.finalize() != crc {
            break;
        }
        records.push(Record { seq, body });
        at += (HEADER + len) as u64;
    }
    Ok((records, at))
}

/// The test suite's fault-injection point: the log's fsyncs fail on
/// request, so a test can fail the commit of a batch.
#[cfg(feature = "fault-injection")]
pub mod faults {
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[derive(Debug, Default)]
    pub struct Faults {
        syncs_to_fail: AtomicU32,
        disk_full: AtomicBool,
    }

    impl Faults {
        /// The next `n` fsyncs of the log fail: with ENOSPC when
        /// `disk_full`, else with EIO.
        pub fn fail_syncs(&self, n: u32, disk_full: bool) {
            self.disk_full.store(disk_full, Ordering::SeqCst);
            self.syncs_to_fail.store(n, Ordering::SeqCst);
        }

        pub(in crate::store) fn take(&self) -> Option<io::Error> {
            self.syncs_to_fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .ok()?;
            let errno = if self.disk_full.load(Ordering::SeqCst) {
                rustix::io::Errno::NOSPC
            } else {
                rustix::io::Errno::IO
            };
            Some(io::Error::from_raw_os_error(errno.raw_os_error()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u8) -> Ops {
        let mut ops = Ops::default();
        ops.insert("messages", &[n, 1], b"hello");
        ops.remove("idx_threads_by_space", &[n, 2]);
        ops
    }

    #[test]
    fn records_read_back_in_order_with_their_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wal");
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert!(records.is_empty());
        assert_eq!(wal.append(&batch(1)).unwrap(), 1);
        assert_eq!(wal.append(&batch(2)).unwrap(), 2);
        drop(wal);
        let (wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(wal.last_seq(), 2);
        assert_eq!(
            ops(&records[1].body).unwrap(),
            [
                Op::Insert {
                    table: "messages",
                    key: &[2, 1],
                    value: b"hello"
                },
                Op::Remove {
                    table: "idx_threads_by_space",
                    key: &[2, 2]
                }
            ]
        );
    }

    #[test]
    fn a_torn_or_damaged_tail_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        for n in 1..=3 {
            wal.append(&batch(n)).unwrap();
        }
        let whole = std::fs::read(&path).unwrap()[..wal.len() as usize].to_vec();
        let one = whole.len() / 3;

        // Cut inside the third record: two come back.
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(Wal::open(&path).unwrap().1.len(), 2);

        // A flipped byte in the second record's writes: only the first.
        let mut damaged = whole.clone();
        damaged[one + HEADER + 2] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let (wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 1);
        // The next record is written over the damaged one.
        assert_eq!(wal.len() as usize, one);
    }

    /// A batch whose record takes exactly one page, so the record after
    /// it starts a page (and is not covered by an append's zeros).
    fn page_sized(n: u8) -> Ops {
        let mut ops = Ops::default();
        ops.insert("messages", &[n, 1], b"");
        let value = vec![n; PAGE as usize - HEADER - ops.0.len()];
        let mut ops = Ops::default();
        ops.insert("messages", &[n, 1], &value);
        assert_eq!(HEADER + ops.0.len(), PAGE as usize);
        ops
    }

    #[test]
    fn a_restarted_log_does_not_read_stale_records_after_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        for n in 1..=3 {
            wal.append(&page_sized(n)).unwrap();
        }
        wal.restart(3).unwrap();
        assert_eq!(wal.append(&page_sized(4)).unwrap(), 4);
        drop(wal);
        // Record 4 over record 1; the old records 2 and 3, whole behind
        // it, do not follow 4.
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
        assert_eq!(wal.append(&batch(5)).unwrap(), 5);
        let (_, records) = Wal::open(&path).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn an_append_writes_zeros_to_the_end_of_its_last_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wal");
        std::fs::write(&path, vec![0xaa; 3 * PAGE as usize]).unwrap();
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert!(records.is_empty());
        wal.append(&batch(1)).unwrap();
        let end = wal.len() as usize;
        let file = std::fs::read(&path).unwrap();
        assert!(end < PAGE as usize);
        assert!(file[end..PAGE as usize].iter().all(|&b| b == 0));
        assert_eq!(file[PAGE as usize], 0xaa, "only up to the page's end");
    }

    #[test]
    fn damaged_writes_are_an_error_not_a_panic() {
        let mut ops = Ops::default();
        ops.insert("messages", b"k", b"v");
        let bytes = &ops.0;
        for cut in 0..bytes.len() {
            assert!(super::ops(&bytes[..cut]).is_err() || cut == 0);
        }
        assert!(super::ops(&[9, 0, 0, 0, 0, 0]).is_err());
    }
}
