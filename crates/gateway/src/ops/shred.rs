//! `shred`: crypto-shredding a custodian key version. Before: find every object sealed to
//! it (those become unreadable: an object needs every one of its stanzas). After the
//! custodian destroyed the version (admin role, M-of-N approval; the CLI makes that call):
//! show that those objects no longer open. Both steps only read the store.

use std::collections::BTreeMap;
use std::sync::Mutex;

use custodia_envelope::{CustodianName, RecipientId, Region};
use futures_util::StreamExt;
use serde::Serialize;

use super::runner::{PerObject, Runner};
use super::verify::{Inspected, inspect, versions};
use super::{Kind, Options, Outcome, Progress, Scope, Summary};
use crate::error::{Error, Result};

/// Affected keys kept for the check after the destruction (the count is always exact).
pub const MAX_AFFECTED_KEPT: usize = 100_000;

/// The key version to destroy.
#[derive(Debug, Clone)]
pub struct ShredTarget {
    /// The custodian's region.
    pub region: Region,
    /// The custodian.
    pub custodian: CustodianName,
    /// The key version.
    pub key_version: u32,
}

impl ShredTarget {
    fn matches(&self, r: &RecipientId) -> bool {
        r.region == self.region
            && r.custodian == self.custodian
            && r.key_version.0 == self.key_version
    }
}

/// What a scan found.
#[derive(Debug, Serialize)]
pub struct Scan {
    /// Counts (`affected`, `unaffected`, `plaintext`, ...).
    pub summary: Summary,
    /// The affected keys (the first [`MAX_AFFECTED_KEPT`], sorted).
    pub affected: Vec<String>,
}

/// Lists the objects of `scope` sealed to `target` (read-only: no checkpoint is written).
///
/// # Errors
/// As [`super::migrate::migrate`].
pub async fn scan(
    scope: &Scope,
    opts: &Options,
    target: &ShredTarget,
    progress: &dyn Progress,
) -> Result<Scan> {
    let opts = Options {
        checkpoint: None,
        dry_run: true,
        ..opts.clone()
    };
    let params = format!(
        "{}/{} v{}",
        target.region.as_str(),
        target.custodian.as_str(),
        target.key_version
    );
    let runner = Runner::start(scope, &opts, progress, "shred", &params)?;
    let work = ScanWork {
        scope,
        target,
        affected: Mutex::new(Vec::new()),
    };
    let summary = runner.drive(&work).await?;
    let mut affected = work.affected.into_inner().unwrap_or_default();
    affected.sort();
    Ok(Scan { summary, affected })
}

struct ScanWork<'a> {
    scope: &'a Scope,
    target: &'a ShredTarget,
    affected: Mutex<Vec<String>>,
}

impl PerObject for ScanWork<'_> {
    async fn one(&self, key: &str) -> Outcome {
        match inspect(self.scope, key).await {
            Ok(Inspected::Gone) => Outcome::of(Kind::Gone, 0),
            Ok(Inspected::Plaintext(n)) => Outcome::of(Kind::Plaintext, n),
            Ok(Inspected::Damaged(why)) => Outcome::because(Kind::Damaged, why),
            Ok(Inspected::Sealed(header, n, _)) => {
                let hit = header
                    .stanzas()
                    .iter()
                    .any(|s| self.target.matches(&s.recipient));
                if hit
                    && let Ok(mut a) = self.affected.lock()
                    && a.len() < MAX_AFFECTED_KEPT
                {
                    a.push(key.to_owned());
                }
                let kind = if hit {
                    Kind::Affected
                } else {
                    Kind::Unaffected
                };
                let mut o = Outcome::of(kind, n);
                o.versions = versions(&header);
                o
            }
            Err(e) => Outcome::failed(&e),
        }
    }
}

/// Whether the listed objects still open, after the destruction.
#[derive(Debug, Default, Serialize)]
pub struct Check {
    /// Objects that no longer open.
    pub unreadable: u64,
    /// Why they do not (error text → count).
    pub reasons: BTreeMap<String, u64>,
    /// Objects that still opened (there should be none).
    pub still_open: Vec<String>,
    /// Objects deleted meanwhile.
    pub gone: u64,
}

/// Tries to open each of `keys` through the object layer (each attempt is an audited read);
/// at most `jobs` at once.
pub async fn check_unreadable(scope: &Scope, keys: &[String], jobs: usize) -> Check {
    let tries = futures_util::stream::iter(keys.iter().map(|k| async move {
        let r = match scope.objects.get(&scope.bucket, k, None).await {
            Ok(got) => got.first_verified().await.map(drop),
            Err(e) => Err(e),
        };
        (k, r)
    }))
    .buffer_unordered(jobs.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut check = Check::default();
    for (k, r) in tries {
        match r {
            Ok(()) => check.still_open.push(k.clone()),
            Err(Error::NotFound) => check.gone += 1,
            Err(e) => {
                check.unreadable += 1;
                *check.reasons.entry(e.to_string()).or_default() += 1;
            }
        }
    }
    check.still_open.sort();
    check
}
