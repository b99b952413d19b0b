//! The durable, verifiable decision log: public entries and restricted details appended and
//! fsync'd per batch (group commit) before anything is released, a Merkle tree over the public
//! entries (C2SP tlog), and a checkpoint signed after every batch.
//!
//! Files, in `<data_dir>/audit/`:
//! * `entries.jsonl`: one public entry per line ([`PublicEntry`]); line `i` is leaf `i`;
//! * `details.jsonl`: the matching restricted details ([`DetailEntry`]), for the auditor role.
//!
//! Opening cuts a torn last line (a crash before its fsync returned: nothing was released
//! for it) and aligns both files on their common prefix; any other damage refuses to start.
//! The tree is rebuilt from the entries; the checkpoint is re-signed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::checkpoint::sign_checkpoint;
use crate::audit::entry::{DetailEntry, PublicEntry, SALT_LEN, salted_mailbox_commitment, use_tag};
use crate::audit::policy::PolicyDoc;
use crate::audit::records::Records;
use crate::audit::report::{Period, Report, Tally};
use crate::audit::tree::{Hash, MerkleTree};
use crate::decision_log::{Decision, DecisionLog, Outcome};
use crate::keystore::ManifestSigner;
use crate::{Error, Result};

/// Most entries returned by one range read.
pub const MAX_RANGE: u64 = 1000;

/// What a batch append proves: the checkpoint after it and each entry's inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditReceipt {
    /// The signed checkpoint (C2SP signed note) covering the batch.
    pub checkpoint: String,
    /// Index of the batch's first entry.
    pub first: u64,
    /// The batch's public entries, as the exact bytes hashed into the tree (UTF-8 JSON).
    pub entries: Vec<String>,
    /// For each entry, its inclusion proof in the checkpoint's tree (hex hashes).
    pub proofs: Vec<Vec<String>>,
}

struct Inner {
    entries: File,
    details: File,
    entries_len: u64,
    details_len: u64,
    records: Records,
    tree: MerkleTree,
    checkpoint: String,
    signed_at: Instant,
    failed: bool,
}

/// The audit log of one custodian.
pub struct AuditStore {
    dir: PathBuf,
    origin: String,
    signer: ManifestSigner,
    commitment_key: Zeroizing<[u8; 32]>,
    inner: Mutex<Inner>,
    /// Transparency-report tallies of the most recently asked periods, each counted up to
    /// some checkpoint. Held while a report is computed (one at a time), never with `inner`
    /// longer than it takes to snapshot the records.
    tallies: Mutex<Vec<Tally>>,
    /// Seconds each batch's fsync took (for metrics), most recent.
    last_fsync: Mutex<f64>,
}

impl core::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AuditStore({})", self.dir.display())
    }
}

/// Reads complete lines; returns them and the byte length they cover (a torn tail is left out).
fn read_lines(path: &Path) -> Result<(Vec<Vec<u8>>, u64)> {
    if !path.exists() {
        return Ok((Vec::new(), 0));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut len = 0u64;
    loop {
        let mut buf = Vec::new();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        len += n as u64;
        buf.pop();
        lines.push(buf);
    }
    Ok((lines, len))
}

fn open_append(path: &Path, len: u64) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    file.set_len(len).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    Ok(file)
}

fn hexes(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(hex::encode).collect()
}

impl AuditStore {
    /// Opens (or creates) the log in `dir`, signing checkpoints as `origin` with `signer`
    /// and committing to mailbox ids under `commitment_key`.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Protocol`] for a damaged log (other than a torn last line).
    pub fn open(
        dir: &Path,
        origin: String,
        signer: ManifestSigner,
        commitment_key: Zeroizing<[u8; 32]>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (entries_path, details_path) = (dir.join("entries.jsonl"), dir.join("details.jsonl"));
        let (mut records, _) = read_lines(&entries_path)?;
        let (mut details, _) = read_lines(&details_path)?;
        // A crash between the two files' fsyncs leaves one longer: its extra lines were never
        // acknowledged, so keep the common prefix.
        let n = records.len().min(details.len());
        records.truncate(n);
        details.truncate(n);
        let mut tree = MerkleTree::new();
        for (i, (r, d)) in records.iter().zip(&details).enumerate() {
            let e = PublicEntry::from_record(r).map_err(|_| {
                Error::Protocol(format!("{}: entry {i} is damaged", entries_path.display()))
            })?;
            let det: DetailEntry = serde_json::from_slice(d).map_err(|_| {
                Error::Protocol(format!("{}: detail {i} is damaged", details_path.display()))
            })?;
            if e.seq != i as u64 || det.seq != i as u64 {
                return Err(Error::Protocol(format!(
                    "{}: entry {i} is out of sequence",
                    entries_path.display()
                )));
            }
            tree.append(r)?;
        }
        let entries_len: u64 = records.iter().map(|r| r.len() as u64 + 1).sum();
        let details_len: u64 = details.iter().map(|r| r.len() as u64 + 1).sum();
        let checkpoint = sign_checkpoint(&origin, tree.size(), &tree.root(), &signer)?;
        let inner = Inner {
            entries: open_append(&entries_path, entries_len)?,
            details: open_append(&details_path, details_len)?,
            entries_len,
            details_len,
            records: Records::from_vec(records),
            tree,
            checkpoint,
            signed_at: Instant::now(),
            failed: false,
        };
        Ok(Self {
            dir: dir.to_owned(),
            origin,
            signer,
            commitment_key,
            inner: Mutex::new(inner),
            tallies: Mutex::new(Vec::new()),
            last_fsync: Mutex::new(0.0),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| Error::LogUnavailable("audit log lock poisoned".into()))
    }

    /// The use tag of `mailbox` under approval `approval_id` (keyed HMAC, as published on
    /// the allowed entries under the approval).
    #[must_use]
    pub fn use_tag(&self, approval_id: &str, mailbox: &str) -> String {
        use_tag(&self.commitment_key, approval_id, mailbox)
    }

    /// Every public entry, parsed, for rebuilding approval use counts at start: an allowed
    /// entry under an approval written before use tags existed gets the tag its mailbox
    /// would have had (computed from its detail), so that uses on both sides of the upgrade
    /// count together.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Protocol`] if a stored entry does not parse.
    pub fn entries_with_use_tags(&self) -> Result<Vec<PublicEntry>> {
        let _appends = self.lock()?;
        Ok(Self::read_joined(&self.dir)?
            .into_iter()
            .map(|(mut p, d)| {
                if let (None, Outcome::Allow, Some(id), Some(m)) =
                    (&p.use_tag, p.outcome, &p.approval_id, &d.mailbox)
                {
                    p.use_tag = Some(use_tag(&self.commitment_key, id, m));
                }
                p
            })
            .collect())
    }

    /// The checkpoint origin (`custodia/<region>/<custodian>`).
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Appends a batch durably, then signs a checkpoint over it.
    ///
    /// # Errors
    /// [`Error::LogUnavailable`] if the batch could not be made durable (disk full, read-only,
    /// I/O error): nothing in it may be released. The files are cut back to their previous
    /// length, so the service recovers once the cause is gone.
    pub fn append_batch(&self, batch: &mut [Decision]) -> Result<AuditReceipt> {
        let mut inner = self.lock()?;
        let first = inner.tree.size();
        let mut publics = Vec::with_capacity(batch.len());
        let mut ebuf = Vec::with_capacity(batch.len() * 256);
        let mut dbuf = Vec::with_capacity(batch.len() * 128);
        let rng = SystemRandom::new();
        for (i, d) in batch.iter_mut().enumerate() {
            d.seq = first + i as u64;
            // A fresh salt per entry: commitments of one mailbox do not repeat.
            let salt = match &d.mailbox {
                Some(_) => {
                    let mut salt = [0u8; SALT_LEN];
                    rng.fill(&mut salt)
                        .map_err(|_| Error::LogUnavailable("no randomness for a salt".into()))?;
                    Some(salt)
                }
                None => None,
            };
            let public = PublicEntry {
                seq: d.seq,
                batch: first,
                time: d.time,
                operation: d.operation.clone(),
                caller_region: d.caller_region.clone(),
                caller_name: d.caller_name.clone(),
                outcome: d.outcome,
                reason: d.reason.clone(),
                approval_id: d.approval_id.clone(),
                key_version: d.key_version,
                mailbox_commitment: d
                    .mailbox
                    .as_deref()
                    .zip(salt.as_ref())
                    .map(|(m, salt)| salted_mailbox_commitment(&self.commitment_key, salt, m)),
                use_tag: match (d.outcome, &d.approval_id, &d.mailbox) {
                    (Outcome::Allow, Some(id), Some(m)) => {
                        Some(use_tag(&self.commitment_key, id, m))
                    }
                    _ => None,
                },
                policy_hash: d.policy.as_ref().map(PolicyDoc::hash),
                flags: d.flags.clone(),
            };
            let record = public.record();
            ebuf.extend_from_slice(&record);
            ebuf.push(b'\n');
            let detail = DetailEntry {
                seq: d.seq,
                mailbox: d.mailbox.clone(),
                object_id: d.object_id.clone(),
                caller_key_hash: d.caller_key_hash.clone(),
                salt: salt.map(hex::encode),
                policy: d.policy.clone(),
            };
            serde_json::to_writer(&mut dbuf, &detail)
                .map_err(|e| Error::LogUnavailable(e.to_string()))?;
            dbuf.push(b'\n');
            publics.push(record);
        }
        let started = Instant::now();
        let durable = (|| -> std::io::Result<()> {
            if inner.failed {
                // A previous failure left the handles' state unknown: make sure the files
                // end where the log does before writing again.
                let (el, dl) = (inner.entries_len, inner.details_len);
                inner.entries.set_len(el)?;
                inner.details.set_len(dl)?;
            }
            inner.details.write_all(&dbuf)?;
            inner.entries.write_all(&ebuf)?;
            inner.details.sync_data()?;
            inner.entries.sync_data()
        })();
        if let Err(e) = durable {
            let (el, dl) = (inner.entries_len, inner.details_len);
            let restored = inner.entries.set_len(el).and(inner.details.set_len(dl));
            inner.failed = restored.is_err();
            tracing::error!(error = %e, "audit log append failed: releasing nothing");
            return Err(Error::LogUnavailable(format!(
                "{}: {e}",
                self.dir.display()
            )));
        }
        inner.failed = false;
        if let Ok(mut f) = self.last_fsync.lock() {
            *f = started.elapsed().as_secs_f64();
        }
        inner.entries_len += ebuf.len() as u64;
        inner.details_len += dbuf.len() as u64;
        for r in &publics {
            inner.tree.append(r)?;
        }
        for r in &publics {
            inner.records.push(r.clone());
        }
        let size = inner.tree.size();
        inner.checkpoint = sign_checkpoint(&self.origin, size, &inner.tree.root(), &self.signer)?;
        inner.signed_at = Instant::now();
        let proofs = (first..size)
            .map(|i| inner.tree.inclusion_proof(i, size).map(|p| hexes(&p)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AuditReceipt {
            checkpoint: inner.checkpoint.clone(),
            first,
            entries: publics
                .into_iter()
                .map(|r| String::from_utf8(r).unwrap_or_default())
                .collect(),
            proofs,
        })
    }

    /// The latest signed checkpoint.
    ///
    /// # Errors
    /// Only on a poisoned lock.
    pub fn checkpoint(&self) -> Result<String> {
        Ok(self.lock()?.checkpoint.clone())
    }

    /// Number of entries, seconds since the last checkpoint, and the last fsync's seconds.
    ///
    /// # Errors
    /// Only on a poisoned lock.
    pub fn stats(&self) -> Result<(u64, f64, f64)> {
        let inner = self.lock()?;
        let fsync = self.last_fsync.lock().map(|f| *f).unwrap_or(0.0);
        Ok((
            inner.tree.size(),
            inner.signed_at.elapsed().as_secs_f64(),
            fsync,
        ))
    }

    /// Public entries `start .. end` (at most [`MAX_RANGE`]), as the exact record bytes.
    ///
    /// # Errors
    /// [`Error::Protocol`] for a range outside the log or too long.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<String>> {
        let inner = self.lock()?;
        check_range(start, end, inner.tree.size())?;
        (start..end)
            .map(|i| {
                inner
                    .records
                    .get(i)
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .ok_or_else(|| Error::Protocol("entry outside the log".into()))
            })
            .collect()
    }

    /// Inclusion proof of entry `index` in the tree of size `size`.
    ///
    /// # Errors
    /// [`Error::Protocol`] for indexes outside the log.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<String>> {
        let inner = self.lock()?;
        if index >= size || size > inner.tree.size() {
            return Err(Error::Protocol("need index < size <= log size".into()));
        }
        Ok(hexes(&inner.tree.inclusion_proof(index, size)?))
    }

    /// Consistency proof between tree sizes `old` and `new`.
    ///
    /// # Errors
    /// [`Error::Protocol`] for sizes outside the log.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<String>> {
        let inner = self.lock()?;
        if old > new || new > inner.tree.size() {
            return Err(Error::Protocol("need old <= new <= log size".into()));
        }
        Ok(hexes(&inner.tree.consistency_proof(old, new)?))
    }

    /// Restricted details `start .. end` and the mailbox commitment key (auditor role only).
    ///
    /// # Errors
    /// [`Error::Protocol`] for a bad range; [`Error::Io`].
    pub fn details(&self, start: u64, end: u64) -> Result<(Vec<DetailEntry>, Zeroizing<[u8; 32]>)> {
        let size = self.lock()?.tree.size();
        check_range(start, end, size)?;
        let (lines, _) = read_lines(&self.dir.join("details.jsonl"))?;
        let details = lines
            .get(to_usize(start)?..to_usize(end)?)
            .ok_or_else(|| Error::Protocol("details file shorter than the log".into()))?
            .iter()
            .map(|l| {
                serde_json::from_slice(l).map_err(|e| Error::Protocol(format!("details: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((details, self.commitment_key.clone()))
    }

    /// The transparency report for `period`, computed over the log at its current checkpoint.
    ///
    /// Appends are never held up by it: the records are snapshotted under the append lock
    /// (in time independent of the log's size) and counted after it is released. The
    /// period's tally is kept, so the next report of the period counts only the entries
    /// appended since; reports are computed one at a time.
    ///
    /// # Errors
    /// [`Error::Protocol`] if a stored entry does not parse.
    pub fn report(&self, period: Period) -> Result<Report> {
        /// Periods whose tallies are kept.
        const KEPT: usize = 8;
        let mut tallies = self
            .tallies
            .lock()
            .map_err(|_| Error::LogUnavailable("report lock poisoned".into()))?;
        let (snapshot, checkpoint) = {
            let inner = self.lock()?;
            (inner.records.snapshot(), inner.checkpoint.clone())
        };
        let mut tally = match tallies.iter().position(|t| t.period() == period) {
            Some(i) => tallies.remove(i),
            None => Tally::new(period),
        };
        for record in snapshot.iter_from(tally.counted()) {
            tally.add(&PublicEntry::from_record(record)?);
        }
        let report = tally.report(&checkpoint);
        tallies.insert(0, tally);
        tallies.truncate(KEPT);
        Ok(report)
    }

    /// Reads a log directory without opening it for writing: every public entry joined with
    /// its details (for auditors with file access, and tests).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Protocol`].
    pub fn read_joined(dir: &Path) -> Result<Vec<(PublicEntry, DetailEntry)>> {
        let (records, _) = read_lines(&dir.join("entries.jsonl"))?;
        let (details, _) = read_lines(&dir.join("details.jsonl"))?;
        records
            .iter()
            .zip(&details)
            .map(|(r, d)| {
                Ok((
                    PublicEntry::from_record(r)?,
                    serde_json::from_slice(d)
                        .map_err(|e| Error::Protocol(format!("details: {e}")))?,
                ))
            })
            .collect()
    }
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::Protocol("index too large".into()))
}

fn check_range(start: u64, end: u64, size: u64) -> Result<()> {
    if start > end || end > size || end - start > MAX_RANGE {
        return Err(Error::Protocol(format!(
            "need start <= end <= {size} and at most {MAX_RANGE} entries"
        )));
    }
    Ok(())
}

impl DecisionLog for AuditStore {
    fn append(&self, batch: &mut [Decision]) -> Result<AuditReceipt> {
        self.append_batch(batch)
    }
}
