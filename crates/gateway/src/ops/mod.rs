//! Bulk operations over a whole bucket, for operators: `migrate` existing plaintext into
//! sealed objects in place, `rewrap` stanzas after a custodian's key rotation, `verify` what
//! a bucket holds, `reseal` mail sealed to the wrong region to its mailbox's home region, and
//! find what a key `shred` would make unreadable. The CLI drives them;
//! the gateway (or any tool holding an [`Objects`]) can run them too.
//!
//! Every job walks the bucket in key order with bounded concurrency (`jobs`), reports each
//! object to a [`Progress`], and records how far it got in a [`checkpoint`] file, so that a
//! run stopped by a crash, SIGKILL or Ctrl-C resumes where it stopped: nothing is skipped,
//! and work redone after a crash is redone safely (an object already sealed or already
//! rewrapped is recognised and left alone). Only S3 stores are supported: the jobs need
//! listings and conditional writes (`If-Match`).

pub mod checkpoint;
pub mod clean;
pub mod migrate;
mod replace;
pub mod reseal;
pub mod rewrap;
mod runner;
pub mod shred;
pub mod verify;
mod walk;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::store::Store;
use crate::store::s3::S3Store;

pub use walk::Listed;

/// What a job did with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Migrate: sealed in place (the plaintext original is gone).
    Migrated,
    /// Migrate `--dry-run`: plaintext that a run would seal.
    WouldMigrate,
    /// Already sealed: left alone (migrate; verify counts these as `sealed`).
    AlreadySealed,
    /// Deleted while the job ran: not brought back.
    Gone,
    /// Rewrap: stanzas rewritten to the active key version.
    Rewrapped,
    /// Rewrap `--dry-run`: would be rewrapped.
    WouldRewrap,
    /// Rewrap: already on the active key versions. Reseal: already sealed to its
    /// mailbox's home region.
    Current,
    /// Reseal: opened in the region it was wrongly sealed to and sealed again to its
    /// mailbox's home region, in place.
    Resealed,
    /// Reseal `--dry-run`: would be resealed.
    WouldReseal,
    /// Verify: no Custodia header (plaintext).
    Plaintext,
    /// Verify: sealed, header parses (and, `--deep`, the body opens).
    Sealed,
    /// Verify: has a Custodia header that does not parse, or (deep) a body that fails
    /// verification.
    Damaged,
    /// Verify `--deep` / shred check: sealed, but the custodians refused or could not open it.
    Unreadable,
    /// Verify `--residency`: sealed to another region than its mailbox's residency says (or
    /// to another mailbox than its key names): the region it is sealed to can open it, the
    /// mailbox's home region cannot. Reseal: such an object this run could not move (see
    /// the detail).
    WrongRegion,
    /// Verify: a multipart object whose layout record predates part binding (layout
    /// version 1): it opens only where its route sets `legacy_layouts`; re-seal it.
    LegacyLayout,
    /// Shred: sealed to the key version being destroyed.
    Affected,
    /// Shred: not sealed to that key version.
    Unaffected,
    /// Not handled by this job (e.g. a multipart-layout object for rewrap, plaintext for
    /// rewrap): see the detail.
    Skipped,
    /// Failed: see the detail. A resumed run tries it again.
    Failed,
}

impl Kind {
    /// Whether the object needs attention (the job exits non-zero).
    #[must_use]
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Damaged)
    }
}

/// The result for one object.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What happened.
    pub kind: Kind,
    /// Plaintext (or stored) bytes the job moved for it.
    pub bytes: u64,
    /// Why, for failures and skips.
    pub detail: Option<String>,
    /// The key versions its stanzas are sealed to (`region/custodian v3`), when read.
    pub versions: Vec<String>,
    /// The failure is not this object's but the job's (store or custodian unreachable):
    /// the job stops, checkpointed, to be resumed.
    pub fatal: bool,
}

impl Outcome {
    pub(crate) fn of(kind: Kind, bytes: u64) -> Self {
        Self {
            kind,
            bytes,
            detail: None,
            versions: Vec::new(),
            fatal: false,
        }
    }

    pub(crate) fn because(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..Self::of(kind, 0)
        }
    }

    /// A failure from `e`: fatal for errors no other object would escape (the store or a
    /// custodian unreachable).
    pub(crate) fn failed(e: &Error) -> Self {
        let fatal = matches!(
            e,
            Error::UpstreamUnavailable(_) | Error::CustodianUnavailable(_)
        );
        Self {
            fatal,
            ..Self::because(Kind::Failed, e.to_string())
        }
    }
}

/// Receives a job's events (a progress bar, log lines).
pub trait Progress: Send + Sync {
    /// More objects were listed: `objects` and `bytes` (stored sizes) found so far.
    fn listed(&self, objects: u64, bytes: u64) {
        let _ = (objects, bytes);
    }
    /// One object is done.
    fn done(&self, key: &str, outcome: &Outcome) {
        let _ = (key, outcome);
    }
    /// A line for the operator.
    fn note(&self, line: &str) {
        let _ = line;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {}

/// What to run over.
#[derive(Clone)]
pub struct Scope {
    /// The object layer (store, SDK client, routes).
    pub objects: Arc<Objects>,
    /// The bucket.
    pub bucket: String,
    /// Only keys under this prefix.
    pub prefix: Option<String>,
}

impl Scope {
    /// The S3 store under the object layer.
    ///
    /// # Errors
    /// [`Error::NotImplemented`] for a WebDAV store (no listing, no conditional writes).
    pub fn s3(&self) -> Result<&S3Store> {
        match self.objects.store() {
            Store::S3(s) => Ok(s),
            Store::Webdav(_) => Err(Error::NotImplemented(
                "bulk operations need an S3 upstream store (listings and If-Match writes)".into(),
            )),
        }
    }
}

/// How to run a job.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects (or batches) in flight at once.
    pub jobs: usize,
    /// Objects per custodian call (rewrap); 1 elsewhere.
    pub batch: usize,
    /// Where to record progress, to resume from.
    pub checkpoint: Option<PathBuf>,
    /// Report only; change nothing (no checkpoint is written).
    pub dry_run: bool,
    /// Set to `true` to stop (Ctrl-C): in-flight objects finish or are abandoned safely,
    /// the checkpoint is saved, the summary says `interrupted`.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            jobs: 8,
            batch: 1,
            checkpoint: None,
            dry_run: false,
            stop: None,
        }
    }
}

/// One object that failed, is damaged or (verify `--deep`, shred) does not open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureNote {
    /// The key.
    pub key: String,
    /// `failed`, `damaged`, `unreadable` or `wrong_region`.
    pub kind: Kind,
    /// Why.
    pub error: String,
}

/// The end of a job, for people (`Display`-free: the CLI renders it) and machines (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `migrate`, `rewrap`, `verify`, `reseal`, `shred`.
    pub command: String,
    /// The bucket.
    pub bucket: String,
    /// The prefix (empty: the whole bucket).
    pub prefix: String,
    /// Objects handled, over every resumed run of this checkpoint.
    pub objects: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Objects per outcome.
    pub counts: BTreeMap<Kind, u64>,
    /// Objects per stanza key version (`region/custodian v1`), where headers were read.
    pub key_versions: BTreeMap<String, u64>,
    /// Failed, damaged and unreadable objects of this run (the first 1000); failed ones
    /// are retried by a resumed run.
    pub failures: Vec<FailureNote>,
    /// Whether the walk reached the end of the bucket.
    pub complete: bool,
    /// Why it stopped early (`interrupted`, or the error that stopped it).
    pub stopped: Option<String>,
    /// The checkpoint resumed from, if any.
    pub resumed: bool,
    /// Seconds this run took.
    pub elapsed_secs: f64,
    /// Objects handled per second in this run.
    pub objects_per_sec: f64,
    /// What the operator should know or do next.
    pub notes: Vec<String>,
}

impl Summary {
    /// How many objects have outcome `kind`.
    #[must_use]
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Whether the job finished with nothing failed or damaged.
    #[must_use]
    pub fn success(&self) -> bool {
        self.complete && self.counts.iter().all(|(k, n)| *n == 0 || !k.is_failure())
    }
}
