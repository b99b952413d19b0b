//! The checkpoint file: how far a job got, so that a run stopped by a crash, SIGKILL or
//! Ctrl-C resumes there. JSON, rewritten atomically (write a sibling, fsync, rename), so a
//! crash leaves either the previous checkpoint or the new one, never half of one.
//!
//! It records the last key of the walk whose batch (and every batch before it) finished,
//! the keys that failed (retried first on resume), and the counts so far. Batches finished
//! after that key but not yet recorded are redone on resume, which every job makes safe.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Kind;
use crate::error::{Error, Result};

/// The format this build writes and reads.
const FORMAT: u32 = 1;

/// Largest checkpoint file read (failed keys are capped, so real ones stay far below).
const MAX_BYTES: u64 = 64 << 20;

/// Failed keys kept for retrying.
pub const MAX_RETRY: usize = 100_000;

/// A job's recorded progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// File format version.
    pub format: u32,
    /// The command (`migrate`, `rewrap`, ...).
    pub command: String,
    /// The bucket.
    pub bucket: String,
    /// The prefix walked (empty: all).
    pub prefix: String,
    /// The job's parameters that must not change on resume (e.g. the target key version).
    pub params: String,
    /// Names this run's temporary objects.
    pub run_id: String,
    /// Every key up to and including this one is done (absent: nothing yet).
    pub after: Option<String>,
    /// Keys that failed, retried first on resume.
    pub retry: Vec<String>,
    /// Objects per outcome so far.
    pub counts: BTreeMap<Kind, u64>,
    /// Bytes moved so far.
    pub bytes: u64,
    /// Objects per key version so far.
    pub key_versions: BTreeMap<String, u64>,
    /// The walk reached the end of the bucket.
    pub finished: bool,
}

impl Checkpoint {
    /// A fresh checkpoint.
    #[must_use]
    pub fn new(command: &str, bucket: &str, prefix: &str, params: &str) -> Self {
        let mut id = [0u8; 8];
        // The run id only names temporary objects; the clock will do if randomness fails.
        let run_id = match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        {
            Ok(()) => hex::encode(id),
            Err(_) => format!(
                "{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
        };
        Self {
            format: FORMAT,
            command: command.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            params: params.to_owned(),
            run_id,
            after: None,
            retry: Vec::new(),
            counts: BTreeMap::new(),
            bytes: 0,
            key_versions: BTreeMap::new(),
            finished: false,
        }
    }

    /// Loads `path` if it exists and belongs to this job; `None` if there is no file.
    ///
    /// # Errors
    /// [`Error::File`] for an unreadable file; [`Error::Config`] (field `checkpoint`) for one
    /// that is malformed or records another job (a different command, bucket, prefix or
    /// parameters): resuming it would skip objects, so it is refused.
    pub fn load(
        path: &Path,
        command: &str,
        bucket: &str,
        prefix: &str,
        params: &str,
    ) -> Result<Option<Self>> {
        let file_err = |source| Error::File {
            path: path.display().to_string(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_err(e)),
        };
        if meta.len() > MAX_BYTES {
            return Err(Error::config(
                "checkpoint",
                format!("{} is larger than {MAX_BYTES} bytes", path.display()),
            ));
        }
        let text = std::fs::read(path).map_err(file_err)?;
        let ck = Self::parse(&text)
            .map_err(|e| Error::config("checkpoint", format!("{}: {e}", path.display())))?;
        let mine = (command, bucket, prefix, params);
        let theirs = (
            ck.command.as_str(),
            ck.bucket.as_str(),
            ck.prefix.as_str(),
            ck.params.as_str(),
        );
        if mine != theirs {
            return Err(Error::config(
                "checkpoint",
                format!(
                    "{} records `{}` of bucket {:?} prefix {:?} ({}); this is `{command}` of \
                     bucket {bucket:?} prefix {prefix:?} ({params}): use another checkpoint \
                     file, or remove it to start over",
                    path.display(),
                    ck.command,
                    ck.bucket,
                    ck.prefix,
                    ck.params
                ),
            ));
        }
        Ok(Some(ck))
    }

    /// Parses a checkpoint file's bytes (at most [`MAX_BYTES`]).
    ///
    /// # Errors
    /// A description of what is wrong: too large, malformed JSON, another format version,
    /// more failed keys than [`MAX_RETRY`].
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() as u64 > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let ck: Self = serde_json::from_slice(bytes).map_err(|e| format!("malformed: {e}"))?;
        if ck.format != FORMAT {
            return Err(format!("format {}, not {FORMAT}", ck.format));
        }
        if ck.retry.len() > MAX_RETRY {
            return Err(format!("more than {MAX_RETRY} failed keys"));
        }
        Ok(ck)
    }

    /// Writes the checkpoint to `path` atomically.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp: PathBuf = {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".tmp");
            path.with_file_name(name)
        };
        let file_err = |p: &Path, source| Error::File {
            path: p.display().to_string(),
            source,
        };
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::config("checkpoint", e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| file_err(&tmp, e))?;
        f.write_all(&json).map_err(|e| file_err(&tmp, e))?;
        f.sync_all().map_err(|e| file_err(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_another_job() {
        let dir = std::env::temp_dir().join(format!("ck-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ck.json");
        assert!(
            Checkpoint::load(&path, "migrate", "b", "", "")
                .unwrap()
                .is_none()
        );
        let mut ck = Checkpoint::new("migrate", "b", "", "");
        ck.after = Some("k/1".into());
        ck.retry.push("k/0".into());
        ck.counts.insert(Kind::Migrated, 3);
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path, "migrate", "b", "", "")
            .unwrap()
            .unwrap();
        assert_eq!(back, ck);
        let other = Checkpoint::load(&path, "migrate", "b", "p/", "");
        assert!(matches!(other, Err(Error::Config { .. })));
        let other = Checkpoint::load(&path, "rewrap", "b", "", "");
        assert!(matches!(other, Err(Error::Config { .. })));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            Checkpoint::load(&path, "migrate", "b", "", ""),
            Err(Error::Config { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
