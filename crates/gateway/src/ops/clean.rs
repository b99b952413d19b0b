//! `custodia clean`: what crashes and abandoned uploads leave behind in a bucket — multipart
//! uploads the store still holds, and the gateway's own `.custodia/` records that belong to
//! nothing — once older than an age limit, so that nothing in flight is touched.

use std::time::Duration;

use time::OffsetDateTime;

use super::Scope;
use crate::error::{Error, Result};
use crate::objects::Swept;

/// What a clean found and removed (or, dry, would remove).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CleanSummary {
    /// Multipart uploads older than the limit, aborted in the store (with their records).
    pub uploads_aborted: u64,
    /// Multipart uploads younger than the limit, left alone.
    pub uploads_young: u64,
    /// Layout records of keys that no longer hold their multipart object.
    pub layout_records: u64,
    /// Metadata records of uploads that ended or were abandoned.
    pub upload_records: u64,
    /// Orphaned-looking records kept because they are younger than the limit.
    pub records_young: u64,
    /// Nothing was removed.
    pub dry_run: bool,
    /// What the operator should know (e.g. a store that does not list uploads).
    pub notes: Vec<String>,
}

/// Aborts the multipart uploads of `scope` initiated more than `older_than` ago (where the
/// store lists them), then sweeps the bucket's `.custodia/` records that belong to nothing
/// and are older than that ([`crate::objects::Objects::sweep_records`]). `dry_run`: counts,
/// changes nothing.
///
/// # Errors
/// [`Error::NotImplemented`] for a WebDAV store; store errors.
pub async fn clean(scope: &Scope, older_than: Duration, dry_run: bool) -> Result<CleanSummary> {
    let store = scope.s3()?;
    let cutoff = OffsetDateTime::now_utc() - older_than;
    let mut summary = CleanSummary {
        dry_run,
        ..CleanSummary::default()
    };
    match store
        .list_all_uploads(&scope.bucket, scope.prefix.as_deref())
        .await
    {
        Ok(page) => {
            if page.truncated {
                summary.notes.push(
                    "the store did not list every upload (no marker to go on from, or over 1,000 pages): run clean again for the rest".into(),
                );
            }
            for u in page.uploads {
                if u.initiated.is_none_or(|t| t >= cutoff) {
                    summary.uploads_young += 1;
                    continue;
                }
                if !dry_run {
                    match scope
                        .objects
                        .abort_upload(&scope.bucket, &u.key, &u.upload_id)
                        .await
                    {
                        Ok(()) | Err(Error::NotFound) => {}
                        Err(Error::NoRoute { .. } | Error::BadRequest(_)) => {
                            summary.notes.push(format!(
                                "an upload under {:?} is outside every route: left alone",
                                u.key
                            ));
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                summary.uploads_aborted += 1;
            }
        }
        Err(e) if e.to_string().contains("NotImplemented") => summary.notes.push(
            "the store does not list multipart uploads: the parts of abandoned uploads stay \
             in its own storage (remove them there); their gateway records older than the \
             limit are removed"
                .into(),
        ),
        Err(e) => return Err(e),
    }
    let Swept {
        layout_records,
        upload_records,
        young,
        ..
    } = scope
        .objects
        .sweep_records(&scope.bucket, Some(cutoff), dry_run)
        .await?;
    summary.layout_records = layout_records;
    summary.upload_records = upload_records;
    summary.records_young = young;
    Ok(summary)
}
