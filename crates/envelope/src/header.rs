//! The sealed-object header: types, parser and writer.
//!
//! ```text
//! header := magic "CUSTODIA" (8) || version:u16 || header_size:u32 || chunk_size:u32
//!           || object_id[32] || context || commitment[32]
//!           || stanza_count:u8 || stanza*
//!           || sealed_metadata (fills the header up to header_size - 32)
//!           || mac[32]
//! ```
//! All integers are big-endian. The header is exactly `header_size` bytes (the profile's), so
//! the plaintext length is a pure function of the stored length. Parsing checks every limit
//! before it allocates and accepts only the one canonical encoding: re-encoding a parsed
//! header gives back the same bytes.

use core::fmt;

use crate::codec::Reader;
use crate::keys::Commitment;
use crate::pairs::Context;
use crate::stanza::Stanza;
use crate::{Error, Result};

/// The magic bytes every sealed object starts with.
pub const MAGIC: [u8; 8] = *b"CUSTODIA";
/// The format version this crate writes (single-part objects).
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed prefix that says how long the header is (magic, version, sizes).
pub const PREFIX_LEN: usize = 18;
/// Length of the header MAC.
pub const MAC_LEN: usize = 32;
/// Length of the AES-256-GCM tag on the sealed metadata and on every chunk.
pub const TAG_LEN: usize = 16;
/// Most recipient stanzas (custodians of one region) in one object.
pub const MAX_STANZAS: usize = 16;

/// An object's random 32-byte identifier. Public; unique per object.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectId(pub [u8; 32]);

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A deployment's size constants: header size and chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    header_size: u32,
    chunk_size: u32,
}

impl Profile {
    /// The default profile: 1 KiB header, 64 KiB chunks.
    pub const DEFAULT: Self = Self {
        header_size: 1024,
        chunk_size: 64 * 1024,
    };
    /// Smallest header size.
    pub const MIN_HEADER: u32 = 512;
    /// Largest header size.
    pub const MAX_HEADER: u32 = 64 * 1024;
    /// Smallest chunk size.
    pub const MIN_CHUNK: u32 = 4 * 1024;
    /// Largest chunk size.
    pub const MAX_CHUNK: u32 = 16 * 1024 * 1024;

    /// A profile. The header size is a multiple of 16 in 512 ..= 65536; the chunk size a power
    /// of two in 4 KiB ..= 16 MiB.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the field.
    pub fn new(header_size: u32, chunk_size: u32) -> Result<Self> {
        if !(Self::MIN_HEADER..=Self::MAX_HEADER).contains(&header_size)
            || !header_size.is_multiple_of(16)
        {
            return Err(Error::OutOfRange {
                field: "header_size",
                value: header_size.into(),
                limit: "a multiple of 16 in 512..=65536",
            });
        }
        if !(Self::MIN_CHUNK..=Self::MAX_CHUNK).contains(&chunk_size)
            || !chunk_size.is_power_of_two()
        {
            return Err(Error::OutOfRange {
                field: "chunk_size",
                value: chunk_size.into(),
                limit: "a power of two in 4096..=16777216",
            });
        }
        Ok(Self {
            header_size,
            chunk_size,
        })
    }

    /// Header size in bytes.
    #[must_use]
    pub fn header_size(&self) -> usize {
        self.header_size as usize
    }

    /// Plaintext bytes per chunk (every chunk but the last holds exactly this many).
    #[must_use]
    pub fn chunk_size(&self) -> usize {
        self.chunk_size as usize
    }

    /// Reads the profile from the first [`PREFIX_LEN`] bytes of a stored object, so a
    /// streaming reader knows how many header bytes to collect.
    ///
    /// # Errors
    /// [`Error::NotSealed`], [`Error::UnsupportedVersion`], [`Error::OutOfRange`],
    /// [`Error::Truncated`].
    pub fn from_prefix(prefix: &[u8]) -> Result<Self> {
        let mut r = Reader::new(prefix);
        let magic: [u8; 8] = r.array("magic")?;
        if magic != MAGIC {
            return Err(Error::NotSealed);
        }
        let version = r.u16("version")?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let header_size = r.u32("header_size")?;
        let chunk_size = r.u32("chunk_size")?;
        Self::new(header_size, chunk_size)
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Whether `bytes` start like a sealed object (magic only; nothing is verified).
#[must_use]
pub fn looks_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// A parsed header. Parsing checks structure and limits only: nothing in it is trusted until
/// [`Header::unlock`](crate::Header::unlock) has checked the key commitment and the MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub(crate) profile: Profile,
    pub(crate) object_id: ObjectId,
    pub(crate) context: Context,
    pub(crate) commitment: Commitment,
    pub(crate) stanzas: Vec<Stanza>,
    pub(crate) sealed_metadata: Vec<u8>,
    pub(crate) mac: [u8; MAC_LEN],
}

impl Header {
    /// Parses a header from the front of `bytes` (which may continue with the body).
    ///
    /// # Errors
    /// Typed errors for every malformation; never panics; allocates at most the profile's
    /// header size.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let profile = Profile::from_prefix(bytes.get(..PREFIX_LEN).unwrap_or(bytes))?;
        let size = profile.header_size();
        let header = bytes.get(..size).ok_or_else(|| Error::Truncated {
            field: "header",
            needed: size.saturating_sub(bytes.len()),
        })?;
        let mut r = Reader::new(header);
        r.take(PREFIX_LEN, "prefix")?;
        let object_id = ObjectId(r.array("object_id")?);
        let context = Context::read(&mut r)?;
        let commitment = r.array("commitment")?;
        let count = usize::from(r.u8("stanza_count")?);
        if count == 0 || count > MAX_STANZAS {
            return Err(Error::OutOfRange {
                field: "stanza_count",
                value: count as u64,
                limit: "1..=16",
            });
        }
        let mut stanzas: Vec<Stanza> = Vec::with_capacity(count);
        for _ in 0..count {
            let s = Stanza::read(&mut r)?;
            if s.recipient.region != *context.region() {
                return Err(Error::RegionMismatch);
            }
            if stanzas
                .last()
                .is_some_and(|p| p.recipient.custodian >= s.recipient.custodian)
            {
                return Err(Error::NonCanonical {
                    field: "stanzas",
                    reason: "not sorted by custodian, or a custodian named twice",
                });
            }
            stanzas.push(s);
        }
        let meta_len = r
            .remaining()
            .checked_sub(MAC_LEN)
            .filter(|&n| n > TAG_LEN)
            .ok_or(Error::NonCanonical {
                field: "sealed_metadata",
                reason: "no room left in the header for the sealed metadata",
            })?;
        let sealed_metadata = r.take(meta_len, "sealed_metadata")?.to_vec();
        let mac = r.array("mac")?;
        Ok(Self {
            profile,
            object_id,
            context,
            commitment,
            stanzas,
            sealed_metadata,
            mac,
        })
    }

    /// The exact stored bytes of this header (`profile.header_size()` long).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.profile.header_size());
        self.write_authenticated_prefix(&mut out);
        out.push(u8::try_from(self.stanzas.len()).unwrap_or(u8::MAX));
        for s in &self.stanzas {
            s.write(&mut out);
        }
        out.extend_from_slice(&self.sealed_metadata);
        out.extend_from_slice(&self.mac);
        out
    }

    /// Everything before the stanzas: magic through commitment.
    pub(crate) fn write_authenticated_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&self.profile.header_size.to_be_bytes());
        out.extend_from_slice(&self.profile.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.object_id.0);
        out.extend_from_slice(&self.context.to_bytes());
        out.extend_from_slice(&self.commitment);
    }

    /// Bytes the header needs before the sealed metadata, for a given stanza set.
    pub(crate) fn fixed_len(context: &Context, stanzas: &[Stanza]) -> usize {
        PREFIX_LEN
            + 32
            + context.to_bytes().len()
            + 32
            + 1
            + stanzas.iter().map(Stanza::encoded_len).sum::<usize>()
    }

    /// The profile (header and chunk sizes).
    #[must_use]
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The object id.
    #[must_use]
    pub fn object_id(&self) -> &ObjectId {
        &self.object_id
    }

    /// The authenticated context (not yet verified until unlocked).
    #[must_use]
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The recipient stanzas, one per custodian share, sorted by custodian.
    #[must_use]
    pub fn stanzas(&self) -> &[Stanza] {
        &self.stanzas
    }

    /// The key commitment.
    #[must_use]
    pub fn commitment(&self) -> &Commitment {
        &self.commitment
    }

    /// Replaces the stanza of the same custodian with `stanza` (a rewrap to a new key
    /// version). The body, the MAC and every other field stay as they are.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if no stanza is for that custodian, or the new stanza's
    /// encoding has another length (it would move the sealed metadata).
    pub fn replace_stanza(&mut self, stanza: Stanza) -> Result<()> {
        let slot = self
            .stanzas
            .iter_mut()
            .find(|s| s.recipient.same_custodian(&stanza.recipient))
            .ok_or(Error::InvalidArgument("no stanza for that custodian"))?;
        if slot.encoded_len() != stanza.encoded_len() {
            return Err(Error::InvalidArgument(
                "rewrapped stanza changes the header layout",
            ));
        }
        *slot = stanza;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_limits() {
        assert!(Profile::new(1024, 65536).is_ok());
        assert!(Profile::new(1000, 65536).is_err());
        assert!(Profile::new(128, 65536).is_err());
        assert!(
            Profile::new(256, 65536).is_err(),
            "too small for any object"
        );
        assert!(Profile::new(1024, 3000).is_err());
        assert!(Profile::new(1024, 1 << 25).is_err());
        assert!(Profile::new(1024, 4096 * 3).is_err());
    }

    #[test]
    fn prefix_errors_are_typed() {
        assert_eq!(Profile::from_prefix(b"NOTCUSTO"), Err(Error::NotSealed));
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&2u16.to_be_bytes());
        assert_eq!(Profile::from_prefix(&p), Err(Error::UnsupportedVersion(2)));
        assert!(matches!(
            Profile::from_prefix(&MAGIC),
            Err(Error::Truncated { .. })
        ));
    }
}
