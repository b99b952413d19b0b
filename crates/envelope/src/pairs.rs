//! The authenticated context and the sealed metadata: sorted, unique, length-prefixed
//! UTF-8 key/value pairs.
//!
//! Wire form (both): `count:u8 || (key_len:u8 || key || value_len:u16 || value)*`, keys strictly
//! ascending by bytes. Only this one encoding of a given set of pairs is accepted.

use std::collections::BTreeMap;

use crate::codec::{Reader, put_u8_prefixed, put_u16_prefixed};
use crate::names::Region;
use crate::{Error, Result};

/// Limits of one kind of pair list.
#[derive(Debug, Clone, Copy)]
struct PairLimits {
    field: &'static str,
    max_entries: usize,
    max_key: usize,
    max_value: usize,
}

const CONTEXT_LIMITS: PairLimits = PairLimits {
    field: "context",
    max_entries: Context::MAX_ENTRIES,
    max_key: Context::MAX_KEY_LEN,
    max_value: Context::MAX_VALUE_LEN,
};

const METADATA_LIMITS: PairLimits = PairLimits {
    field: "metadata",
    max_entries: Metadata::MAX_ENTRIES,
    max_key: Metadata::MAX_KEY_LEN,
    max_value: Metadata::MAX_VALUE_LEN,
};

fn check_key(key: &str, limits: PairLimits) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= limits.max_key
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::NonCanonical {
            field: limits.field,
            reason: "keys are 1..=max bytes of [a-z0-9._-]",
        })
    }
}

fn check_value(value: &str, limits: PairLimits) -> Result<()> {
    if value.len() > limits.max_value {
        return Err(Error::OutOfRange {
            field: limits.field,
            value: value.len() as u64,
            limit: "value longer than the field's maximum",
        });
    }
    Ok(())
}

fn encode(map: &BTreeMap<String, String>, out: &mut Vec<u8>) {
    // Counts and lengths were checked on insertion.
    out.push(u8::try_from(map.len()).unwrap_or(u8::MAX));
    for (k, v) in map {
        put_u8_prefixed(out, k.as_bytes());
        put_u16_prefixed(out, v.as_bytes());
    }
}

fn decode(r: &mut Reader<'_>, limits: PairLimits) -> Result<BTreeMap<String, String>> {
    let count = usize::from(r.u8(limits.field)?);
    if count > limits.max_entries {
        return Err(Error::OutOfRange {
            field: limits.field,
            value: count as u64,
            limit: "more entries than allowed",
        });
    }
    let mut map = BTreeMap::new();
    let mut previous: Option<&[u8]> = None;
    for _ in 0..count {
        let k = r.bytes_u8(limits.field, limits.max_key)?;
        let v = r.bytes_u16(limits.field, limits.max_value)?;
        if previous.is_some_and(|p| p >= k) {
            return Err(Error::NonCanonical {
                field: limits.field,
                reason: "keys not strictly ascending (unsorted or duplicate)",
            });
        }
        previous = Some(k);
        let utf8 = |b: &[u8]| {
            core::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| Error::NonCanonical {
                    field: limits.field,
                    reason: "not UTF-8",
                })
        };
        let (k, v) = (utf8(k)?, utf8(v)?);
        check_key(&k, limits)?;
        map.insert(k, v);
    }
    Ok(map)
}

/// The authenticated context of an object: who it belongs to and where it must stay.
///
/// Always holds `mailbox` (non-empty) and `region` (a valid [`Region`]); may hold more
/// entries. It is stored in clear in the header and authenticated by the chunk key derivation,
/// the header MAC and every recipient's HPKE AAD, so relabelling an object fails everywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct Context {
    map: BTreeMap<String, String>,
    region: Region,
}

impl core::fmt::Debug for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.map.iter()).finish()
    }
}

impl Context {
    /// Most entries in a context.
    pub const MAX_ENTRIES: usize = 16;
    /// Longest key, in bytes.
    pub const MAX_KEY_LEN: usize = 64;
    /// Longest value, in bytes.
    pub const MAX_VALUE_LEN: usize = 512;

    /// A context for `mailbox` homed in `region`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty mailbox id; [`Error::OutOfRange`] if it is too long.
    pub fn new(mailbox: &str, region: &Region) -> Result<Self> {
        if mailbox.is_empty() {
            return Err(Error::InvalidArgument("mailbox id must not be empty"));
        }
        check_value(mailbox, CONTEXT_LIMITS)?;
        let mut map = BTreeMap::new();
        map.insert("mailbox".to_owned(), mailbox.to_owned());
        map.insert("region".to_owned(), region.as_str().to_owned());
        Ok(Self {
            map,
            region: region.clone(),
        })
    }

    /// Adds another authenticated entry (e.g. `tenant`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] to replace `mailbox` or `region` or to repeat a key;
    /// [`Error::NonCanonical`] / [`Error::OutOfRange`] for a key or value outside the limits.
    pub fn with(mut self, key: &str, value: &str) -> Result<Self> {
        check_key(key, CONTEXT_LIMITS)?;
        check_value(value, CONTEXT_LIMITS)?;
        if self.map.contains_key(key) {
            return Err(Error::InvalidArgument("context key already set"));
        }
        if self.map.len() >= Self::MAX_ENTRIES {
            return Err(Error::InvalidArgument("too many context entries"));
        }
        self.map.insert(key.to_owned(), value.to_owned());
        Ok(self)
    }

    /// The mailbox id.
    #[must_use]
    pub fn mailbox(&self) -> &str {
        self.map.get("mailbox").map_or("", String::as_str)
    }

    /// The home region.
    #[must_use]
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// One entry.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The canonical wire encoding (what the header stores and the AAD and key schedule use).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&self.map, &mut out);
        out
    }

    /// Parses the canonical encoding from the front of `r`.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let map = decode(r, CONTEXT_LIMITS)?;
        let mailbox = map
            .get("mailbox")
            .ok_or(Error::MissingContextKey("mailbox"))?;
        if mailbox.is_empty() {
            return Err(Error::MissingContextKey("mailbox"));
        }
        let region = map
            .get("region")
            .ok_or(Error::MissingContextKey("region"))?;
        let region = Region::new(region)?;
        Ok(Self { map, region })
    }

    /// Parses a whole byte string holding exactly one encoded context.
    ///
    /// # Errors
    /// Any parse error; [`Error::TrailingData`] if bytes follow it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let c = Self::read(&mut r)?;
        if r.remaining() != 0 {
            return Err(Error::TrailingData);
        }
        Ok(c)
    }
}

/// User metadata and client checksums of the plaintext, sealed inside the header.
///
/// Keys are lowercase (HTTP header names fold case); values are UTF-8. Nothing here is ever
/// stored in clear: a store must not be able to confirm that a known file is present.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    map: BTreeMap<String, String>,
}

impl core::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Metadata({} entries)", self.map.len())
    }
}

impl Metadata {
    /// Most entries.
    pub const MAX_ENTRIES: usize = 64;
    /// Longest key, in bytes.
    pub const MAX_KEY_LEN: usize = 128;
    /// Longest value, in bytes.
    pub const MAX_VALUE_LEN: usize = 2048;

    /// No metadata.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an entry, replacing any earlier value of the same key.
    ///
    /// # Errors
    /// [`Error::NonCanonical`] / [`Error::OutOfRange`] outside the limits;
    /// [`Error::InvalidArgument`] past [`Self::MAX_ENTRIES`].
    pub fn insert(&mut self, key: &str, value: &str) -> Result<()> {
        check_key(key, METADATA_LIMITS)?;
        check_value(value, METADATA_LIMITS)?;
        if !self.map.contains_key(key) && self.map.len() >= Self::MAX_ENTRIES {
            return Err(Error::InvalidArgument("too many metadata entries"));
        }
        self.map.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// One entry.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Encoded length, before padding.
    pub(crate) fn encoded_len(&self) -> usize {
        1 + self
            .map
            .iter()
            .map(|(k, v)| 1 + k.len() + 2 + v.len())
            .sum::<usize>()
    }

    /// The encoding followed by zero padding up to `total` bytes (`total >= encoded_len()`).
    pub(crate) fn to_padded(&self, total: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(total);
        encode(&self.map, &mut out);
        out.resize(total.max(out.len()), 0);
        out
    }

    /// Parses decrypted metadata: the encoding, then only zero bytes.
    pub(crate) fn from_padded(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let map = decode(&mut r, METADATA_LIMITS)?;
        if r.rest().iter().any(|&b| b != 0) {
            return Err(Error::NonCanonical {
                field: "metadata",
                reason: "non-zero padding",
            });
        }
        Ok(Self { map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ie() -> Region {
        Region::new("ie").unwrap()
    }

    #[test]
    fn context_round_trips_and_is_sorted() {
        let c = Context::new("mbx-1", &ie())
            .unwrap()
            .with("tenant", "acme")
            .unwrap();
        let bytes = c.to_bytes();
        assert_eq!(Context::from_bytes(&bytes).unwrap(), c);
        let keys: Vec<_> = c.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["mailbox", "region", "tenant"]);
    }

    #[test]
    fn context_refuses_overrides_and_bad_keys() {
        let c = Context::new("m", &ie()).unwrap();
        assert!(c.clone().with("region", "us").is_err());
        assert!(c.clone().with("Upper", "x").is_err());
        assert!(c.with("", "x").is_err());
        assert!(Context::new("", &ie()).is_err());
    }

    #[test]
    fn context_parser_refuses_unsorted_duplicate_and_missing() {
        // region before mailbox: unsorted.
        let mut b = vec![2];
        put_u8_prefixed(&mut b, b"region");
        put_u16_prefixed(&mut b, b"ie");
        put_u8_prefixed(&mut b, b"mailbox");
        put_u16_prefixed(&mut b, b"m");
        assert!(matches!(
            Context::from_bytes(&b),
            Err(Error::NonCanonical { .. })
        ));

        let mut b = vec![1];
        put_u8_prefixed(&mut b, b"mailbox");
        put_u16_prefixed(&mut b, b"m");
        assert_eq!(
            Context::from_bytes(&b),
            Err(Error::MissingContextKey("region"))
        );

        let mut b = vec![2];
        put_u8_prefixed(&mut b, b"mailbox");
        put_u16_prefixed(&mut b, b"m");
        put_u8_prefixed(&mut b, b"mailbox");
        put_u16_prefixed(&mut b, b"n");
        assert!(matches!(
            Context::from_bytes(&b),
            Err(Error::NonCanonical { .. })
        ));
    }

    #[test]
    fn metadata_padding_must_be_zero() {
        let mut m = Metadata::new();
        m.insert("content-type", "message/rfc822").unwrap();
        let mut padded = m.to_padded(100);
        assert_eq!(Metadata::from_padded(&padded).unwrap(), m);
        padded[99] = 1;
        assert!(Metadata::from_padded(&padded).is_err());
    }
}
