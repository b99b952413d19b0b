//! Sealing: a fresh header for an object, then its body through the STREAM codec.

use crate::binding::Binding;
use crate::header::{Header, MAC_LEN, MAX_STANZAS, ObjectId, Profile, TAG_LEN};
use crate::keys::ObjectKeys;
use crate::pairs::{Context, Metadata};
use crate::protect::{compute_mac, seal_metadata};
use crate::rng::Randomness;
use crate::secret::{DataKey, DerivedKey};
use crate::split::split;
use crate::stanza::Stanza;
use crate::stream::ChunkSealer;
use crate::wrap::{RecipientPublicKey, wrap_share};
use crate::{Error, Result};

/// What an object is sealed for.
#[derive(Debug, Clone, Copy)]
pub struct SealOptions<'a> {
    /// The deployment's profile.
    pub profile: Profile,
    /// Mailbox, region and any other authenticated context.
    pub context: &'a Context,
    /// The object's final name.
    pub binding: &'a Binding,
    /// The custodians of the context's region (one share each, n-of-n).
    pub recipients: &'a [RecipientPublicKey],
    /// Sealed metadata (user metadata, client checksums).
    pub metadata: &'a Metadata,
}

/// Checks a recipient set and returns it sorted by custodian.
fn sorted_recipients<'a>(
    context: &Context,
    recipients: &'a [RecipientPublicKey],
) -> Result<Vec<&'a RecipientPublicKey>> {
    if recipients.is_empty() {
        return Err(Error::InvalidArgument(
            "an object needs at least one recipient",
        ));
    }
    if recipients.len() > MAX_STANZAS {
        return Err(Error::InvalidArgument("more than 16 recipients"));
    }
    if recipients.iter().any(|r| r.id.region != *context.region()) {
        return Err(Error::RegionMismatch);
    }
    let mut sorted: Vec<_> = recipients.iter().collect();
    sorted.sort_by(|a, b| a.id.custodian.cmp(&b.id.custodian));
    if sorted
        .windows(2)
        .any(|w| w[0].id.custodian == w[1].id.custodian)
    {
        return Err(Error::InvalidArgument("a custodian is named twice"));
    }
    Ok(sorted)
}

/// Splits and wraps `dek` to `recipients` (sorted, checked).
pub(crate) fn make_stanzas(
    dek: &DataKey,
    object_id: &ObjectId,
    context: &Context,
    recipients: &[RecipientPublicKey],
    rng: &mut dyn Randomness,
) -> Result<Vec<Stanza>> {
    let sorted = sorted_recipients(context, recipients)?;
    let shares = split(dek, sorted.len(), rng)?;
    let ctx = context.to_bytes();
    sorted
        .iter()
        .zip(&shares)
        .map(|(r, s)| wrap_share(s, r, object_id, &ctx, rng))
        .collect()
}

/// Assembles a header around `stanzas`: seals the metadata to fill the header and MACs it.
pub(crate) fn assemble(
    profile: Profile,
    object_id: ObjectId,
    context: &Context,
    keys: &ObjectKeys,
    stanzas: Vec<Stanza>,
    metadata: &Metadata,
    binding: &Binding,
) -> Result<Header> {
    let fixed = Header::fixed_len(context, &stanzas);
    let needed = fixed + metadata.encoded_len() + TAG_LEN + MAC_LEN;
    let available = profile.header_size();
    if needed > available {
        return Err(Error::HeaderTooLarge { needed, available });
    }
    let sealed_metadata = seal_metadata(keys, metadata, available - fixed - MAC_LEN)?;
    let mut header = Header {
        profile,
        object_id,
        context: context.clone(),
        commitment: *keys.commitment(),
        stanzas,
        sealed_metadata,
        mac: [0; MAC_LEN],
    };
    header.mac = compute_mac(keys, &header, &binding.to_bytes());
    Ok(header)
}

/// Draws a fresh data key and object id and builds the header for `opts`.
///
/// # Errors
/// [`Error::RegionMismatch`] if a recipient is outside the context's region;
/// [`Error::InvalidArgument`] for no recipients or a custodian named twice;
/// [`Error::HeaderTooLarge`] if context, stanzas and metadata do not fit the profile;
/// [`Error::Randomness`].
pub fn new_header(
    opts: &SealOptions<'_>,
    rng: &mut dyn Randomness,
) -> Result<(Header, ObjectKeys)> {
    let dek = DataKey::random(rng)?;
    let mut id = [0u8; 32];
    rng.fill(&mut id)?;
    let object_id = ObjectId(id);
    let stanzas = make_stanzas(&dek, &object_id, opts.context, opts.recipients, rng)?;
    let keys = ObjectKeys::derive(
        &dek,
        &object_id,
        &opts.context.to_bytes(),
        &opts.binding.to_bytes(),
    )?;
    let header = assemble(
        opts.profile,
        object_id,
        opts.context,
        &keys,
        stanzas,
        opts.metadata,
        opts.binding,
    )?;
    Ok((header, keys))
}

/// Seals a body given as a stream of byte slices of any size. Memory: one chunk.
pub struct Sealer {
    chunks: ChunkSealer,
    pending: Vec<u8>,
    chunk_size: usize,
    layout_key: DerivedKey,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Sealer({:?})", self.chunks)
    }
}

impl Sealer {
    /// Starts sealing an object: returns its header bytes (write them first) and the sealer
    /// for its body.
    ///
    /// # Errors
    /// As [`new_header`].
    pub fn begin(opts: &SealOptions<'_>, rng: &mut dyn Randomness) -> Result<(Vec<u8>, Self)> {
        let (header, keys) = new_header(opts, rng)?;
        Ok((header.to_bytes(), Self::with_keys(&keys, opts.profile)?))
    }

    /// A sealer for the body of an object whose keys are `keys`.
    ///
    /// # Errors
    /// Only if ring refuses the key.
    pub fn with_keys(keys: &ObjectKeys, profile: Profile) -> Result<Self> {
        Ok(Self {
            chunks: ChunkSealer::new(keys.chunk_key(), profile)?,
            pending: Vec::with_capacity(profile.chunk_size() + TAG_LEN),
            chunk_size: profile.chunk_size(),
            layout_key: keys.layout_key().clone(),
        })
    }

    /// The object's layout key ([`ObjectKeys::layout_key`]): the gateway keeps part 1's to
    /// authenticate the layout at completion.
    #[must_use]
    pub fn layout_key(&self) -> &DerivedKey {
        &self.layout_key
    }

    /// The zero-copy chunk interface, for callers that lay out their own buffers. Only before
    /// any [`Self::update`].
    ///
    /// # Errors
    /// [`Error::ChunkMisuse`] if bytes were already fed through [`Self::update`].
    pub fn into_chunks(self) -> Result<ChunkSealer> {
        if !self.pending.is_empty() || self.chunks.next_index() != 0 {
            return Err(Error::ChunkMisuse("into_chunks after update"));
        }
        Ok(self.chunks)
    }

    /// Feeds plaintext; appends every completed stored chunk to `out`.
    ///
    /// # Errors
    /// [`Error::ChunkMisuse`] only on counter exhaustion.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() {
            if self.pending.len() == self.chunk_size {
                self.flush(false, out)?;
            }
            let take = (self.chunk_size - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        Ok(())
    }

    /// Seals the final chunk and appends it to `out`.
    ///
    /// # Errors
    /// As [`Self::update`].
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        self.flush(true, out)
    }

    fn flush(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let tag = self.chunks.seal_chunk(&mut self.pending, last)?;
        out.extend_from_slice(&self.pending);
        out.extend_from_slice(&tag);
        self.pending.clear();
        Ok(())
    }
}

/// Seals `plaintext` into a new buffer holding the whole stored object: one pass, each
/// chunk copied into its stored position and sealed there while it is in cache.
///
/// # Errors
/// As [`new_header`].
pub fn seal(opts: &SealOptions<'_>, plaintext: &[u8], rng: &mut dyn Randomness) -> Result<Vec<u8>> {
    let (header, keys) = new_header(opts, rng)?;
    let profile = opts.profile;
    let total = profile
        .sealed_len(plaintext.len() as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Error::InvalidArgument("object too large"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header.to_bytes());
    let sealer = ChunkSealer::new(keys.chunk_key(), profile)?;
    let c = profile.chunk_size();
    let n = usize::try_from(profile.chunk_count(plaintext.len() as u64))
        .map_err(|_| Error::InvalidArgument("object too large"))?;
    for i in 0..n {
        let chunk = &plaintext[i * c..plaintext.len().min((i + 1) * c)];
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = sealer.seal_at(i as u64, &mut out[start..], i + 1 == n)?;
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

/// Seals the plaintext in `buf` in place: on return `buf` holds the stored object. Chunks
/// are moved back to front to make room for the header and tags, each sealed where it lands.
/// Give `buf` a capacity of `profile.sealed_len(len)` to avoid a reallocation.
///
/// # Errors
/// As [`new_header`].
pub fn seal_in_place(
    opts: &SealOptions<'_>,
    buf: &mut Vec<u8>,
    rng: &mut dyn Randomness,
) -> Result<()> {
    let (header, keys) = new_header(opts, rng)?;
    let profile = opts.profile;
    let plain_len = buf.len();
    let total = profile
        .sealed_len(plain_len as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Error::InvalidArgument("object too large"))?;
    let n = usize::try_from(profile.chunk_count(plain_len as u64))
        .map_err(|_| Error::InvalidArgument("object too large"))?;
    let (h, c) = (profile.header_size(), profile.chunk_size());
    buf.resize(total, 0);
    // Back to front, so every chunk moves up into free space; each is sealed right after
    // its move, while it is still in cache.
    let sealer = ChunkSealer::new(keys.chunk_key(), profile)?;
    for i in (0..n).rev() {
        let src = i * c;
        let len = c.min(plain_len - src);
        let dst = h + i * (c + TAG_LEN);
        buf.copy_within(src..src + len, dst);
        let tag = sealer.seal_at(i as u64, &mut buf[dst..dst + len], i + 1 == n)?;
        buf[dst + len..dst + len + TAG_LEN].copy_from_slice(&tag);
    }
    buf[..h].copy_from_slice(&header.to_bytes());
    Ok(())
}
