//! Multipart uploads (S3) and reading the objects they make; the scheme is specified in
//! `docs/FORMAT.md`, "Multipart objects".
//!
//! Every part is its own envelope (fresh data key and stanzas) whose authenticated context
//! names the upload and the part number and whose binding is the object's name, so no key
//! or nonce ever spans two requests and a re-sent part is sealed afresh. The object's
//! metadata is sealed at CreateMultipartUpload into a small envelope kept under
//! `.custodia/uploads/`; at completion the gateway checks the parts (numbered 1..N, all but
//! the last of one size that is a multiple of the chunk size) and writes a layout envelope
//! under `.custodia/layout/{key}` (upload id, part count and sizes, and every part's object
//! id; its body also carries the metadata envelope: [`custodia_envelope::multipart`]).
//! Readers verify the layout against every part header and the stored length, so dropped,
//! duplicated, reordered, foreign or re-sent parts fail.
//!
//! The part's object id reaches the completion through the ETag the client got for the part
//! (the gateway keeps no state between requests, and the store does not let a part be read
//! before completion): `pk-` and the hex of `{number}:{object id hex}:{layout key hex}:{store
//! ETag}`. The layout record carries a tag per part under that part's layout key (layout
//! version 3), checked when the part is opened: sealing needs only public keys and object ids
//! are the sealer's choice, so without the tags a store holder could seal a part of its own
//! under a genuine part's id, or a shorter layout naming the genuine parts.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use custodia::Client;
use custodia_envelope::multipart::{CTX_LAYOUT, CTX_PART, CTX_UPLOAD, LAYOUT_VERSION, Layout};
use custodia_envelope::{
    Binding, DerivedKey, Header, Metadata, ObjectId, Opener, PREFIX_LEN, Profile, Unlocked,
};
use futures_util::{StreamExt, TryStreamExt};

use super::{GetObject, ObjectInfo, Objects, RangeSpec, count, opaque_etag};
use crate::codec::{self, Checks, Failure};
use crate::error::{Error, Result};
use crate::store::s3::S3Store;
use crate::store::{BodyStream, Fetched, Store};

/// Where metadata envelopes of uploads in progress are kept.
pub const UPLOADS_PREFIX: &str = ".custodia/uploads/";
/// Where layout envelopes of completed multipart objects are kept.
pub const LAYOUT_PREFIX: &str = ".custodia/layout/";
/// Highest part number S3 allows.
pub const MAX_PARTS: u32 = 10_000;
/// Largest layout envelope read (10,000 part ids and the metadata record fit).
const MAX_LAYOUT: usize = 1 << 20;

/// The ETag a client gets for part `number`: the part number, its envelope's object id and
/// the store's part ETag (of sealed bytes), hex-encoded behind a `pk-` prefix, so
/// CompleteMultipartUpload can name the store's parts and bind their envelopes without any
/// state in the gateway, and a part listed under another number is refused even where the
/// store does not list part ETags; not shaped like an MD5 and not derived from plaintext.
/// ListParts cannot know the object id (the store does not let a part be read): its ETags
/// are `q-` and the hex of `{number}:{store ETag}`, a form no completion accepts — so no
/// store-chosen ETag can pass for an object id.
/// An UploadPart ETag also carries the part's layout key (`sealed`: its object id and layout
/// key); a ListParts ETag has neither.
#[must_use]
pub(crate) fn part_etag(
    number: u32,
    sealed: Option<(&ObjectId, &DerivedKey)>,
    store_etag: &str,
) -> String {
    let inner = store_etag.trim().trim_matches('"');
    match sealed {
        Some((id, k)) => format!(
            "\"pk-{}\"",
            hex::encode(format!(
                "{number}:{}:{}:{inner}",
                hex::encode(id.0),
                hex::encode(k.expose())
            ))
        ),
        None => format!("\"q-{}\"", hex::encode(format!("{number}:{inner}"))),
    }
}

/// A client's part ETag decoded: part number, object id and layout key (`None` for a
/// ListParts ETag), store ETag.
type PartEtag = (u32, Option<(ObjectId, DerivedKey)>, String);

/// The part number, object id and store ETag inside a [`part_etag`]; `None` if it is not one.
fn store_part_etag(client_etag: &str) -> Option<PartEtag> {
    let trimmed = client_etag.trim().trim_matches('"');
    // `pk-` (with the layout key) only: a `p-` ETag of an older gateway has no key, and read
    // by position a store-chosen ETag inside it could pose as one.
    let (listed, hexed) = match (trimmed.strip_prefix("pk-"), trimmed.strip_prefix("q-")) {
        (Some(h), _) => (false, h),
        (None, Some(h)) => (true, h),
        (None, None) => return None,
    };
    let text = String::from_utf8(hex::decode(hexed).ok()?).ok()?;
    let (n, rest) = text.split_once(':')?;
    let n = n.parse().ok()?;
    if listed {
        return Some((n, None, rest.to_owned()));
    }
    // `pk-`: exactly 64 hex characters of object id, `:`, exactly 64 hex characters of
    // layout key, `:`, then the store's ETag.
    let hex32 = |h: &str| <[u8; 32]>::try_from(hex::decode(h).ok()?).ok();
    let (id, rest) = (rest.get(..64)?, rest.get(64..)?.strip_prefix(':')?);
    let (key, etag) = (rest.get(..64)?, rest.get(64..)?.strip_prefix(':')?);
    Some((
        n,
        Some((ObjectId(hex32(id)?), DerivedKey::from_bytes(hex32(key)?))),
        etag.to_owned(),
    ))
}

fn tampered(what: &'static str) -> Error {
    Error::Tampered(custodia_envelope::Error::InvalidArgument(what))
}

pub(super) fn side_key(prefix: &str, bucket: &str, key: &str, upload: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{bucket}\n{key}\n{upload}").as_bytes(),
    );
    format!("{prefix}{}", hex::encode(&d.as_ref()[..16]))
}

/// The layout record of `key` for an object of `parts` parts. The part count is in the
/// name (it is no secret: the store sees the parts) so listings can size multipart objects
/// on stores whose ETags lack the `-N` suffix.
fn layout_record_name(key: &str, parts: usize) -> String {
    format!("{LAYOUT_PREFIX}{key}/{parts}")
}

/// The prefix under which `key`'s layout records are.
fn layout_dir(key: &str) -> String {
    format!("{LAYOUT_PREFIX}{key}/")
}

/// `(key, parts)` of a layout record's name.
#[must_use]
pub fn parse_layout_key(name: &str) -> Option<(&str, u64)> {
    let (key, n) = name.strip_prefix(LAYOUT_PREFIX)?.rsplit_once('/')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((key, n.parse().ok()?))
}

/// Whether `header` is a part of a multipart object.
pub(crate) fn is_part(header: &Header) -> bool {
    header.context().get(CTX_UPLOAD).is_some()
}

/// The upload a multipart record's header names, if it is one.
pub(crate) fn upload_of(header: &Header) -> Option<&str> {
    header.context().get(CTX_UPLOAD)
}

/// Checks that `header` is record `part` of upload `upload` of mailbox `mailbox` (the first
/// part's, which was checked against the key's mailbox): before any custodian is asked to
/// open it, so that no part, layout or metadata record of another mailbox's upload is
/// released on this key's account.
fn check_part(header: &Header, upload: &str, mailbox: &str, part: &str) -> Result<()> {
    if header.context().get(CTX_UPLOAD) != Some(upload)
        || header.context().get(CTX_PART) != Some(part)
    {
        return Err(tampered("a part of another upload or position"));
    }
    if header.context().mailbox() != mailbox {
        return Err(Error::WrongMailbox);
    }
    Ok(())
}

async fn collect(mut body: BodyStream, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = body.next().await {
        let b = b.map_err(|e| Error::UpstreamUnavailable(format!("reading: {e}")))?;
        if out.len() + b.len() > limit {
            return Err(Error::TooLarge("a record larger than its limit".into()));
        }
        out.extend_from_slice(&b);
    }
    Ok(out)
}

fn parse_stored_header(bytes: &[u8]) -> Result<Header> {
    let prefix = bytes
        .get(..PREFIX_LEN)
        .ok_or_else(|| tampered("record shorter than a header"))?;
    let profile = Profile::from_prefix(prefix).map_err(Error::Tampered)?;
    let h = bytes
        .get(..profile.header_size())
        .ok_or_else(|| tampered("record shorter than its header"))?;
    Header::parse(h).map_err(Error::Tampered)
}

impl Objects {
    pub(super) fn s3(&self) -> Result<&S3Store> {
        match self.store.as_ref() {
            Store::S3(s) => Ok(s),
            Store::Webdav(_) => Err(Error::NotImplemented(
                "multipart uploads need an S3 upstream".into(),
            )),
        }
    }

    /// Starts an upload: the store's upload id (returned to the client as it is: it holds
    /// no secret) and the object's metadata sealed for later.
    ///
    /// # Errors
    /// [`Error::NoRoute`], store errors.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        metadata: &Metadata,
    ) -> Result<String> {
        let route = self.routes.resolve(bucket, key)?;
        let store = self.s3()?;
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        // Seal first: a mailbox without residency fails before the store hears of it.
        self.client
            .seal_in(&route.mailbox, &[], &binding, &[], metadata)?;
        let id = store.create_multipart(bucket, key).await?;
        let sealed = self.client.seal_in(
            &route.mailbox,
            &[(CTX_UPLOAD, &id), (CTX_PART, "metadata")],
            &binding,
            &[],
            metadata,
        )?;
        let len = sealed.len() as u64;
        let body = futures_util::stream::iter([Ok(Bytes::from(sealed))]).boxed();
        store
            .put(
                bucket,
                &side_key(UPLOADS_PREFIX, bucket, key, &id),
                len,
                body,
            )
            .await?;
        Ok(id)
    }

    /// Seals and stores part `number` of an upload; returns its opaque ETag.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a part number outside 1..=10000, as [`Objects::put`].
    #[allow(clippy::too_many_arguments, reason = "one S3 UploadPart request")]
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        number: u32,
        len: u64,
        body: BodyStream,
        checks: Checks,
    ) -> Result<Option<String>> {
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(Error::BadRequest(format!(
                "part number {number}: parts are numbered 1..={MAX_PARTS}"
            )));
        }
        let route = self.routes.resolve(bucket, key)?;
        let store = self.s3()?;
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        let n = number.to_string();
        let (header, sealer) = self.client.begin_seal_in(
            &route.mailbox,
            &[
                (CTX_UPLOAD, upload),
                (CTX_PART, &n),
                (CTX_LAYOUT, &LAYOUT_VERSION.to_string()),
            ],
            &binding,
            &Metadata::new(),
        )?;
        let id = *Header::parse(&header).map_err(Error::Tampered)?.object_id();
        // The part's layout key goes back to the client in its ETag, for the completion.
        let layout_key = sealer.layout_key().clone();
        let stored_len = self
            .client
            .profile()
            .sealed_len(len)
            .ok_or_else(|| Error::TooLarge("part too large".into()))?;
        let failure = Failure::default();
        let body = codec::seal_body(
            header,
            sealer,
            count(body, &self.metrics.bytes_in),
            Some(len),
            self.max_object_bytes,
            checks,
            failure.clone(),
        );
        match store
            .upload_part(bucket, key, upload, number, stored_len, body)
            .await
        {
            Ok(etag) => Ok(etag
                .as_deref()
                .map(|e| part_etag(number, Some((&id, &layout_key)), e))),
            Err(e) => Err(failure.take().unwrap_or(e)),
        }
    }

    /// Completes an upload from the client's part list (numbers 1..N in order, with the
    /// ETags the gateway returned); writes the layout, then completes upstream.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the problem (gaps, order, unknown parts or ETags,
    /// non-uniform sizes), store errors.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
        client_parts: &[(u32, Option<String>)],
    ) -> Result<Option<String>> {
        let route = self.routes.resolve(bucket, key)?;
        let store = self.s3()?;
        if client_parts.is_empty() {
            return Err(Error::BadRequest("MalformedXML: no parts".into()));
        }
        for (i, (n, _)) in client_parts.iter().enumerate() {
            if u64::from(*n) != i as u64 + 1 {
                return Err(Error::BadRequest(format!(
                    "InvalidPartOrder: parts must be numbered 1..{} in order without gaps (found {n} at position {})",
                    client_parts.len(),
                    i + 1
                )));
            }
        }
        let stored = store.list_parts(bucket, key, upload).await?;
        let profile = self.client.profile();
        let mut sizes = Vec::with_capacity(client_parts.len());
        let mut etags = Vec::with_capacity(client_parts.len());
        let mut ids = Vec::with_capacity(client_parts.len());
        let mut layout_keys = Vec::with_capacity(client_parts.len());
        for (n, etag) in client_parts {
            let p = stored.iter().find(|p| p.number == *n).ok_or_else(|| {
                Error::BadRequest(format!("InvalidPart: part {n} was not uploaded"))
            })?;
            let bad_etag =
                || Error::BadRequest(format!("InvalidPart: part {n}'s ETag does not match"));
            let (from_client, sealed) = match etag.as_deref().map(store_part_etag) {
                None => (None, None),
                Some(Some((number, sealed, e))) if number == *n => (Some(e), sealed),
                Some(_) => return Err(bad_etag()),
            };
            // The layout binds every part's envelope and carries a tag under its layout key:
            // only the ETag UploadPart answered names them (ListParts cannot: the store does
            // not let a part be read).
            let (id, key) = sealed.ok_or_else(|| {
                Error::BadRequest(format!(
                    "InvalidPart: part {n}'s ETag does not name its sealed part (use the ETag \
                     UploadPart returned, not ListParts'; or upload the part again)"
                ))
            })?;
            ids.push(id);
            layout_keys.push(key);
            let store_etag = match (&p.etag, from_client) {
                (Some(s), Some(c)) if s.trim_matches('"') != c.trim_matches('"') => {
                    return Err(bad_etag());
                }
                (Some(s), _) => s.clone(),
                (None, Some(c)) => c,
                (None, None) => return Err(bad_etag()),
            };
            let plain = profile.plaintext_len(p.size).map_err(|_| {
                Error::BadRequest(format!("InvalidPart: part {n} is not a sealed part"))
            })?;
            sizes.push(plain);
            etags.push((*n, format!("\"{}\"", store_etag.trim_matches('"'))));
        }
        let part_size = sizes[0];
        let last_size = sizes[sizes.len() - 1];
        let chunk = profile.chunk_size() as u64;
        if sizes.len() > 1
            && (part_size == 0
                || part_size % chunk != 0
                || sizes[..sizes.len() - 1].iter().any(|&s| s != part_size))
        {
            return Err(Error::BadRequest(format!(
                "InvalidPart: all parts but the last must have one size, a multiple of {chunk} bytes (the gateway's chunk size); got {:?}",
                &sizes[..sizes.len().min(8)]
            )));
        }
        let meta_key = side_key(UPLOADS_PREFIX, bucket, key, upload);
        let meta_env = collect(
            store
                .get(bucket, &meta_key, None)
                .await
                .map_err(|e| match e {
                    Error::NotFound => Error::BadRequest(
                        "NoSuchUpload: the upload's metadata record is missing".into(),
                    ),
                    other => other,
                })?
                .body,
            profile.header_size() + 1024,
        )
        .await?;
        let plan = Layout::new(upload, part_size, last_size, ids)
            .map_err(|e| Error::BadRequest(format!("layout: {e}")))?;
        let layout_meta = plan
            .metadata()
            .map_err(|e| Error::BadRequest(format!("upload id: {e}")))?;
        let lkey = layout_record_name(key, sizes.len());
        let stale = self.layout_records(bucket, key).await?;
        let layout = self.client.seal_in(
            &route.mailbox,
            &[(CTX_UPLOAD, upload), (CTX_PART, "layout")],
            &Binding::new(bucket, &lkey).map_err(Error::Tampered)?,
            &plan
                .body(&meta_env, &layout_keys)
                .map_err(Error::Tampered)?,
            &layout_meta,
        )?;
        let len = layout.len() as u64;
        // The record may replace the layout of the multipart object the key holds now (same
        // part count, same name): kept, to be put back if the store refuses the completion.
        let replaced = if stale.contains(&lkey) {
            match store.get(bucket, &lkey, None).await {
                Ok(f) => Some(collect(f.body, MAX_LAYOUT).await?),
                Err(Error::NotFound) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        store
            .put(
                bucket,
                &lkey,
                len,
                futures_util::stream::iter([Ok(Bytes::from(layout))]).boxed(),
            )
            .await?;
        let etag = match store.complete_multipart(bucket, key, upload, &etags).await {
            Ok(etag) => etag,
            Err(e) => {
                // An error can follow a completion the store did make (a reset after its
                // answer): then the record is the object's, and stays.
                let completed = matches!(
                    self.fetch_header(bucket, key).await,
                    Ok((crate::codec::Start::Sealed { header, .. }, _))
                        if upload_of(&header) == Some(upload)
                );
                if completed {
                    return Err(e);
                }
                // Nothing completed: the key still holds what it held, so its layout does too.
                let undo = match replaced {
                    Some(old) => {
                        let n = old.len() as u64;
                        let body = futures_util::stream::iter([Ok(Bytes::from(old))]).boxed();
                        store.put(bucket, &lkey, n, body).await.map(drop)
                    }
                    None => store.delete(bucket, &lkey).await,
                };
                if let Err(u) = undo {
                    tracing::warn!(error = %u, "could not undo a refused completion's layout record");
                }
                return Err(e);
            }
        };
        if let Err(e) = store.delete(bucket, &meta_key).await {
            tracing::warn!(error = %e, "could not remove an upload's metadata record");
        }
        // Older records go only while the key still holds this upload and theirs is not
        // completing: a concurrent completion that landed after this one owns the key (and
        // its record), whatever its part count.
        for old in stale.into_iter().filter(|k| *k != lkey) {
            let busy = match self.record_upload(bucket, &old).await {
                Some(u) => self
                    .upload_in_progress(bucket, key, &u)
                    .await
                    .unwrap_or(true),
                // Unreadable: kept (`clean` decides).
                None => true,
            };
            if busy {
                continue;
            }
            // After the in-progress check: a completion that finished meanwhile owns the key.
            if !self.key_holds_upload(bucket, key, upload).await {
                break;
            }
            if let Err(e) = store.delete(bucket, &old).await {
                tracing::warn!(error = %e, "could not remove an older layout record");
            }
        }
        Ok(etag.as_deref().map(opaque_etag))
    }

    /// Aborts an upload and removes its metadata record.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown upload, store errors.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload: &str) -> Result<()> {
        self.routes.resolve(bucket, key)?;
        let store = self.s3()?;
        store.abort_multipart(bucket, key, upload).await?;
        let _ = store
            .delete(bucket, &side_key(UPLOADS_PREFIX, bucket, key, upload))
            .await;
        Ok(())
    }

    /// The parts uploaded so far: number, plaintext size, opaque ETag.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list_upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload: &str,
    ) -> Result<Vec<(u32, u64, String)>> {
        self.routes.resolve(bucket, key)?;
        let profile = self.client.profile();
        Ok(self
            .s3()?
            .list_parts(bucket, key, upload)
            .await?
            .into_iter()
            .map(|p| {
                let size = profile.plaintext_len(p.size).unwrap_or(p.size);
                (
                    p.number,
                    size,
                    p.etag
                        .as_deref()
                        .map_or_else(String::new, |e| part_etag(p.number, None, e)),
                )
            })
            .collect())
    }

    /// Reads and verifies the layout of the multipart object whose first part's header is
    /// `first`, and opens its sealed metadata; unlocks part 1 and checks part 1's tag under
    /// its layout key (FORMAT.md §10a step 3), so nothing of a layout that whoever sealed
    /// part 1 did not write is used. Returns part 1 unlocked and the metadata record the
    /// tags cover (every other part's tag is checked when that part is opened). A version 1
    /// or 2 layout is refused unless the key's route sets `legacy_layouts`.
    pub(crate) async fn layout(
        &self,
        bucket: &str,
        key: &str,
        first: &Header,
        total_len: u64,
    ) -> Result<(Layout, Metadata, Unlocked, Arc<[u8]>)> {
        let allow_legacy = self.routes.resolve(bucket, key)?.legacy_layouts;
        let (layout, metadata, record) = self
            .find_layout(bucket, key, first, allow_legacy, Some(total_len))
            .await?;
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        let part1 = self.client.unlock(first, &binding, None).await?;
        layout
            .check_tag(0, &record, part1.layout_key())
            .map_err(Error::Tampered)?;
        Ok((layout, metadata, part1, record.into()))
    }

    /// Whether the multipart object whose first part's header is `first` has a version 1
    /// layout (parts not bound), whatever its route allows: for `custodia verify`.
    ///
    /// # Errors
    /// As [`Objects::layout`] (a missing or damaged layout record is [`Error::Tampered`]).
    pub(crate) async fn has_legacy_layout(
        &self,
        bucket: &str,
        key: &str,
        first: &Header,
    ) -> Result<bool> {
        let (layout, _, _) = self.find_layout(bucket, key, first, true, None).await?;
        Ok(layout.is_legacy())
    }

    /// The first of `key`'s layout records that verifies for the object whose part 1 is
    /// `first`, checked against that header, with the object's sealed metadata and the
    /// metadata record the layout carries (what its tag covers).
    ///
    /// With `total_len` (the object's stored length), a record whose layout does not give
    /// that length is skipped too, so leftovers of a completion retried with another part
    /// count, or of concurrent completions, cannot hide the object's own record.
    async fn find_layout(
        &self,
        bucket: &str,
        key: &str,
        first: &Header,
        allow_legacy: bool,
        total_len: Option<u64>,
    ) -> Result<(Layout, Metadata, Vec<u8>)> {
        let upload = first
            .context()
            .get(CTX_UPLOAD)
            .ok_or_else(|| tampered("not a part"))?
            .to_owned();
        let mailbox = first.context().mailbox();
        check_part(first, &upload, mailbox, "1")?;
        let mut last = None;
        for lkey in self.layout_records(bucket, key).await? {
            match self
                .open_layout(bucket, key, &lkey, &upload, mailbox, allow_legacy)
                .await
            {
                Ok((layout, metadata, record)) => {
                    if let Err(e) = layout.check_part(0, first) {
                        last = Some(Error::Tampered(e));
                        continue;
                    }
                    if let Some(total) = total_len
                        && layout.stored_total(first.profile()).ok() != Some(total)
                    {
                        last = Some(Error::Tampered(custodia_envelope::Error::Truncation));
                        continue;
                    }
                    return Ok((layout, metadata, record));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| tampered("the multipart object's layout record is missing")))
    }

    /// Deletes the layout records of upload `upload` of `key`, after a single-part object
    /// was written over the multipart object they described (`reseal`). Only records whose
    /// sealed context names that upload are deleted (their headers are read first): a
    /// record of an upload completed since, even under the same name, is kept.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn drop_layout_of(&self, bucket: &str, key: &str, upload: &str) -> Result<()> {
        for lkey in self.layout_records(bucket, key).await? {
            let ours = match self.fetch_header(bucket, &lkey).await {
                Ok((crate::codec::Start::Sealed { header, .. }, _)) => {
                    header.context().get(CTX_UPLOAD) == Some(upload)
                }
                Ok(_) | Err(Error::NotFound | Error::Tampered(_) | Error::NotSealed) => false,
                Err(e) => return Err(e),
            };
            if ours {
                self.s3()?.delete(bucket, &lkey).await?;
            }
        }
        Ok(())
    }

    /// The upload a layout record names (its header's context), `None` if it names none or
    /// cannot be read.
    async fn record_upload(&self, bucket: &str, lkey: &str) -> Option<String> {
        match self.fetch_header(bucket, lkey).await {
            Ok((crate::codec::Start::Sealed { header, .. }, _)) => {
                upload_of(&header).map(str::to_owned)
            }
            _ => None,
        }
    }

    /// Whether `upload` of `key` may still be completing: its metadata record exists (a
    /// completion writes the layout record first and removes the metadata record last).
    async fn upload_in_progress(&self, bucket: &str, key: &str, upload: &str) -> Result<bool> {
        match self
            .s3()?
            .get(
                bucket,
                &side_key(UPLOADS_PREFIX, bucket, key, upload),
                Some(0..1),
            )
            .await
        {
            Err(Error::NotFound) => Ok(false),
            Ok(_) | Err(Error::NotSealed) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Deletes `key`'s layout records after the object itself was deleted, except those of
    /// an upload still completing (its object may land after the delete and needs its
    /// record).
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn drop_layouts_after_delete(&self, bucket: &str, key: &str) -> Result<()> {
        for lkey in self.layout_records(bucket, key).await? {
            // A record that cannot be read as one of an upload is kept (`clean` decides).
            let Some(upload) = self.record_upload(bucket, &lkey).await else {
                continue;
            };
            if self.upload_in_progress(bucket, key, &upload).await? {
                continue;
            }
            // Checked after the in-progress check: a completion that finished meanwhile
            // (its metadata record gone) owns the key again, and the record.
            if self.key_holds_upload(bucket, key, &upload).await {
                continue;
            }
            self.s3()?.delete(bucket, &lkey).await?;
        }
        Ok(())
    }

    /// Whether `key` holds a multipart object of `upload` now.
    async fn key_holds_upload(&self, bucket: &str, key: &str, upload: &str) -> bool {
        matches!(
            self.fetch_header(bucket, key).await,
            Ok((crate::codec::Start::Sealed { header, .. }, _))
                if upload_of(&header) == Some(upload)
        )
    }

    /// Deletes the layout records that no longer describe what `key` holds, after this
    /// gateway wrote `key` with a single PUT whose store ETag is `written` (a multipart object
    /// overwritten by a single PUT leaves its layout behind, and listings would size the new
    /// object by it). Nothing is deleted unless the key still holds that write, and a record
    /// whose upload is still in progress (its metadata record exists: the completion writes
    /// the layout first) is kept, so a multipart upload completing meanwhile keeps its layout.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn drop_stale_layouts(
        &self,
        bucket: &str,
        key: &str,
        written: &str,
    ) -> Result<()> {
        let records = self.layout_records(bucket, key).await?;
        if records.is_empty() {
            return Ok(());
        }
        let current = match self.fetch_header(bucket, key).await {
            Ok((crate::codec::Start::Sealed { header, .. }, fetched))
                if fetched.etag.as_deref() == Some(written) =>
            {
                upload_of(&header).map(str::to_owned)
            }
            // Written again (or deleted) since: that write or delete deals with the records.
            Ok(_) | Err(Error::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        for lkey in records {
            let Some(upload) = self.record_upload(bucket, &lkey).await else {
                continue;
            };
            if current.as_deref() == Some(upload.as_str()) {
                continue;
            }
            if self.upload_in_progress(bucket, key, &upload).await? {
                continue;
            }
            // The key must still hold the PUT now, after the in-progress check: a completion
            // that finished meanwhile (its metadata record gone) owns the record.
            match self.fetch_header(bucket, key).await {
                Ok((_, fetched)) if fetched.etag.as_deref() == Some(written) => {}
                Ok(_) | Err(Error::NotFound) => return Ok(()),
                Err(e) => return Err(e),
            }
            self.s3()?.delete(bucket, &lkey).await?;
        }
        Ok(())
    }

    /// The names of `key`'s layout records (normally one).
    pub(crate) async fn layout_records(&self, bucket: &str, key: &str) -> Result<Vec<String>> {
        let params = crate::store::s3::ListParams {
            prefix: Some(layout_dir(key)),
            delimiter: Some("/".into()),
            max_keys: Some(100),
            ..Default::default()
        };
        let page = self.s3()?.list(bucket, &params, true).await?;
        Ok(page
            .objects
            .into_iter()
            .filter_map(|o| o.key)
            .filter(|k| parse_layout_key(k).is_some_and(|(kk, _)| kk == key))
            .collect())
    }

    /// Opens and verifies one layout record.
    async fn open_layout(
        &self,
        bucket: &str,
        key: &str,
        lkey: &str,
        upload: &str,
        mailbox: &str,
        allow_legacy: bool,
    ) -> Result<(Layout, Metadata, Vec<u8>)> {
        let upload = upload.to_owned();
        let fetched = self.store.get(bucket, lkey, None).await?;
        let bytes = collect(fetched.body, MAX_LAYOUT).await?;
        let lh = parse_stored_header(&bytes)?;
        check_part(&lh, &upload, mailbox, "layout")?;
        let lbinding = Binding::new(bucket, lkey).map_err(Error::Tampered)?;
        let unlocked = self.client.unlock(&lh, &lbinding, None).await?;
        let body = unlocked.open(&bytes).map_err(Error::Tampered)?;
        let (layout, meta_env) =
            Layout::parse(unlocked.metadata(), &body).map_err(Error::Tampered)?;
        if layout.upload() != upload {
            return Err(tampered("layout of another upload"));
        }
        if parse_layout_key(lkey).map(|(_, n)| n) != Some(layout.parts()) {
            return Err(tampered("layout with an impossible part count"));
        }
        if layout.is_legacy() && !allow_legacy {
            return Err(Error::LegacyLayout);
        }
        let mh = parse_stored_header(meta_env)?;
        check_part(&mh, &upload, mailbox, "metadata")?;
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        let meta = self.client.unlock(&mh, &binding, None).await?;
        Ok((layout, meta.metadata().clone(), meta_env.to_vec()))
    }

    /// HEAD of a multipart object.
    pub(crate) async fn head_multipart(
        &self,
        bucket: &str,
        key: &str,
        first: &Header,
        fetched: Fetched,
    ) -> Result<ObjectInfo> {
        let Fetched {
            total_len,
            etag,
            last_modified,
            ..
        } = fetched;
        let (layout, metadata, _, _) = self.layout(bucket, key, first, total_len).await?;
        if layout
            .stored_total(first.profile())
            .map_err(Error::Tampered)?
            != total_len
        {
            return Err(Error::Tampered(custodia_envelope::Error::Truncation));
        }
        Ok(ObjectInfo {
            len: layout.plaintext_len(),
            etag: etag.as_deref().map(opaque_etag),
            last_modified,
            metadata,
            legacy: false,
        })
    }

    /// GET of a whole multipart object, part 1's header already read off `fetched`.
    pub(crate) async fn get_multipart(
        &self,
        bucket: &str,
        key: &str,
        first: &Header,
        rest: Bytes,
        fetched: Fetched,
    ) -> Result<GetObject> {
        let (layout, metadata, unlocked, record) =
            self.layout(bucket, key, first, fetched.total_len).await?;
        let profile = first.profile();
        if layout.stored_total(profile).map_err(Error::Tampered)? != fetched.total_len {
            return Err(Error::Tampered(custodia_envelope::Error::Truncation));
        }
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        let opener = unlocked.opener().map_err(Error::Tampered)?;
        let sizes = (0..layout.parts())
            .map(|i| layout.stored_len(profile, i).map_err(Error::Tampered))
            .collect::<Result<Vec<u64>>>()?;
        let info = Self::info(&fetched, layout.plaintext_len(), metadata, false);
        let failure = Failure::default();
        let state = PartsState {
            left: sizes[0] - profile.header_size() as u64,
            input: fetched.body,
            buf: BytesMut::from(&rest[..]),
            client: self.client.clone(),
            binding,
            layout: Arc::new(layout),
            record,
            mailbox: first.context().mailbox().to_owned(),
            header_size: profile.header_size(),
            profile,
            sizes,
            index: 0,
            opener: Some(opener),
            failure: failure.clone(),
            done: false,
        };
        Ok(GetObject {
            info,
            range: None,
            body: count(parts_body(state), &self.metrics.bytes_out),
            failure,
        })
    }

    /// A range of a multipart object: only the parts and chunks the range touches.
    pub(crate) async fn get_multipart_range(
        &self,
        bucket: &str,
        key: &str,
        first: &Header,
        fetched: Fetched,
        spec: RangeSpec,
    ) -> Result<GetObject> {
        let Fetched {
            total_len,
            etag,
            last_modified,
            ..
        } = fetched;
        let (layout, metadata, _, record) = self.layout(bucket, key, first, total_len).await?;
        let profile = first.profile();
        if layout.stored_total(profile).map_err(Error::Tampered)? != total_len {
            return Err(Error::Tampered(custodia_envelope::Error::Truncation));
        }
        let len = layout.plaintext_len();
        let range = spec.resolve(len)?;
        let p = layout.part_size().max(1);
        let first_part = (range.start / p).min(layout.parts() - 1);
        let last_part = ((range.end - 1) / p).min(layout.parts() - 1);
        let full_stored = layout.stored_len(profile, 0).map_err(Error::Tampered)?;
        let mut pieces = Vec::new();
        for i in first_part..=last_part {
            let part_plain = layout.part_plaintext_len(i);
            let base = i * layout.part_size();
            let lo = range.start.max(base) - base;
            let hi = range.end.min(base + part_plain) - base;
            if lo < hi {
                pieces.push((i, i * full_stored, part_plain, lo, hi));
            }
        }
        let client = self.client.clone();
        let store = self.store.clone();
        let bucket_s = bucket.to_owned();
        let key_s = key.to_owned();
        let layout = Arc::new(layout);
        let mailbox = first.context().mailbox().to_owned();
        let failure = Failure::default();
        let fail = failure.clone();
        // Each touched part needs its header and its chunks: both fetched at once (the chunk
        // positions follow from the layout), and up to four parts in flight, in order.
        let body = futures_util::stream::iter(pieces)
            .map(move |(i, offset, part_plain, lo, hi)| {
                let client = client.clone();
                let store = store.clone();
                let bucket = bucket_s.clone();
                let key = key_s.clone();
                let layout = layout.clone();
                let record = record.clone();
                let mailbox = mailbox.clone();
                let fail = fail.clone();
                async move {
                    let r: Result<BodyStream> = async {
                        let h = profile.header_size() as u64;
                        let chunks = profile
                            .chunk_range(part_plain, lo, hi)
                            .map_err(Error::Tampered)?;
                        let (head, part) = futures_util::future::try_join(
                            store.get(&bucket, &key, Some(offset..offset + h)),
                            store.get(
                                &bucket,
                                &key,
                                Some(offset + chunks.stored_start..offset + chunks.stored_end),
                            ),
                        )
                        .await?;
                        let hb = collect(head.body, profile.header_size()).await?;
                        let header = Header::parse(&hb).map_err(Error::Tampered)?;
                        if header.profile() != profile {
                            return Err(tampered("a part with another profile"));
                        }
                        check_part(&header, layout.upload(), &mailbox, &(i + 1).to_string())?;
                        layout.check_part(i, &header).map_err(Error::Tampered)?;
                        let binding = Binding::new(&bucket, &key).map_err(Error::Tampered)?;
                        let unlocked = client.unlock(&header, &binding, None).await?;
                        layout
                            .check_tag(i, &record, unlocked.layout_key())
                            .map_err(Error::Tampered)?;
                        codec::open_range_body(&unlocked, chunks, part.body, fail.clone())
                    }
                    .await;
                    r.map_err(|e| {
                        let io = std::io::Error::other(e.to_string());
                        fail.set_if_empty(e);
                        io
                    })
                }
            })
            .buffered(4)
            .try_flatten()
            .boxed();
        Ok(GetObject {
            info: ObjectInfo {
                len,
                etag: etag.as_deref().map(opaque_etag),
                last_modified,
                metadata,
                legacy: false,
            },
            range: Some(range),
            body: count(body, &self.metrics.bytes_out),
            failure,
        })
    }
}

struct PartsState {
    input: BodyStream,
    buf: BytesMut,
    client: Arc<Client>,
    binding: Binding,
    layout: Arc<Layout>,
    /// The metadata record the layout's tags cover.
    record: Arc<[u8]>,
    mailbox: String,
    header_size: usize,
    /// Part 1's profile: every part must have it.
    profile: Profile,
    sizes: Vec<u64>,
    index: usize,
    opener: Option<Opener>,
    left: u64,
    failure: Failure,
    done: bool,
}

impl PartsState {
    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = std::io::Error::other(e.to_string());
        self.failure.set_if_empty(e);
        self.done = true;
        io
    }

    async fn fill(&mut self, want: usize) -> Result<bool> {
        while self.buf.len() < want {
            match self.input.next().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                Some(Err(e)) => {
                    return Err(Error::UpstreamUnavailable(format!(
                        "reading the object: {e}"
                    )));
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Reads and unlocks the next part's header.
    async fn next_part(&mut self) -> Result<()> {
        if !self.fill(self.header_size).await? {
            return Err(Error::Tampered(custodia_envelope::Error::Truncation));
        }
        let hb = self.buf.split_to(self.header_size);
        let header = Header::parse(&hb).map_err(Error::Tampered)?;
        if header.profile() != self.profile {
            return Err(tampered("a part with another profile"));
        }
        check_part(
            &header,
            self.layout.upload(),
            &self.mailbox,
            &(self.index + 1).to_string(),
        )?;
        self.layout
            .check_part(self.index as u64, &header)
            .map_err(Error::Tampered)?;
        let unlocked = self.client.unlock(&header, &self.binding, None).await?;
        // Its tag, under its own layout key, before any of its plaintext is released.
        self.layout
            .check_tag(self.index as u64, &self.record, unlocked.layout_key())
            .map_err(Error::Tampered)?;
        self.opener = Some(unlocked.opener().map_err(Error::Tampered)?);
        self.left = self.sizes[self.index] - self.header_size as u64;
        Ok(())
    }

    /// The next verified plaintext, `None` at the verified end.
    async fn step(&mut self) -> Result<Option<Bytes>> {
        let mut out = Vec::new();
        loop {
            if self.opener.is_none() {
                if self.index == self.sizes.len() {
                    if !self.buf.is_empty() || self.fill(1).await? {
                        return Err(tampered("bytes after the last part"));
                    }
                    return Ok(None);
                }
                self.next_part().await?;
            }
            if self.buf.is_empty() && !self.fill(1).await? {
                return Err(Error::Tampered(custodia_envelope::Error::Truncation));
            }
            #[allow(clippy::cast_possible_truncation, reason = "min with a buffer length")]
            let take = (self.left.min(self.buf.len() as u64)) as usize;
            let data = self.buf.split_to(take);
            if let Some(o) = self.opener.as_mut() {
                o.update(&data, &mut out).map_err(Error::Tampered)?;
            }
            self.left -= take as u64;
            if self.left == 0
                && let Some(o) = self.opener.take()
            {
                o.finish(&mut out).map_err(Error::Tampered)?;
                self.index += 1;
            }
            if !out.is_empty() {
                return Ok(Some(Bytes::from(out)));
            }
        }
    }
}

fn parts_body(state: PartsState) -> BodyStream {
    futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.step().await {
            Ok(Some(b)) => Some((Ok(b), st)),
            Ok(None) => None,
            Err(e) => {
                let io = st.fail(e);
                Some((Err(io), st))
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use custodia_envelope::{
        Binding, Context, CustodianName, KeyVersion, Metadata, Profile, RecipientId,
        RecipientPublicKey, RecipientSecretKey, Region, SealOptions, SystemRandomness, seal,
    };

    /// A part header of `mailbox`'s upload `upload`, position `part`.
    fn part(mailbox: &str, upload: &str, part: &str) -> Header {
        let mut rng = SystemRandomness::new();
        let ie = Region::new("ie").unwrap();
        let secret = RecipientSecretKey::generate(&mut rng).unwrap();
        let recipient = RecipientPublicKey {
            id: RecipientId {
                region: ie.clone(),
                custodian: CustodianName::new("dublin").unwrap(),
                key_id: secret.key_id().unwrap(),
                key_version: KeyVersion(1),
            },
            public_key: secret.public_key().unwrap(),
        };
        let context = Context::new(mailbox, &ie)
            .unwrap()
            .with(CTX_UPLOAD, upload)
            .unwrap()
            .with(CTX_PART, part)
            .unwrap();
        let stored = seal(
            &SealOptions {
                profile: Profile::DEFAULT,
                context: &context,
                binding: &Binding::new("mail", "k").unwrap(),
                recipients: &[recipient],
                metadata: &Metadata::new(),
            },
            b"x",
            &mut rng,
        )
        .unwrap();
        Header::parse(&stored).unwrap()
    }

    #[test]
    fn part_etags_carry_the_part_envelope_and_parse_back() {
        let id = ObjectId([0xab; 32]);
        // A store ETag shaped like an object id and a colon (the store chooses it): its
        // ListParts form still names no envelope.
        let lookalike = format!("{}:x", "cd".repeat(32));
        for store in [
            "\"9b2cf535f27731c974343645a3985328\"",
            "abc-2",
            "x:y",
            lookalike.as_str(),
        ] {
            let k = DerivedKey::from_bytes([5; 32]);
            let with = part_etag(7, Some((&id, &k)), store);
            assert!(with.starts_with("\"pk-") && with.ends_with('"'));
            let inner = store.trim_matches('"').to_owned();
            let (n, sealed, e) = store_part_etag(&with).unwrap();
            let (i, key) = sealed.unwrap();
            assert_eq!((n, i, e), (7, id, inner.clone()));
            assert_eq!(key.expose(), k.expose());
            // ListParts' form names no envelope: a completion with it is refused.
            let without = part_etag(7, None, store);
            assert!(without.starts_with("\"q-"));
            assert!(matches!(
                store_part_etag(&without),
                Some((7, None, e)) if e == inner
            ));
            // A `p-` ETag of an older gateway (no layout key) is no part ETag at all, even
            // when its store ETag is shaped like a key: refused, the part is sent again.
            let old = format!(
                "\"p-{}\"",
                hex::encode(format!("7:{}:{inner}", hex::encode(id.0)))
            );
            assert_eq!(store_part_etag(&old).map(|(n, _, _)| n), None);
        }
        assert_eq!(store_part_etag("\"9b2cf535\""), None);
        assert_eq!(store_part_etag("\"p-zz\""), None);
        // A `p-` ETag without an id (as gateways wrote before part binding): not one.
        let old = format!("\"p-{}\"", hex::encode("7:9b2cf535"));
        assert_eq!(store_part_etag(&old), None);
    }

    #[test]
    fn a_record_of_another_mailboxs_upload_is_refused_before_it_is_opened() {
        let mine = part("brian@example.ie", "u1", "2");
        assert!(check_part(&mine, "u1", "brian@example.ie", "2").is_ok());
        // Another mailbox's part, layout or metadata record with the same upload id and
        // position (a forged first part names the victim's upload): refused.
        for what in ["2", "layout", "metadata"] {
            let theirs = part("aoife@example.ie", "u1", what);
            assert!(matches!(
                check_part(&theirs, "u1", "brian@example.ie", what),
                Err(Error::WrongMailbox)
            ));
        }
        assert!(check_part(&mine, "u2", "brian@example.ie", "2").is_err());
        assert!(check_part(&mine, "u1", "brian@example.ie", "3").is_err());
    }
}
