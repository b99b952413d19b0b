//! The object binding: the object's final upstream name, supplied by the reader, never stored.
//!
//! ```text
//! binding := bucket_len:u16 || bucket || key_len:u16 || key
//! ```
//! It is mixed into the chunk and metadata keys and the header MAC, so an object moved or
//! swapped to another name fails to open.

use crate::codec::put_u16_prefixed;
use crate::{Error, Result};

/// The final name an object is stored under: bucket (or store) and key (or path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    bucket: String,
    key: String,
}

impl Binding {
    /// Longest bucket or key, in bytes.
    pub const MAX_LEN: usize = u16::MAX as usize;

    /// A binding to `bucket`/`key`. Use an empty bucket for stores without buckets.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if either part is longer than [`Self::MAX_LEN`].
    pub fn new(bucket: &str, key: &str) -> Result<Self> {
        if bucket.len() > Self::MAX_LEN || key.len() > Self::MAX_LEN {
            return Err(Error::InvalidArgument(
                "binding bucket or key longer than 65535 bytes",
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The bucket.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The canonical encoding.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.bucket.len() + self.key.len());
        put_u16_prefixed(&mut out, self.bucket.as_bytes());
        put_u16_prefixed(&mut out, self.key.as_bytes());
        out
    }
}
