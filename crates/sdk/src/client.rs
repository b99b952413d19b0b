//! The application-facing client: seal and open whole objects, ranges and streams, batch
//! unwraps, and rewraps after a custodian's key rotation.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use custodia_custodian::approval::SignedApproval;
use custodia_custodian::client::Item;
use custodia_envelope::{
    Binding, Context, CustodianName, Header, Metadata, PREFIX_LEN, Profile, Region, SealOptions,
    Sealer, Share, SystemRandomness, Unlocked, seal,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cache::{CacheConfig, DekCache};
use crate::directory::Directory;
use crate::error::{Error, Result, copy_custodian_error};
use crate::policy::Policy;

/// A whole object opened: its verified plaintext and sealed metadata.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The sealed metadata (user metadata, client checksums).
    pub metadata: Metadata,
}

/// Counters of a client's work since it was built (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Objects unlocked with a cached data key (no custodian call).
    pub cache_hits: u64,
    /// Unwrap calls made to custodians (one per custodian per batch).
    pub custodian_calls: u64,
    /// Unwrap calls that failed or were denied.
    pub custodian_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    cache_hits: AtomicU64,
    custodian_calls: AtomicU64,
    custodian_failures: AtomicU64,
}

/// Where [`Client::open_range`] fetches stored bytes from (an object store, a file...).
pub trait RangeSource {
    /// The stored bytes `range.start .. range.end` of the object (exactly that many).
    fn read(&self, range: Range<u64>) -> impl Future<Output = std::io::Result<Vec<u8>>> + Send;
}

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    directory: Arc<Directory>,
    policy: Policy,
    profile: Profile,
    cache: CacheConfig,
}

impl ClientBuilder {
    /// The deployment's profile for new objects (default [`Profile::DEFAULT`]). Objects
    /// sealed under another profile still open.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// The DEK cache (default [`CacheConfig::default`]; [`CacheConfig::DISABLED`] turns it
    /// off).
    #[must_use]
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// The client.
    #[must_use]
    pub fn build(self) -> Client {
        Client {
            directory: self.directory,
            policy: self.policy,
            profile: self.profile,
            cache: DekCache::new(self.cache),
            counters: Counters::default(),
        }
    }
}

/// Seals and opens mailbox data in-process, exactly as the gateway does.
///
/// * Sealing needs only the cached manifests: the mailbox's region comes from the
///   [`Policy`], the recipients (all custodians of that region, n-of-n) from the
///   [`Directory`]. No custodian round trip.
/// * Opening asks each custodian named in the header for its share (one call per custodian,
///   also for batches, all custodians at once), rebuilds the data key, verifies commitment and MAC, then opens.
///   Data keys are cached for re-reads, except when obtained with an approval.
#[derive(Debug)]
pub struct Client {
    directory: Arc<Directory>,
    policy: Policy,
    profile: Profile,
    cache: DekCache,
    counters: Counters,
}

/// Where each share of a batch goes and what came back.
struct Batch {
    shares: Vec<Vec<Option<Share>>>,
    errors: Vec<Option<Error>>,
}

impl Client {
    /// A builder over `directory` (shared, so the application can keep refreshing it) and
    /// the residency `policy`.
    #[must_use]
    pub fn builder(directory: Arc<Directory>, policy: Policy) -> ClientBuilder {
        ClientBuilder {
            directory,
            policy,
            profile: Profile::DEFAULT,
            cache: CacheConfig::default(),
        }
    }

    /// The directory this client seals to.
    #[must_use]
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Number of data keys currently cached.
    #[must_use]
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    /// What this client has done so far: cache hits and custodian calls.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            cache_hits: self.counters.cache_hits.load(Ordering::Relaxed),
            custodian_calls: self.counters.custodian_calls.load(Ordering::Relaxed),
            custodian_failures: self.counters.custodian_failures.load(Ordering::Relaxed),
        }
    }

    /// The residency policy this client seals by.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Drops (and zeroizes) every cached data key.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    fn context_and_recipients(
        &self,
        mailbox: &str,
        extra: &[(&str, &str)],
    ) -> Result<(Context, Vec<custodia_envelope::RecipientPublicKey>)> {
        let region = self.policy.region_for(mailbox)?;
        let recipients = self.directory.recipients(&region)?;
        // Sealed under its canonical id, whatever spelling the caller used (region_for has
        // checked that it has one).
        let id = custodia_envelope::canonical_mailbox(mailbox).map_err(|reason| {
            Error::InvalidMailbox {
                mailbox: mailbox.to_owned(),
                reason,
            }
        })?;
        let mut context = Context::new(&id, &region)?;
        for (k, v) in extra {
            context = context.with(k, v)?;
        }
        Ok((context, recipients))
    }

    /// Runs `f` with the [`SealOptions`] for a new object of `mailbox` under `binding`: the
    /// mailbox's region and context from the policy, all of that region's custodians from
    /// the directory's cache, this client's profile.
    pub(crate) fn with_seal_options<T>(
        &self,
        mailbox: &str,
        binding: &Binding,
        metadata: &Metadata,
        f: impl FnOnce(&SealOptions<'_>) -> Result<T>,
    ) -> Result<T> {
        self.with_seal_options_in(mailbox, &[], binding, metadata, f)
    }

    /// [`Self::with_seal_options`] with `extra` entries in the authenticated context.
    fn with_seal_options_in<T>(
        &self,
        mailbox: &str,
        extra: &[(&str, &str)],
        binding: &Binding,
        metadata: &Metadata,
        f: impl FnOnce(&SealOptions<'_>) -> Result<T>,
    ) -> Result<T> {
        let (context, recipients) = self.context_and_recipients(mailbox, extra)?;
        f(&SealOptions {
            profile: self.profile,
            context: &context,
            binding,
            recipients: &recipients,
            metadata,
        })
    }

    /// Seals `plaintext` for `mailbox`, to be stored under `binding` (its final name).
    /// Returns the whole stored object. No network.
    ///
    /// # Errors
    /// [`Error::NoResidencyRule`], [`Error::NoCustodians`], [`Error::ManifestUnavailable`],
    /// [`Error::Envelope`] (e.g. metadata too large for the header).
    pub fn seal(
        &self,
        mailbox: &str,
        binding: &Binding,
        plaintext: &[u8],
        metadata: &Metadata,
    ) -> Result<Vec<u8>> {
        self.with_seal_options(mailbox, binding, metadata, |opts| {
            Ok(seal(opts, plaintext, &mut SystemRandomness::new())?)
        })
    }

    /// Opens a whole stored object read from `binding`.
    ///
    /// # Errors
    /// [`Error::Denied`] (e.g. `ApprovalRequired` for a caller outside the region),
    /// [`Error::Unavailable`] (retryable), [`Error::UnknownCustodian`], [`Error::Envelope`]
    /// for a malformed, tampered or moved object.
    pub async fn open(&self, binding: &Binding, stored: &[u8]) -> Result<Opened> {
        self.open_inner(binding, stored, None).await
    }

    /// As [`Self::open`], presenting a lawful-access `approval` to the custodian it names.
    /// The data key is never cached, and a cached key is never used.
    ///
    /// # Errors
    /// As [`Self::open`]; the custodian's approval denials as [`Error::Denied`].
    pub async fn open_with_approval(
        &self,
        binding: &Binding,
        stored: &[u8],
        approval: &SignedApproval,
    ) -> Result<Opened> {
        self.open_inner(binding, stored, Some(approval)).await
    }

    async fn open_inner(
        &self,
        binding: &Binding,
        stored: &[u8],
        approval: Option<&SignedApproval>,
    ) -> Result<Opened> {
        let header = Header::parse(stored)?;
        refuse_multipart_record(&header)?;
        let unlocked = self.unlock(&header, binding, approval).await?;
        let plaintext = unlocked.open(stored)?;
        Ok(Opened {
            plaintext,
            metadata: unlocked.metadata().clone(),
        })
    }

    /// Unlocks one header (cache, else its custodians). Low level: a multipart record's
    /// header is unlocked too (the gateway's multipart reader checks the layout itself);
    /// the whole-object opens ([`Self::open`], [`Self::open_stream`], [`Self::open_range`])
    /// refuse those.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub async fn unlock(
        &self,
        header: &Header,
        binding: &Binding,
        approval: Option<&SignedApproval>,
    ) -> Result<Unlocked> {
        let mut r = self.unlock_all(&[(header, binding)], approval).await;
        r.pop().unwrap_or(Err(
            custodia_envelope::Error::InvalidArgument("no header").into()
        ))
    }

    /// Unlocks many objects at once: one unwrap call per custodian for all of them (objects
    /// whose data key is cached need none). One result per object, in order.
    ///
    /// # Errors
    /// The outer result fails only for an empty batch; per-object failures are inside.
    pub async fn unwrap_many(
        &self,
        headers: &[(&Header, &Binding)],
    ) -> Result<Vec<Result<Unlocked, Error>>> {
        if headers.is_empty() {
            return Err(custodia_envelope::Error::InvalidArgument("empty batch").into());
        }
        Ok(self.unlock_all(headers, None).await)
    }

    async fn unlock_all(
        &self,
        items: &[(&Header, &Binding)],
        approval: Option<&SignedApproval>,
    ) -> Vec<Result<Unlocked>> {
        let mut out: Vec<Option<Result<Unlocked>>> = Vec::with_capacity(items.len());
        for (header, binding) in items {
            let cached = approval
                .is_none()
                .then(|| self.cache.get(header.object_id(), header.commitment()))
                .flatten();
            if cached.is_some() {
                self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            }
            out.push(cached.map(|dek| Ok(header.unlock_with_key(dek, binding)?)));
        }
        let pending: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
        if !pending.is_empty() {
            let headers: Vec<&Header> = pending.iter().map(|&i| items[i].0).collect();
            let mut batch = self.unwrap_batch(&headers, approval).await;
            for (k, &i) in pending.iter().enumerate() {
                let (header, binding) = items[i];
                let result = match batch.errors[k].take() {
                    Some(e) => Err(e),
                    None => {
                        let shares: Option<Vec<Share>> = batch.shares[k].drain(..).collect();
                        shares
                            .ok_or(Error::Envelope(custodia_envelope::Error::InvalidArgument(
                                "a share is missing",
                            )))
                            .and_then(|s| Ok(header.unlock(&s, binding)?))
                    }
                };
                if let (Ok(u), None) = (&result, approval) {
                    self.cache
                        .insert(header.object_id(), header.commitment(), u.data_key());
                }
                out[i] = Some(result);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or(Err(custodia_envelope::Error::InvalidArgument(
                    "object left unprocessed",
                )
                .into()))
            })
            .collect()
    }

    /// Asks every custodian named by the headers for its shares: one call per custodian.
    async fn unwrap_batch(&self, headers: &[&Header], approval: Option<&SignedApproval>) -> Batch {
        let mut groups: BTreeMap<(Region, CustodianName), Vec<(usize, usize)>> = BTreeMap::new();
        for (hi, h) in headers.iter().enumerate() {
            for (si, s) in h.stanzas().iter().enumerate() {
                groups
                    .entry((s.recipient.region.clone(), s.recipient.custodian.clone()))
                    .or_default()
                    .push((hi, si));
            }
        }
        let mut batch = Batch {
            shares: headers
                .iter()
                .map(|h| vec![None; h.stanzas().len()])
                .collect(),
            errors: headers.iter().map(|_| None).collect(),
        };
        // One call per custodian, all in flight at once: a region with several custodians
        // (n-of-n) costs one round trip, not n.
        let mut calls = Vec::new();
        for ((region, name), positions) in groups {
            let Some(&(h0, s0)) = positions.first() else {
                continue;
            };
            let Ok(entry) = self.directory.entry(&headers[h0].stanzas()[s0].recipient) else {
                for &(hi, _) in &positions {
                    batch.errors[hi].get_or_insert(Error::UnknownCustodian {
                        region: region.clone(),
                        custodian: name.clone(),
                    });
                }
                continue;
            };
            // An approval goes only to the custodian it was issued for.
            let approval = approval.filter(|a| {
                a.approval.region == region.as_str() && a.approval.custodian == name.as_str()
            });
            calls.push(async move {
                let items: Vec<Item<'_>> = positions
                    .iter()
                    .map(|&(hi, si)| Item {
                        object_id: headers[hi].object_id(),
                        context: headers[hi].context(),
                        stanza: &headers[hi].stanzas()[si],
                    })
                    .collect();
                let result = entry.client.unwrap(&items, approval).await;
                self.counters
                    .custodian_calls
                    .fetch_add(1, Ordering::Relaxed);
                let failed = result
                    .as_ref()
                    .map_or(true, |u| u.results.iter().any(Result::is_err));
                if failed {
                    self.counters
                        .custodian_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                (region, name, positions, result)
            });
        }
        for (region, name, positions, result) in futures_util::future::join_all(calls).await {
            match result {
                Ok(unwrapped) => {
                    for (&(hi, si), r) in positions.iter().zip(unwrapped.results) {
                        match r {
                            Ok(share) => batch.shares[hi][si] = Some(share),
                            Err(denial) => {
                                batch.errors[hi].get_or_insert(Error::Denied {
                                    region: region.clone(),
                                    custodian: name.clone(),
                                    denial,
                                });
                            }
                        }
                    }
                }
                Err(e) => {
                    for &(hi, _) in &positions {
                        batch.errors[hi].get_or_insert(Error::from_custodian(
                            &region,
                            &name,
                            copy_custodian_error(&e),
                        ));
                    }
                }
            }
        }
        batch
    }

    /// Opens plaintext bytes `start .. end` of the object whose `header` was read from
    /// `source` and whose stored length is `stored_len`, fetching only the chunks the range
    /// touches (one `source.read` call).
    ///
    /// # Errors
    /// [`Error::Envelope`] for a range outside the object or an invalid stored length, and
    /// chunk authentication failures; [`Error::Io`] from the source; as [`Self::open`].
    pub async fn open_range<S: RangeSource>(
        &self,
        binding: &Binding,
        header: &Header,
        stored_len: u64,
        range: Range<u64>,
        source: &S,
    ) -> Result<Vec<u8>> {
        refuse_multipart_record(header)?;
        let profile = header.profile();
        let plain_len = profile.plaintext_len(stored_len)?;
        if range.start == range.end && range.end <= plain_len {
            return Ok(Vec::new());
        }
        let chunks = profile.chunk_range(plain_len, range.start, range.end)?;
        let unlocked = self.unlock(header, binding, None).await?;
        let stored = source.read(chunks.stored_start..chunks.stored_end).await?;
        Ok(unlocked.open_range(&chunks, &stored)?)
    }

    /// The profile (header and chunk size) new objects are sealed with.
    #[must_use]
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Starts sealing a body for `mailbox` under `binding` when the caller drives the I/O
    /// itself (the gateway feeds HTTP body frames): returns the header, to be stored first,
    /// and the incremental [`Sealer`] for the body. The stored length of a body of `n` bytes
    /// is [`Profile::sealed_len`]`(n)` of [`Self::profile`]. No network.
    ///
    /// # Errors
    /// As [`Self::seal`].
    pub fn begin_seal(
        &self,
        mailbox: &str,
        binding: &Binding,
        metadata: &Metadata,
    ) -> Result<(Vec<u8>, Sealer)> {
        self.with_seal_options(mailbox, binding, metadata, |opts| {
            Ok(Sealer::begin(opts, &mut SystemRandomness::new())?)
        })
    }

    /// [`Self::begin_seal`] with `extra` entries in the object's authenticated context (e.g.
    /// the gateway's multipart upload id and part number). Readers see them in
    /// [`Header::context`]; they are bound into the header MAC and every key.
    ///
    /// # Errors
    /// As [`Self::seal`]; [`Error::Envelope`] for a context entry the format refuses.
    pub fn begin_seal_in(
        &self,
        mailbox: &str,
        extra: &[(&str, &str)],
        binding: &Binding,
        metadata: &Metadata,
    ) -> Result<(Vec<u8>, Sealer)> {
        self.with_seal_options_in(mailbox, extra, binding, metadata, |opts| {
            Ok(Sealer::begin(opts, &mut SystemRandomness::new())?)
        })
    }

    /// [`Self::seal`] with `extra` entries in the object's authenticated context.
    ///
    /// # Errors
    /// As [`Self::begin_seal_in`].
    pub fn seal_in(
        &self,
        mailbox: &str,
        extra: &[(&str, &str)],
        binding: &Binding,
        plaintext: &[u8],
        metadata: &Metadata,
    ) -> Result<Vec<u8>> {
        self.with_seal_options_in(mailbox, extra, binding, metadata, |opts| {
            Ok(seal(opts, plaintext, &mut SystemRandomness::new())?)
        })
    }

    /// Seals what `reader` yields for `mailbox` under `binding`, writing the stored object
    /// (header first) to `writer`. Memory: one chunk. Returns the stored bytes written.
    /// No network. On error the written output is incomplete and must be discarded.
    ///
    /// # Errors
    /// As [`Self::seal`]; [`Error::Io`].
    pub async fn seal_stream<R, W>(
        &self,
        mailbox: &str,
        binding: &Binding,
        metadata: &Metadata,
        mut reader: R,
        mut writer: W,
    ) -> Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let (header, sealer) = self.begin_seal(mailbox, binding, metadata)?;
        writer.write_all(&header).await?;
        let body = pump(sealer, &mut reader, &mut writer, self.profile.chunk_size()).await?;
        Ok(header.len() as u64 + body)
    }

    /// Opens a stored object read from `reader` (read under `binding`), writing verified
    /// plaintext to `writer`. Memory: the header and one chunk. Returns the plaintext bytes
    /// written. Each chunk is written only after it verified, but an error (truncation,
    /// tampering) can come after earlier chunks were written: treat any error as "discard
    /// the output" (abort the response), never as a short success.
    ///
    /// # Errors
    /// As [`Self::open`]; [`Error::Io`].
    pub async fn open_stream<R, W>(
        &self,
        binding: &Binding,
        mut reader: R,
        mut writer: W,
    ) -> Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut header_bytes = vec![0u8; PREFIX_LEN];
        reader.read_exact(&mut header_bytes).await?;
        let profile = Profile::from_prefix(&header_bytes)?;
        header_bytes.resize(profile.header_size(), 0);
        reader.read_exact(&mut header_bytes[PREFIX_LEN..]).await?;
        let header = Header::parse(&header_bytes)?;
        refuse_multipart_record(&header)?;
        let unlocked = self.unlock(&header, binding, None).await?;
        let opener = unlocked.opener()?;
        let chunk = profile.chunk_size() + custodia_envelope::TAG_LEN;
        pump(opener, &mut reader, &mut writer, chunk).await
    }

    /// Rewraps an object's stanzas to their custodians' current key versions through
    /// `/v1/rewrap` (no share leaves a custodian; no data key is rebuilt). Takes the stored
    /// header (or the whole object: only the header is read) and returns the new header
    /// bytes, the same length: write them over the old header; the body is untouched.
    /// Stanzas already at their custodian's active version (per the directory's cached
    /// manifests: [`Directory::refresh`] after a rotation) are left as they are.
    ///
    /// # Errors
    /// [`Error::Denied`] (rewrap is for in-region callers with the rewrap role),
    /// [`Error::Unavailable`], [`Error::UnknownCustodian`], [`Error::Envelope`].
    pub async fn rewrap(&self, stored_header: &[u8]) -> Result<Vec<u8>> {
        let mut header = Header::parse(stored_header)?;
        let original = header.clone();
        for stanza in original.stanzas() {
            let entry = self.directory.entry(&stanza.recipient)?;
            let Some(active) = self.directory.active_version(entry) else {
                continue;
            };
            if stanza.recipient.key_version.0 >= active {
                continue;
            }
            let item = Item {
                object_id: original.object_id(),
                context: original.context(),
                stanza,
            };
            let mut results = entry
                .client
                .rewrap(&[item])
                .await
                .map_err(|e| Error::from_custodian(&entry.region, &entry.name, e))?;
            let new = match results.pop() {
                Some(Ok(s)) => s,
                Some(Err(denial)) => {
                    return Err(Error::Denied {
                        region: entry.region.clone(),
                        custodian: entry.name.clone(),
                        denial,
                    });
                }
                None => {
                    return Err(Error::Unavailable {
                        region: entry.region.clone(),
                        custodian: entry.name.clone(),
                        source: custodia_custodian::Error::Protocol("empty rewrap reply".into()),
                    });
                }
            };
            if !new.recipient.same_custodian(&stanza.recipient) {
                return Err(Error::Unavailable {
                    region: entry.region.clone(),
                    custodian: entry.name.clone(),
                    source: custodia_custodian::Error::Protocol(
                        "rewrap reply names another custodian".into(),
                    ),
                });
            }
            header.replace_stanza(new)?;
        }
        Ok(header.to_bytes())
    }
}

/// A streaming stage of the envelope: the sealer or the opener.
trait Stage {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> custodia_envelope::Result<()>;
    fn finish(self, out: &mut Vec<u8>) -> custodia_envelope::Result<()>;
}

impl Stage for Sealer {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> custodia_envelope::Result<()> {
        Sealer::update(self, input, out)
    }
    fn finish(self, out: &mut Vec<u8>) -> custodia_envelope::Result<()> {
        Sealer::finish(self, out)
    }
}

impl Stage for custodia_envelope::Opener {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> custodia_envelope::Result<()> {
        custodia_envelope::Opener::update(self, input, out)
    }
    fn finish(self, out: &mut Vec<u8>) -> custodia_envelope::Result<()> {
        custodia_envelope::Opener::finish(self, out)
    }
}

/// Runs `reader` through `stage` into `writer`, `buf_len` bytes at a time (memory: about two
/// buffers). Returns the bytes written.
async fn pump<S, R, W>(mut stage: S, reader: &mut R, writer: &mut W, buf_len: usize) -> Result<u64>
where
    S: Stage,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buf_len];
    let mut out = Vec::with_capacity(buf_len + 2 * custodia_envelope::TAG_LEN);
    let mut written = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stage.update(&buf[..n], &mut out)?;
        if !out.is_empty() {
            writer.write_all(&out).await?;
            written += out.len() as u64;
            out.clear();
        }
    }
    stage.finish(&mut out)?;
    writer.write_all(&out).await?;
    written += out.len() as u64;
    writer.flush().await?;
    Ok(written)
}

/// The context key that marks a record of a multipart object (reserved: docs/FORMAT.md §2.2).
pub(crate) const MULTIPART_UPLOAD_KEY: &str = "upload";

/// Refuses a header whose context marks it as one record of a multipart object: what every
/// whole-object open of this client checks, for callers that unlock headers themselves.
///
/// # Errors
/// [`Error::MultipartRecord`].
pub fn refuse_multipart_record(header: &Header) -> Result<()> {
    match header.context().get(MULTIPART_UPLOAD_KEY) {
        Some(upload) => Err(Error::MultipartRecord {
            upload: upload.to_owned(),
        }),
        None => Ok(()),
    }
}
