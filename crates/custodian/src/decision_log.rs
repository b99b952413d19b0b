//! The decision log: every allow and deny, appended and fsync'd before any share leaves.
//!
//! This is the durable interface the service writes through ([`DecisionLog`]). The file
//! implementation writes one JSON object per line and `fdatasync`s once per batch (group
//! commit). If a batch cannot be made durable, the caller releases nothing.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The operation went ahead (a share was released, a stanza rewrapped, a key changed).
    Allow,
    /// Refused.
    Deny,
}

/// One decision, with everything an auditor needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Sequence number in the log (assigned on append).
    #[serde(default)]
    pub seq: u64,
    /// Unix time, seconds.
    pub time: u64,
    /// `unwrap`, `rewrap`, `rotate`, `retire`, `destroy`, `revoke`.
    pub operation: String,
    /// Caller's region (from its certificate's CA).
    pub caller_region: String,
    /// Caller's certificate identity.
    pub caller_name: String,
    /// Mailbox concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// Object concerned, hex, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Key version concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// Approval used, if any (hex id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Allow or deny.
    pub outcome: Outcome,
    /// Why (`in_region`, `approval`, or the denial's name).
    pub reason: String,
    /// Flags raised, e.g. `bulk`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// Where decisions go. An implementation returns only once the batch is durable.
pub trait DecisionLog: Send + Sync {
    /// Appends a batch; returns the sequence number of its first entry. Must be durable
    /// (fsync'd) before returning `Ok`.
    ///
    /// # Errors
    /// [`Error::LogUnavailable`]: nothing may be released.
    fn append(&self, batch: &mut [Decision]) -> Result<u64>;
}

/// A JSON-lines file, `fdatasync`'d per batch.
pub struct FileDecisionLog {
    path: PathBuf,
    inner: Mutex<(File, u64)>,
}

impl core::fmt::Debug for FileDecisionLog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FileDecisionLog({})", self.path.display())
    }
}

impl FileDecisionLog {
    /// Opens (or creates) the log at `path`, continuing its sequence numbers. A torn last
    /// line (a crash mid-write, before its fsync returned) is cut off: no share was released
    /// for it.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Protocol`] for a damaged line that is not the last.
    pub fn open(path: &Path) -> Result<Self> {
        let mut next = 0;
        let mut good_len = 0u64;
        if path.exists() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            let mut lineno = 0;
            loop {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| Error::io(path, e))?;
                if n == 0 {
                    break;
                }
                lineno += 1;
                let complete = line.ends_with('\n');
                match serde_json::from_str::<Decision>(line.trim_end()) {
                    Ok(d) if complete => {
                        next = d.seq + 1;
                        good_len += n as u64;
                    }
                    _ => {
                        // Only a torn final line is tolerated.
                        let mut rest = String::new();
                        let more = reader
                            .read_line(&mut rest)
                            .map_err(|e| Error::io(path, e))?;
                        if more != 0 {
                            return Err(Error::Protocol(format!(
                                "{}: line {lineno} is damaged",
                                path.display()
                            )));
                        }
                        break;
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(good_len).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            inner: Mutex::new((file, next)),
        })
    }

    /// Reads every entry (for auditors and tests).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Protocol`].
    pub fn read_all(path: &Path) -> Result<Vec<Decision>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        BufReader::new(file)
            .lines()
            .map(|l| {
                let l = l.map_err(|e| Error::io(path, e))?;
                serde_json::from_str(&l).map_err(|e| Error::Protocol(format!("decision log: {e}")))
            })
            .collect()
    }
}

impl DecisionLog for FileDecisionLog {
    fn append(&self, batch: &mut [Decision]) -> Result<u64> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| Error::LogUnavailable("log lock poisoned".into()))?;
        let (file, next) = &mut *guard;
        let first = *next;
        let mut buf = Vec::with_capacity(batch.len() * 256);
        for (i, d) in batch.iter_mut().enumerate() {
            d.seq = first + i as u64;
            serde_json::to_writer(&mut buf, d).map_err(|e| Error::LogUnavailable(e.to_string()))?;
            buf.push(b'\n');
        }
        let durable = file.write_all(&buf).and_then(|()| file.sync_data());
        if let Err(e) = durable {
            // Cut back whatever part of the batch reached the file: it was never durable
            // and nothing was released for it.
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.set_len(len.saturating_sub(buf.len() as u64));
            return Err(Error::LogUnavailable(format!(
                "{}: {e}",
                self.path.display()
            )));
        }
        *next += batch.len() as u64;
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(reason: &str) -> Decision {
        Decision {
            seq: 0,
            time: 1,
            operation: "unwrap".into(),
            caller_region: "ie".into(),
            caller_name: "gw".into(),
            mailbox: Some("m".into()),
            object_id: None,
            key_version: Some(1),
            approval_id: None,
            outcome: Outcome::Allow,
            reason: reason.into(),
            flags: vec![],
        }
    }

    #[test]
    fn sequence_continues_across_reopen_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        let log = FileDecisionLog::open(&path).unwrap();
        assert_eq!(log.append(&mut [decision("a"), decision("b")]).unwrap(), 0);
        drop(log);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\":2,\"ti")
            .unwrap();
        let log = FileDecisionLog::open(&path).unwrap();
        assert_eq!(log.append(&mut [decision("c")]).unwrap(), 2);
        let all = FileDecisionLog::read_all(&path).unwrap();
        assert_eq!(
            all.iter().map(|d| d.reason.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn damaged_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        std::fs::write(&path, "garbage\n{\"x\":1}\n").unwrap();
        assert!(matches!(
            FileDecisionLog::open(&path),
            Err(Error::Protocol(_))
        ));
    }
}
