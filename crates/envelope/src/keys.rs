//! The key schedule: every symmetric key of an object, derived from its data key (RFC 5869
//! HKDF-SHA256, through ring).
//!
//! ```text
//! prk            = HKDF-Extract(salt = "custodia object v1" || object_id, IKM = DEK)
//! commitment     = HKDF-Expand(prk, "custodia v1 key commitment", 32)
//! mac_key        = HKDF-Expand(prk, "custodia v1 header mac", 32)
//! chunk_key      = HKDF-Expand(prk, "custodia v1 chunk key"
//!                                   || SHA-256(context) || SHA-256(binding), 32)
//! metadata_key   = HKDF-Expand(prk, "custodia v1 metadata key"
//!                                   || SHA-256(context) || SHA-256(binding), 32)
//! ```

use ring::{digest, hkdf};

use crate::header::ObjectId;
use crate::secret::{DataKey, DerivedKey, KEY_LEN, ct_eq};
use crate::{Error, Result};

/// Domain label of the key id digest.
pub(crate) const LABEL_KEY_ID: &[u8] = b"custodia key id v1";
/// Prefix of the HKDF salt (followed by the object id).
pub(crate) const LABEL_SALT: &[u8] = b"custodia object v1";
/// HKDF info of the key commitment.
pub(crate) const LABEL_COMMITMENT: &[u8] = b"custodia v1 key commitment";
/// HKDF info of the header MAC key.
pub(crate) const LABEL_MAC_KEY: &[u8] = b"custodia v1 header mac";
/// HKDF info prefix of the chunk key.
pub(crate) const LABEL_CHUNK_KEY: &[u8] = b"custodia v1 chunk key";
/// HKDF info prefix of the metadata key.
pub(crate) const LABEL_METADATA_KEY: &[u8] = b"custodia v1 metadata key";
/// HKDF info prefix of the layout key (what a multipart layout naming this envelope as its
/// part 1 is authenticated with, FORMAT.md §10a).
pub(crate) const LABEL_LAYOUT_KEY: &[u8] = b"custodia v1 layout key";
/// Prefix of the header MAC input.
pub(crate) const LABEL_HEADER_MAC: &[u8] = b"custodia v1 header";
/// Prefix of the HPKE `info` (followed by the format version and the object id).
pub(crate) const LABEL_SHARE_INFO: &[u8] = b"custodia v1 share";
/// AES-256-GCM AAD of the sealed metadata block.
pub(crate) const LABEL_METADATA_AAD: &[u8] = b"custodia v1 metadata";

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

/// The key commitment stored in the header.
pub type Commitment = [u8; KEY_LEN];

/// All keys of one object, derived from its data key, object id, context and binding.
pub struct ObjectKeys {
    /// The key commitment (public: stored in the header).
    pub(crate) commitment: Commitment,
    pub(crate) mac_key: DerivedKey,
    pub(crate) chunk_key: DerivedKey,
    pub(crate) metadata_key: DerivedKey,
    pub(crate) layout_key: DerivedKey,
}

impl core::fmt::Debug for ObjectKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ObjectKeys(<redacted>)")
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]]) -> Result<[u8; KEY_LEN]> {
    let mut out = [0; KEY_LEN];
    prk.expand(info, Len32)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| Error::InvalidArgument("HKDF expand failed"))?;
    Ok(out)
}

fn sha256(bytes: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, bytes)
}

impl ObjectKeys {
    /// Runs the key schedule.
    ///
    /// # Errors
    /// Only if ring's HKDF refuses (it cannot for 32-byte outputs).
    pub fn derive(
        dek: &DataKey,
        object_id: &ObjectId,
        context: &[u8],
        binding: &[u8],
    ) -> Result<Self> {
        let mut salt = Vec::with_capacity(LABEL_SALT.len() + 32);
        salt.extend_from_slice(LABEL_SALT);
        salt.extend_from_slice(&object_id.0);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(dek.expose());
        let ctx_hash = sha256(context);
        let bind_hash = sha256(binding);
        let bound = |label: &'static [u8]| -> Result<DerivedKey> {
            Ok(DerivedKey::from_bytes(expand(
                &prk,
                &[label, ctx_hash.as_ref(), bind_hash.as_ref()],
            )?))
        };
        Ok(Self {
            commitment: expand(&prk, &[LABEL_COMMITMENT])?,
            mac_key: DerivedKey::from_bytes(expand(&prk, &[LABEL_MAC_KEY])?),
            chunk_key: bound(LABEL_CHUNK_KEY)?,
            metadata_key: bound(LABEL_METADATA_KEY)?,
            layout_key: bound(LABEL_LAYOUT_KEY)?,
        })
    }

    /// The key commitment.
    #[must_use]
    pub fn commitment(&self) -> &Commitment {
        &self.commitment
    }

    /// Checks `stored` against this key's commitment, in constant time.
    ///
    /// # Errors
    /// [`Error::CommitmentMismatch`].
    pub fn check_commitment(&self, stored: &Commitment) -> Result<()> {
        if ct_eq(&self.commitment, stored) {
            Ok(())
        } else {
            Err(Error::CommitmentMismatch)
        }
    }

    /// The chunk key (for the STREAM codec).
    #[must_use]
    pub fn chunk_key(&self) -> &DerivedKey {
        &self.chunk_key
    }

    /// The header MAC key.
    #[must_use]
    pub fn mac_key(&self) -> &DerivedKey {
        &self.mac_key
    }

    /// The metadata key.
    #[must_use]
    pub fn metadata_key(&self) -> &DerivedKey {
        &self.metadata_key
    }

    /// The layout key: a multipart layout that names this envelope as its part 1 is
    /// authenticated with it (FORMAT.md §10a), so only whoever sealed (or can open) part 1
    /// can write a layout readers accept.
    #[must_use]
    pub fn layout_key(&self) -> &DerivedKey {
        &self.layout_key
    }
}
