//! Recipient identities and recipient stanzas (types, wire encoding, parsing).
//!
//! ```text
//! recipient_id := region_len:u8 || region || custodian_len:u8 || custodian
//!                 || key_id[16] || key_version:u32
//! stanza       := recipient_id || enc[32] || wrapped_share[48]
//! ```

use core::fmt;

use crate::codec::{Reader, put_u8_prefixed};
use crate::names::{CustodianName, Region};
use crate::{Error, Result};

/// Length of an HPKE encapsulated key (DHKEM(X25519) `enc`).
pub const ENC_LEN: usize = 32;
/// Length of a wrapped share: 32-byte share plus the 16-byte AES-256-GCM tag.
pub const WRAPPED_LEN: usize = 48;
/// Length of a key id.
pub const KEY_ID_LEN: usize = 16;

fn utf8(b: &[u8]) -> Result<&str> {
    core::str::from_utf8(b).map_err(|_| Error::NonCanonical {
        field: "stanza",
        reason: "name not UTF-8",
    })
}

/// Identifies one key of one custodian: the first 16 bytes of
/// `SHA-256("custodia key id v1" || x25519_public_key)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The key id of an X25519 public key.
    #[must_use]
    pub fn of(public_key: &[u8; 32]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(crate::keys::LABEL_KEY_ID);
        ctx.update(public_key);
        let digest = ctx.finish();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        Self(id)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A custodian's key version: increases by one at each rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyVersion(pub u32);

/// Who can unwrap a stanza: region, custodian, key id and key version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecipientId {
    /// The custodian's region. Must equal the object's context region.
    pub region: Region,
    /// The custodian within that region.
    pub custodian: CustodianName,
    /// Which key.
    pub key_id: KeyId,
    /// Which version of the custodian's key.
    pub key_version: KeyVersion,
}

impl RecipientId {
    /// Appends the wire encoding.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u8_prefixed(out, self.region.as_str().as_bytes());
        put_u8_prefixed(out, self.custodian.as_str().as_bytes());
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&self.key_version.0.to_be_bytes());
    }

    /// The wire encoding.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    pub(crate) fn encoded_len(&self) -> usize {
        1 + self.region.as_str().len() + 1 + self.custodian.as_str().len() + KEY_ID_LEN + 4
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let region = Region::new(utf8(r.bytes_u8("stanza region", Region::MAX_LEN)?)?)?;
        let custodian = CustodianName::new(utf8(
            r.bytes_u8("stanza custodian", CustodianName::MAX_LEN)?,
        )?)?;
        let key_id = KeyId(r.array("stanza key id")?);
        let key_version = KeyVersion(r.u32("stanza key version")?);
        Ok(Self {
            region,
            custodian,
            key_id,
            key_version,
        })
    }

    /// Same custodian (region and name), whatever the key version.
    #[must_use]
    pub fn same_custodian(&self, other: &Self) -> bool {
        self.region == other.region && self.custodian == other.custodian
    }
}

/// One recipient's wrapped share of the data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// Who can unwrap it.
    pub recipient: RecipientId,
    /// The HPKE encapsulated key.
    pub enc: [u8; ENC_LEN],
    /// The share, HPKE-sealed (ciphertext and tag).
    pub wrapped: [u8; WRAPPED_LEN],
}

impl Stanza {
    /// Appends the wire encoding.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        self.recipient.write(out);
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.wrapped);
    }

    /// The wire encoding (as stored, and as sent to a custodian for unwrapping).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.recipient.encoded_len() + ENC_LEN + WRAPPED_LEN
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            recipient: RecipientId::read(r)?,
            enc: r.array("stanza enc")?,
            wrapped: r.array("stanza wrapped share")?,
        })
    }

    /// Parses exactly one encoded stanza (e.g. from a custodian request).
    ///
    /// # Errors
    /// Any parse error; [`Error::TrailingData`] if bytes follow it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let s = Self::read(&mut r)?;
        if r.remaining() != 0 {
            return Err(Error::TrailingData);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_round_trip_and_trailing_bytes() {
        let s = Stanza {
            recipient: RecipientId {
                region: Region::new("ie").unwrap(),
                custodian: CustodianName::new("dpc").unwrap(),
                key_id: KeyId::of(&[9; 32]),
                key_version: KeyVersion(3),
            },
            enc: [1; ENC_LEN],
            wrapped: [2; WRAPPED_LEN],
        };
        let mut b = s.to_bytes();
        assert_eq!(b.len(), s.encoded_len());
        assert_eq!(Stanza::from_bytes(&b).unwrap(), s);
        b.push(0);
        assert_eq!(Stanza::from_bytes(&b), Err(Error::TrailingData));
    }
}
