//! Header protection: the header MAC and the sealed metadata block.
//!
//! ```text
//! mac = HMAC-SHA256(mac_key, "custodia v1 header" || header[magic .. commitment]
//!                            || u32be(len(sealed_metadata)) || sealed_metadata || binding)
//! sealed_metadata = AES-256-GCM(metadata_key, nonce = 0^12, aad = "custodia v1 metadata",
//!                               metadata || zero padding filling the header)
//! ```
//! The stanzas are outside the MAC so a custodian can rewrap its own stanza without the DEK;
//! the HPKE AAD and the key commitment bind them instead. The metadata key is used once per
//! object (fresh DEK), so the fixed nonce is never reused under one key.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

use crate::header::{Header, MAC_LEN, TAG_LEN};
use crate::keys::{LABEL_HEADER_MAC, LABEL_METADATA_AAD, ObjectKeys};
use crate::pairs::Metadata;
use crate::{Error, Result};

fn mac_context(keys: &ObjectKeys, header: &Header, binding: &[u8]) -> hmac::Context {
    let key = hmac::Key::new(hmac::HMAC_SHA256, keys.mac_key().expose());
    let mut ctx = hmac::Context::with_key(&key);
    let mut prefix = Vec::with_capacity(256);
    header.write_authenticated_prefix(&mut prefix);
    ctx.update(LABEL_HEADER_MAC);
    ctx.update(&prefix);
    let len = u32::try_from(header.sealed_metadata.len()).unwrap_or(u32::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(&header.sealed_metadata);
    ctx.update(binding);
    ctx
}

/// Computes the header MAC.
pub(crate) fn compute_mac(keys: &ObjectKeys, header: &Header, binding: &[u8]) -> [u8; MAC_LEN] {
    let tag = mac_context(keys, header, binding).sign();
    let mut out = [0; MAC_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Verifies the header MAC in constant time.
pub(crate) fn verify_mac(keys: &ObjectKeys, header: &Header, binding: &[u8]) -> Result<()> {
    let expected = compute_mac(keys, header, binding);
    if crate::secret::ct_eq(&expected, &header.mac) {
        Ok(())
    } else {
        Err(Error::HeaderAuthentication)
    }
}

fn metadata_key(keys: &ObjectKeys) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, keys.metadata_key().expose())
        .map(LessSafeKey::new)
        .map_err(|_| Error::InvalidArgument("AES-256-GCM key"))
}

/// Encrypts `metadata`, padded so that the sealed block is exactly `sealed_len` bytes.
pub(crate) fn seal_metadata(
    keys: &ObjectKeys,
    metadata: &Metadata,
    sealed_len: usize,
) -> Result<Vec<u8>> {
    let plain_len = sealed_len
        .checked_sub(TAG_LEN)
        .filter(|&n| n >= metadata.encoded_len())
        .ok_or(Error::HeaderTooLarge {
            needed: metadata.encoded_len() + TAG_LEN,
            available: sealed_len,
        })?;
    let mut buf = metadata.to_padded(plain_len);
    metadata_key(keys)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::from(LABEL_METADATA_AAD),
            &mut buf,
        )
        .map_err(|_| Error::InvalidArgument("metadata too large for AES-GCM"))?;
    Ok(buf)
}

/// Decrypts and parses the sealed metadata block.
pub(crate) fn open_metadata(keys: &ObjectKeys, sealed: &[u8]) -> Result<Metadata> {
    let mut buf = sealed.to_vec();
    let plain = metadata_key(keys)?
        .open_in_place(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::from(LABEL_METADATA_AAD),
            &mut buf,
        )
        .map_err(|_| Error::MetadataAuthentication)?;
    Metadata::from_padded(plain)
}
