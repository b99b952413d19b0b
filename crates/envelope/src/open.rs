//! Opening: unlock a parsed header with its shares (commitment, then MAC, then metadata),
//! then open the body whole, streamed, or by range.

use crate::binding::Binding;
use crate::header::{Header, TAG_LEN};
use crate::keys::ObjectKeys;
use crate::pairs::Metadata;
use crate::protect::{open_metadata, verify_mac};
use crate::range::ChunkRange;
use crate::rng::Randomness;
use crate::seal::{assemble, make_stanzas};
use crate::secret::{DataKey, Share};
use crate::split::combine;
use crate::stream::ChunkOpener;
use crate::wrap::{RecipientPublicKey, RecipientSecretKey, unwrap_share};
use crate::{Error, Result};

impl Header {
    /// Unwraps every stanza with locally held private keys (tests, tools, single-holder
    /// deployments). A gateway asks the custodians instead.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if no key matches a stanza's key id;
    /// [`Error::StanzaAuthentication`] if a stanza does not open.
    pub fn unwrap_with(&self, secrets: &[RecipientSecretKey]) -> Result<Vec<Share>> {
        let ctx = self.context.to_bytes();
        self.stanzas
            .iter()
            .map(|s| {
                let secret = secrets
                    .iter()
                    .find(|k| k.key_id().is_ok_and(|id| id == s.recipient.key_id))
                    .ok_or(Error::InvalidArgument(
                        "no private key for a recipient stanza",
                    ))?;
                unwrap_share(secret, s, &self.object_id, &ctx)
            })
            .collect()
    }

    /// Rebuilds the data key from all shares (in stanza order) and verifies the header for
    /// the name `binding`: key commitment (constant time), then header MAC, then metadata.
    ///
    /// # Errors
    /// [`Error::CommitmentMismatch`], [`Error::HeaderAuthentication`],
    /// [`Error::MetadataAuthentication`]; [`Error::InvalidArgument`] for a wrong share count.
    pub fn unlock(&self, shares: &[Share], binding: &Binding) -> Result<Unlocked> {
        if shares.len() != self.stanzas.len() {
            return Err(Error::InvalidArgument("one share per stanza is needed"));
        }
        self.unlock_with_key(combine(shares)?, binding)
    }

    /// As [`Self::unlock`], with a data key already rebuilt (e.g. from a DEK cache).
    ///
    /// # Errors
    /// As [`Self::unlock`].
    pub fn unlock_with_key(&self, dek: DataKey, binding: &Binding) -> Result<Unlocked> {
        let binding_bytes = binding.to_bytes();
        let keys = ObjectKeys::derive(
            &dek,
            &self.object_id,
            &self.context.to_bytes(),
            &binding_bytes,
        )?;
        keys.check_commitment(&self.commitment)?;
        verify_mac(&keys, self, &binding_bytes)?;
        let metadata = open_metadata(&keys, &self.sealed_metadata)?;
        Ok(Unlocked {
            header: self.clone(),
            dek,
            keys,
            metadata,
            binding: binding.clone(),
        })
    }
}

/// A header whose commitment and MAC have verified: the object's keys and metadata.
pub struct Unlocked {
    header: Header,
    dek: DataKey,
    keys: ObjectKeys,
    metadata: Metadata,
    binding: Binding,
}

impl core::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Unlocked")
            .field("object_id", &self.header.object_id)
            .finish_non_exhaustive()
    }
}

impl Unlocked {
    /// The verified header.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The verified sealed metadata.
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The layout key ([`ObjectKeys::layout_key`]): a multipart layout naming this envelope
    /// as its part 1 must verify under it.
    #[must_use]
    pub fn layout_key(&self) -> &crate::DerivedKey {
        self.keys.layout_key()
    }

    /// The data key (e.g. for a DEK cache). Treat as secret.
    #[must_use]
    pub fn data_key(&self) -> &DataKey {
        &self.dek
    }

    /// A streaming opener for the body.
    ///
    /// # Errors
    /// Only if ring refuses the key.
    pub fn opener(&self) -> Result<Opener> {
        Ok(Opener {
            chunks: ChunkOpener::new(self.keys.chunk_key(), self.header.profile, 0)?,
            pending: Vec::with_capacity(self.stored_chunk_len()),
            stored_chunk: self.stored_chunk_len(),
            failed: false,
        })
    }

    /// The zero-copy chunk interface starting at chunk `first_index` (range reads).
    ///
    /// # Errors
    /// Only if ring refuses the key.
    pub fn chunk_opener(&self, first_index: u64) -> Result<ChunkOpener> {
        ChunkOpener::new(self.keys.chunk_key(), self.header.profile, first_index)
    }

    fn stored_chunk_len(&self) -> usize {
        self.header.profile.chunk_size() + TAG_LEN
    }

    /// Opens a whole stored object (header included) in place: on success `object` holds
    /// the plaintext. On failure its contents are unspecified and must be discarded.
    ///
    /// # Errors
    /// [`Error::InvalidStoredLength`], [`Error::ChunkAuthentication`], [`Error::Truncation`].
    pub fn open_in_place(&self, object: &mut Vec<u8>) -> Result<()> {
        let profile = self.header.profile;
        let plain_len = usize::try_from(profile.plaintext_len(object.len() as u64)?)
            .map_err(|_| Error::InvalidArgument("object too large"))?;
        let n = usize::try_from(profile.chunk_count(plain_len as u64))
            .map_err(|_| Error::InvalidArgument("object too large"))?;
        let (h, c) = (profile.header_size(), profile.chunk_size());
        let mut opener = self.chunk_opener(0)?;
        for i in 0..n {
            let src = h + i * (c + TAG_LEN);
            let len = c.min(plain_len - i * c);
            if i + 1 == n {
                let stored = &mut object[src..src + len + TAG_LEN];
                opener.open_final(stored)?;
                object.copy_within(src..src + len, i * c);
            } else {
                // Decrypt and move down in one pass.
                opener.open_chunk_within(&mut object[i * c..src + len + TAG_LEN], src - i * c)?;
            }
        }
        object.truncate(plain_len);
        Ok(())
    }

    /// Opens a whole stored object into a new buffer.
    ///
    /// # Errors
    /// As [`Self::open_in_place`].
    pub fn open(&self, object: &[u8]) -> Result<Vec<u8>> {
        let mut buf = object.to_vec();
        self.open_in_place(&mut buf)?;
        Ok(buf)
    }

    /// Opens the stored bytes `range.stored_start .. range.stored_end` (as returned by
    /// [`Profile::chunk_range`](crate::Profile::chunk_range)) and returns exactly the
    /// plaintext of the range.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `stored` is not the range's length;
    /// [`Error::ChunkAuthentication`].
    pub fn open_range(&self, range: &ChunkRange, stored: &[u8]) -> Result<Vec<u8>> {
        let expected = range.stored_end - range.stored_start;
        if stored.len() as u64 != expected {
            return Err(Error::InvalidArgument(
                "stored bytes do not match the range",
            ));
        }
        let full = self.stored_chunk_len();
        let mut opener = self.chunk_opener(range.first_chunk)?;
        let mut plain = Vec::with_capacity(stored.len());
        let mut buf = Vec::with_capacity(full);
        let count = usize::try_from(range.chunk_count)
            .map_err(|_| Error::InvalidArgument("range too large"))?;
        for (i, chunk) in stored.chunks(full).enumerate() {
            buf.clear();
            buf.extend_from_slice(chunk);
            let last = range.includes_final && i + 1 == count;
            plain.extend_from_slice(opener.open_chunk(&mut buf, last)?);
        }
        let skip = usize::try_from(range.skip).unwrap_or(usize::MAX);
        let len = usize::try_from(range.len).unwrap_or(usize::MAX);
        plain
            .get(skip..skip.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or(Error::InvalidArgument("range outside the opened chunks"))
    }

    /// A new header for another recipient set (same region), from a holder of the data key:
    /// fresh shares and stanzas; body, object id, context and commitment unchanged. Pass
    /// `metadata` to replace the sealed metadata.
    ///
    /// # Errors
    /// As [`crate::new_header`].
    pub fn reheader(
        &self,
        recipients: &[RecipientPublicKey],
        metadata: Option<&Metadata>,
        rng: &mut dyn Randomness,
    ) -> Result<Header> {
        let h = &self.header;
        let stanzas = make_stanzas(&self.dek, &h.object_id, &h.context, recipients, rng)?;
        assemble(
            h.profile,
            h.object_id,
            &h.context,
            &self.keys,
            stanzas,
            metadata.unwrap_or(&self.metadata),
            &self.binding,
        )
    }
}

/// Opens a body given as a stream of byte slices of any size. Memory: one stored chunk.
/// Plaintext of a chunk is appended only after that chunk verified.
pub struct Opener {
    chunks: ChunkOpener,
    pending: Vec<u8>,
    stored_chunk: usize,
    failed: bool,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Opener({:?})", self.chunks)
    }
}

impl Opener {
    /// An opener for the body of an object whose keys are `keys` (the writer's own check of
    /// what it stored, without unwrapping a stanza: a migration verifies its copy this way).
    ///
    /// # Errors
    /// Only if ring refuses the key.
    pub fn with_keys(keys: &ObjectKeys, profile: crate::header::Profile) -> Result<Self> {
        let stored_chunk = profile.chunk_size() + TAG_LEN;
        Ok(Self {
            chunks: ChunkOpener::new(keys.chunk_key(), profile, 0)?,
            pending: Vec::with_capacity(stored_chunk),
            stored_chunk,
            failed: false,
        })
    }

    /// Feeds stored body bytes (after the header); appends verified plaintext to `out`.
    ///
    /// # Errors
    /// [`Error::ChunkAuthentication`]; after an error the opener refuses further input.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::ChunkMisuse("opener used after an error"));
        }
        while !input.is_empty() {
            if self.pending.len() == self.stored_chunk {
                // A full stored chunk with more bytes after it: not the final chunk.
                match self.chunks.open_chunk(&mut self.pending, false) {
                    Ok(plain) => out.extend_from_slice(plain),
                    Err(e) => {
                        self.failed = true;
                        return Err(e);
                    }
                }
                self.pending.clear();
            }
            let take = (self.stored_chunk - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        Ok(())
    }

    /// Ends the body: opens the final chunk.
    ///
    /// # Errors
    /// [`Error::Truncation`] if the body ended early; [`Error::ChunkAuthentication`].
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::ChunkMisuse("opener used after an error"));
        }
        if self.pending.len() < TAG_LEN {
            return Err(Error::Truncation);
        }
        let plain = self.chunks.open_final(&mut self.pending)?;
        out.extend_from_slice(plain);
        Ok(())
    }
}

/// Parses, unlocks with local private keys, and opens a whole stored object.
///
/// # Errors
/// Any parse, unwrap, authentication or length error.
pub fn open_with_keys(
    object: &[u8],
    secrets: &[RecipientSecretKey],
    binding: &Binding,
) -> Result<(Vec<u8>, Metadata)> {
    let header = Header::parse(object)?;
    let unlocked = header.unlock(&header.unwrap_with(secrets)?, binding)?;
    let plain = unlocked.open(object)?;
    Ok((plain, unlocked.metadata.clone()))
}
