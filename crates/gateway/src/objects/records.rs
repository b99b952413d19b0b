//! The gateway's own records under `.custodia/` that belong to nothing any more: layout
//! records of a key that holds no multipart object of their upload, and metadata records of
//! uploads that ended (aborted behind the gateway's back) or were abandoned (a client or
//! gateway crash). Swept before a DeleteBucket the store refused as not empty (only what is
//! provably orphaned) and by `custodia clean` (also what is older than an age limit).

use time::OffsetDateTime;

use super::Objects;
use super::multipart::{LAYOUT_PREFIX, UPLOADS_PREFIX, parse_layout_key, side_key, upload_of};
use crate::codec::Start;
use crate::error::{Error, Result};

/// What a sweep found and removed (or, dry, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Layout records of keys that no longer hold their multipart object.
    pub layout_records: u64,
    /// Metadata records of uploads that ended or were abandoned.
    pub upload_records: u64,
    /// Orphaned-looking records kept because they are younger than the age limit.
    pub young: u64,
    /// Whether the store lists multipart uploads (else an upload's metadata record is only
    /// removed once older than the age limit).
    pub uploads_listed: bool,
}

impl Objects {
    /// Sweeps `bucket`'s `.custodia/` records.
    ///
    /// * A layout record goes when its key holds no multipart object of its upload (deleted,
    ///   or written over).
    /// * An upload's metadata record goes when the store (listing every upload in one page)
    ///   no longer has its upload, or, with `older_than`, when the store does not list uploads
    ///   and the record is older than that.
    ///
    /// With `older_than`, records modified after it are kept (an upload or overwrite in
    /// flight). `dry`: count, remove nothing.
    ///
    /// # Errors
    /// Store errors.
    pub async fn sweep_records(
        &self,
        bucket: &str,
        older_than: Option<OffsetDateTime>,
        dry: bool,
    ) -> Result<Swept> {
        let store = self.s3()?;
        let mut records = Vec::new();
        let mut params = crate::store::s3::ListParams {
            prefix: Some(crate::routes::RESERVED_PREFIX.to_owned()),
            max_keys: Some(1000),
            ..Default::default()
        };
        loop {
            let page = store.list(bucket, &params, true).await?;
            records.extend(page.objects.into_iter().filter_map(|o| {
                let modified = o.last_modified.map(OffsetDateTime::from);
                o.key.map(|k| (k, modified))
            }));
            if !page.truncated || page.next_token.is_none() {
                break;
            }
            params.token = page.next_token;
        }
        // Which uploads are live, if the store says so in full (every page, none left over).
        let live: Option<std::collections::HashSet<String>> =
            match store.list_all_uploads(bucket, None).await {
                Ok(page) if !page.truncated => Some(
                    page.uploads
                        .into_iter()
                        .map(|u| side_key(UPLOADS_PREFIX, bucket, &u.key, &u.upload_id))
                        .collect(),
                ),
                _ => None,
            };
        let mut swept = Swept {
            uploads_listed: live.is_some(),
            ..Swept::default()
        };
        for (name, modified) in records {
            let old_enough = match (older_than, modified) {
                (None, _) => true,
                (Some(cutoff), Some(m)) => m < cutoff,
                // No date from the store: not provably old.
                (Some(_), None) => false,
            };
            let is_layout = name.starts_with(LAYOUT_PREFIX);
            let orphan = if let Some((key, _)) = parse_layout_key(&name) {
                self.layout_is_orphaned(bucket, key, &name).await?
            } else if name.starts_with(UPLOADS_PREFIX) {
                match &live {
                    Some(l) => !l.contains(&name),
                    None => older_than.is_some(),
                }
            } else {
                false
            };
            if !orphan {
                continue;
            }
            if !old_enough {
                swept.young += 1;
                continue;
            }
            if !dry {
                store.delete(bucket, &name).await?;
            }
            if is_layout {
                swept.layout_records += 1;
            } else {
                swept.upload_records += 1;
            }
        }
        Ok(swept)
    }

    /// Whether layout record `name` of `key` describes nothing `key` holds: the key is gone,
    /// or holds a sealed object of another upload (or none), and the record's upload is not
    /// completing (its metadata record is gone: a completion writes the layout first and
    /// removes the metadata record last). A record that cannot be read as one of an upload is
    /// not provably orphaned and is kept.
    async fn layout_is_orphaned(&self, bucket: &str, key: &str, name: &str) -> Result<bool> {
        let Some(record_upload) = (match self.fetch_header(bucket, name).await {
            Ok((Start::Sealed { header, .. }, _)) => upload_of(&header).map(str::to_owned),
            _ => None,
        }) else {
            return Ok(false);
        };
        let completing = match self
            .s3()?
            .get(
                bucket,
                &side_key(UPLOADS_PREFIX, bucket, key, &record_upload),
                Some(0..1),
            )
            .await
        {
            Err(Error::NotFound) => false,
            Ok(_) | Err(Error::NotSealed) => true,
            Err(e) => return Err(e),
        };
        if completing {
            return Ok(false);
        }
        Ok(match self.fetch_header(bucket, key).await {
            Err(Error::NotFound) => true,
            Ok((Start::Sealed { header, .. }, _)) => {
                upload_of(&header) != Some(record_upload.as_str())
            }
            _ => false,
        })
    }
}
