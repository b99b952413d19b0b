//! The approval ledger: the durable record of the uses charged against lawful-access
//! approvals and of revoked approvals, so that neither is forgotten across restarts.
//!
//! ## File format
//!
//! An append-only file of JSON lines (UTF-8, each ending in `\n`), one record per line:
//!
//! ```text
//! {"op":"charge","approval_id":"<32 lowercase hex>","mailboxes":["alice@example.ie","bob@example.ie"]}
//! {"op":"revoke","approval_id":"<32 lowercase hex>"}
//! ```
//!
//! A `charge` line adds one use for each mailbox listed (a mailbox listed twice is charged
//! twice); a `revoke` line revokes the approval for good. Unknown fields and unknown `op`s are
//! refused. Every record is written with one `write` and made durable (`fdatasync`) before the
//! call that wrote it returns, so a use is on disk before the share it pays for is released.
//!
//! On open the file is replayed. Bytes after the last `\n` are a record torn by a crash in the
//! middle of a write (never acknowledged): they are ignored and truncated away. Any other line
//! that does not parse is damage and fails the open ([`Error::Protocol`] naming the line).
//!
//! The open ledger holds an exclusive lock on the file (`flock`), so two custodian processes
//! cannot charge the same approval independently.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::Denial;
use crate::approval::ApprovalId;
use crate::{Error, Result};

/// A record as read back.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    Charge {
        approval_id: String,
        mailboxes: Vec<String>,
    },
    Revoke {
        approval_id: String,
    },
}

/// A record as written (borrowing).
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RecordRef<'a> {
    Charge {
        approval_id: String,
        mailboxes: &'a [String],
    },
    Revoke {
        approval_id: String,
    },
}

/// Uses charged and revocations, replayed from and appended to one file.
#[derive(Debug)]
pub struct ApprovalLedger {
    path: PathBuf,
    file: File,
    /// Length of the file's valid records: where the next record starts.
    len: u64,
    /// Set when a failed write could not be undone: no further writes until reopened.
    broken: bool,
    uses: HashMap<ApprovalId, HashMap<String, u32>>,
    revoked: HashSet<ApprovalId>,
}

impl ApprovalLedger {
    /// Opens (creating if needed) and replays the ledger at `path`, and locks it.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened, read, truncated or locked (another process
    /// holds it); [`Error::Protocol`] if a line other than a torn last one is damaged.
    pub fn open(path: &Path) -> Result<Self> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::io(
                    path,
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the approval ledger is in use by another process",
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        if !existed {
            sync_parent(path)?;
        }

        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| Error::io(path, e))?;
        let mut ledger = Self {
            path: path.to_owned(),
            file,
            len: 0,
            broken: false,
            uses: HashMap::new(),
            revoked: HashSet::new(),
        };

        let mut start = 0;
        let mut line_no = 0;
        while let Some(end) = data[start..].iter().position(|&b| b == b'\n') {
            line_no += 1;
            let line = &data[start..start + end];
            ledger.replay(line).map_err(|reason| {
                Error::Protocol(format!(
                    "approval ledger {}: line {line_no}: {reason}",
                    path.display()
                ))
            })?;
            start += end + 1;
        }
        ledger.len = u64::try_from(start).map_err(|_| {
            Error::Protocol(format!("approval ledger {}: too large", path.display()))
        })?;
        if start < data.len() {
            // A record torn by a crash mid-write: it was never acknowledged, drop it.
            ledger
                .file
                .set_len(ledger.len)
                .and_then(|()| ledger.file.sync_all())
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(ledger)
    }

    fn replay(&mut self, line: &[u8]) -> Result<(), String> {
        let record: Record = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let parse = |s: &str| {
            s.parse::<ApprovalId>()
                .map_err(|_| format!("bad approval_id {s:?}"))
        };
        match record {
            Record::Charge {
                approval_id,
                mailboxes,
            } => {
                let id = parse(&approval_id)?;
                self.apply_charge(id, &mailboxes);
            }
            Record::Revoke { approval_id } => {
                self.revoked.insert(parse(&approval_id)?);
            }
        }
        Ok(())
    }

    fn apply_charge(&mut self, id: ApprovalId, mailboxes: &[String]) {
        let uses = self.uses.entry(id).or_default();
        for m in mailboxes {
            let n = uses.entry(m.clone()).or_insert(0);
            *n = n.saturating_add(1);
        }
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether approval `id` has been revoked.
    #[must_use]
    pub fn is_revoked(&self, id: &ApprovalId) -> bool {
        self.revoked.contains(id)
    }

    /// The uses charged so far against approval `id` for `mailbox`.
    #[must_use]
    pub fn uses(&self, id: &ApprovalId, mailbox: &str) -> u32 {
        self.uses
            .get(id)
            .and_then(|m| m.get(mailbox))
            .copied()
            .unwrap_or(0)
    }

    /// Charges one use of approval `id` for each of `mailboxes` (a mailbox listed twice is
    /// charged twice), all or nothing, durably.
    ///
    /// Returns `Ok(Err(`[`Denial::ApprovalRevoked`]`))` if the approval is revoked, and
    /// `Ok(Err(`[`Denial::ApprovalUsedUp`]`))` if any mailbox would go over `max_uses`; in both
    /// cases nothing is charged. Otherwise one record is appended and fsync'd, and only then
    /// counted in memory. Charging no mailboxes writes nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the record could not be written and synced; nothing is charged in
    /// memory then (the record may still have reached the disk, in which case it counts after
    /// a restart: the ledger errs towards counting a use, never towards forgetting one).
    pub fn charge(
        &mut self,
        id: &ApprovalId,
        mailboxes: &[String],
        max_uses: u32,
    ) -> Result<Result<(), Denial>> {
        if self.is_revoked(id) {
            return Ok(Err(Denial::ApprovalRevoked));
        }
        if mailboxes.is_empty() {
            return Ok(Ok(()));
        }
        let mut wanted: HashMap<&str, u32> = HashMap::new();
        for m in mailboxes {
            let n = wanted.entry(m.as_str()).or_insert(0);
            *n = n.saturating_add(1);
        }
        for (m, n) in wanted {
            if self
                .uses(id, m)
                .checked_add(n)
                .is_none_or(|total| total > max_uses)
            {
                return Ok(Err(Denial::ApprovalUsedUp));
            }
        }
        self.append(&RecordRef::Charge {
            approval_id: id.to_string(),
            mailboxes,
        })?;
        self.apply_charge(*id, mailboxes);
        Ok(Ok(()))
    }

    /// Revokes approval `id` durably. Revoking an already revoked approval writes nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the record could not be written and synced (the approval is then not
    /// revoked in memory; retry).
    pub fn revoke(&mut self, id: &ApprovalId) -> Result<()> {
        if self.is_revoked(id) {
            return Ok(());
        }
        self.append(&RecordRef::Revoke {
            approval_id: id.to_string(),
        })?;
        self.revoked.insert(*id);
        Ok(())
    }

    /// Appends one record and syncs it. On failure, cuts the file back to its last good
    /// length so that no partial line is left in the middle; if even that fails, refuses all
    /// further writes (the ledger must be reopened, which tolerates a torn last line).
    fn append(&mut self, record: &RecordRef<'_>) -> Result<()> {
        if self.broken {
            return Err(Error::io(
                &self.path,
                io::Error::other("an earlier write to the approval ledger failed; reopen it"),
            ));
        }
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::Protocol(format!("approval ledger record: {e}")))?;
        line.push(b'\n');
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += u64::try_from(line.len()).unwrap_or(u64::MAX);
                Ok(())
            }
            Err(e) => {
                let undone = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_data());
                if undone.is_err() {
                    self.broken = true;
                }
                Err(Error::io(&self.path, e))
            }
        }
    }
}

/// Makes a newly created file's directory entry durable.
fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(parent, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> ApprovalId {
        ApprovalId([b; 16])
    }

    fn mbs(names: &[&str]) -> Vec<String> {
        names.iter().map(|&s| s.to_owned()).collect()
    }

    #[test]
    fn charges_up_to_max_then_used_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = ApprovalLedger::open(&dir.path().join("ledger")).unwrap();
        let a = mbs(&["alice"]);
        for _ in 0..3 {
            assert_eq!(l.charge(&id(1), &a, 3).unwrap(), Ok(()));
        }
        assert_eq!(l.uses(&id(1), "alice"), 3);
        assert_eq!(
            l.charge(&id(1), &a, 3).unwrap(),
            Err(Denial::ApprovalUsedUp)
        );
        assert_eq!(l.uses(&id(1), "alice"), 3);
        // Another approval and another mailbox are counted separately.
        assert_eq!(l.charge(&id(2), &a, 3).unwrap(), Ok(()));
        assert_eq!(l.charge(&id(1), &mbs(&["bob"]), 3).unwrap(), Ok(()));
        assert_eq!(l.uses(&id(2), "alice"), 1);
        assert_eq!(l.uses(&id(1), "bob"), 1);
        assert_eq!(l.uses(&id(3), "alice"), 0);
        // Zero allowed uses: always used up; no mailboxes: nothing to charge.
        assert_eq!(
            l.charge(&id(4), &a, 0).unwrap(),
            Err(Denial::ApprovalUsedUp)
        );
        assert_eq!(l.charge(&id(4), &[], 0).unwrap(), Ok(()));
    }

    #[test]
    fn charges_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        {
            let mut l = ApprovalLedger::open(&path).unwrap();
            assert_eq!(
                l.charge(&id(1), &mbs(&["alice", "bob"]), 2).unwrap(),
                Ok(())
            );
            assert_eq!(l.charge(&id(1), &mbs(&["alice"]), 2).unwrap(), Ok(()));
        }
        let mut l = ApprovalLedger::open(&path).unwrap();
        assert_eq!(l.uses(&id(1), "alice"), 2);
        assert_eq!(l.uses(&id(1), "bob"), 1);
        assert_eq!(
            l.charge(&id(1), &mbs(&["alice"]), 2).unwrap(),
            Err(Denial::ApprovalUsedUp)
        );
        assert_eq!(l.charge(&id(1), &mbs(&["bob"]), 2).unwrap(), Ok(()));
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                r#"{{"op":"charge","approval_id":"{}","mailboxes":["alice","bob"]}}"#,
                id(1)
            )
        );
    }

    #[test]
    fn revocation_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        {
            let mut l = ApprovalLedger::open(&path).unwrap();
            assert_eq!(l.charge(&id(1), &mbs(&["alice"]), 5).unwrap(), Ok(()));
            l.revoke(&id(1)).unwrap();
            l.revoke(&id(1)).unwrap(); // idempotent: writes nothing
            assert!(l.is_revoked(&id(1)));
            assert!(!l.is_revoked(&id(2)));
            assert_eq!(
                l.charge(&id(1), &mbs(&["alice"]), 5).unwrap(),
                Err(Denial::ApprovalRevoked)
            );
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        let mut l = ApprovalLedger::open(&path).unwrap();
        assert!(l.is_revoked(&id(1)));
        assert_eq!(l.uses(&id(1), "alice"), 1);
        assert_eq!(
            l.charge(&id(1), &mbs(&["bob"]), 5).unwrap(),
            Err(Denial::ApprovalRevoked)
        );
        // An approval may be revoked before it was ever used.
        l.revoke(&id(9)).unwrap();
        drop(l);
        assert!(ApprovalLedger::open(&path).unwrap().is_revoked(&id(9)));
    }

    #[test]
    fn all_or_nothing_across_mailboxes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut l = ApprovalLedger::open(&path).unwrap();
        assert_eq!(l.charge(&id(1), &mbs(&["bob"]), 2).unwrap(), Ok(()));
        assert_eq!(l.charge(&id(1), &mbs(&["bob"]), 2).unwrap(), Ok(()));
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(
            l.charge(&id(1), &mbs(&["alice", "bob", "carol"]), 2)
                .unwrap(),
            Err(Denial::ApprovalUsedUp)
        );
        assert_eq!(l.uses(&id(1), "alice"), 0);
        assert_eq!(l.uses(&id(1), "carol"), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        // A mailbox listed twice costs two uses.
        assert_eq!(
            l.charge(&id(2), &mbs(&["alice", "alice", "alice"]), 2)
                .unwrap(),
            Err(Denial::ApprovalUsedUp)
        );
        assert_eq!(
            l.charge(&id(2), &mbs(&["alice", "alice"]), 2).unwrap(),
            Ok(())
        );
        assert_eq!(l.uses(&id(2), "alice"), 2);
        drop(l);
        assert_eq!(
            ApprovalLedger::open(&path).unwrap().uses(&id(2), "alice"),
            2
        );
    }

    #[test]
    fn torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        {
            let mut l = ApprovalLedger::open(&path).unwrap();
            assert_eq!(l.charge(&id(1), &mbs(&["alice"]), 3).unwrap(), Ok(()));
        }
        let good = std::fs::metadata(&path).unwrap().len();
        // A crash mid-write: a partial record without its newline (even a complete-looking one).
        for torn in [
            format!(r#"{{"op":"charge","approval_id":"{}","mail"#, id(1)),
            format!(r#"{{"op":"revoke","approval_id":"{}"}}"#, id(1)),
            "\0\0\0\0".to_owned(),
        ] {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(torn.as_bytes()).unwrap();
            drop(f);
            let l = ApprovalLedger::open(&path).unwrap();
            assert_eq!(l.uses(&id(1), "alice"), 1);
            assert!(!l.is_revoked(&id(1)));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        }
        // Appending after the truncation leaves a clean file.
        let mut l = ApprovalLedger::open(&path).unwrap();
        assert_eq!(l.charge(&id(1), &mbs(&["alice"]), 3).unwrap(), Ok(()));
        drop(l);
        assert_eq!(
            ApprovalLedger::open(&path).unwrap().uses(&id(1), "alice"),
            2
        );
    }

    #[test]
    fn damaged_lines_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let good = format!(r#"{{"op":"revoke","approval_id":"{}"}}"#, id(1));
        for bad in [
            "{\"op\":\"charge\",\"approval_id\":\"xx\",\"mailboxes\":[]}".to_owned(),
            format!(r#"{{"op":"revoke","approval_id":"{}","extra":1}}"#, id(2)),
            format!(r#"{{"op":"forget","approval_id":"{}"}}"#, id(2)),
            "not json".to_owned(),
            String::new(),
        ] {
            std::fs::write(&path, format!("{good}\n{bad}\n{good}\n")).unwrap();
            let err = ApprovalLedger::open(&path).unwrap_err();
            assert!(
                matches!(&err, Error::Protocol(m) if m.contains("line 2")),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn unusable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory is not a ledger file.
        assert!(matches!(
            ApprovalLedger::open(dir.path()),
            Err(Error::Io { .. })
        ));
        // Nor is a path below a regular file.
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            ApprovalLedger::open(&file.join("ledger")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn failed_write_charges_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut l = ApprovalLedger::open(&path).unwrap();
        assert_eq!(l.charge(&id(1), &mbs(&["alice"]), 3).unwrap(), Ok(()));
        // Swap in a read-only handle: every write now fails with a real I/O error (as root,
        // permissions would not stop us), and so does the undo.
        l.file = File::open(&path).unwrap();
        assert!(matches!(
            l.charge(&id(1), &mbs(&["alice", "bob"]), 3),
            Err(Error::Io { .. })
        ));
        assert_eq!(l.uses(&id(1), "alice"), 1);
        assert_eq!(l.uses(&id(1), "bob"), 0);
        assert!(l.revoke(&id(1)).is_err());
        assert!(!l.is_revoked(&id(1)));
        // Broken now: even a later write through a good handle is refused until reopened.
        l.file = OpenOptions::new().append(true).open(&path).unwrap();
        assert!(l.charge(&id(1), &mbs(&["alice"]), 3).is_err());
        drop(l);
        let mut l = ApprovalLedger::open(&path).unwrap();
        assert_eq!(l.uses(&id(1), "alice"), 1);
        assert_eq!(l.uses(&id(1), "bob"), 0);
        assert_eq!(l.charge(&id(1), &mbs(&["alice"]), 3).unwrap(), Ok(()));
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let l = ApprovalLedger::open(&path).unwrap();
        let err = ApprovalLedger::open(&path).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::WouldBlock),
            "{err}"
        );
        drop(l);
        assert!(ApprovalLedger::open(&path).is_ok());
    }
}
