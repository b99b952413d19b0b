//! Length and range arithmetic: stored length from plaintext length and back, and which
//! stored bytes a plaintext range needs.
//!
//! With header size `H`, chunk size `C` and tag length `T = 16`:
//! ```text
//! chunks(P)   = max(1, ceil(P / C))
//! stored(P)   = H + P + T * chunks(P)
//! plaintext(S): B = S - H; n = ceil(B / (C + T)); P = B - T * n,
//!               valid iff B >= T and the last chunk holds 1..=C bytes (0 only if n = 1).
//! ```

use crate::header::{Profile, TAG_LEN};
use crate::{Error, Result};

const T: u64 = TAG_LEN as u64;

/// The stored chunks a plaintext range needs, and where the range sits in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    /// Index of the first chunk to fetch.
    pub first_chunk: u64,
    /// Number of chunks to fetch.
    pub chunk_count: u64,
    /// Whether the last fetched chunk is the object's final chunk.
    pub includes_final: bool,
    /// Stored byte offset of the first fetched chunk (from the start of the object).
    pub stored_start: u64,
    /// Stored byte offset just past the last fetched chunk.
    pub stored_end: u64,
    /// Plaintext bytes to skip at the start of the first chunk.
    pub skip: u64,
    /// Plaintext bytes in the range.
    pub len: u64,
}

impl Profile {
    /// Number of chunks of a body of `plaintext_len` bytes.
    #[must_use]
    pub fn chunk_count(&self, plaintext_len: u64) -> u64 {
        plaintext_len.div_ceil(self.chunk_size() as u64).max(1)
    }

    /// Stored length of an object with `plaintext_len` bytes of plaintext; `None` on overflow.
    #[must_use]
    pub fn sealed_len(&self, plaintext_len: u64) -> Option<u64> {
        let tags = self.chunk_count(plaintext_len).checked_mul(T)?;
        (self.header_size() as u64)
            .checked_add(plaintext_len)?
            .checked_add(tags)
    }

    /// Plaintext length of a stored object of `stored_len` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidStoredLength`] if no plaintext length seals to `stored_len`.
    pub fn plaintext_len(&self, stored_len: u64) -> Result<u64> {
        let bad = Error::InvalidStoredLength(stored_len);
        let body = stored_len
            .checked_sub(self.header_size() as u64)
            .ok_or(bad.clone())?;
        if body < T {
            return Err(bad);
        }
        let c = self.chunk_size() as u64;
        let n = body.div_ceil(c + T);
        let last = body - (n - 1) * (c + T);
        if last < T || (n > 1 && last == T) {
            return Err(bad);
        }
        Ok(body - n * T)
    }

    /// The chunks that hold plaintext bytes `start .. end` of an object whose plaintext is
    /// `plaintext_len` bytes long.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `start < end <= plaintext_len`.
    pub fn chunk_range(&self, plaintext_len: u64, start: u64, end: u64) -> Result<ChunkRange> {
        if !(start < end && end <= plaintext_len) {
            return Err(Error::InvalidArgument(
                "range must satisfy start < end <= length",
            ));
        }
        let c = self.chunk_size() as u64;
        let h = self.header_size() as u64;
        let total = self.chunk_count(plaintext_len);
        let first = start / c;
        let last = (end - 1) / c;
        let stored_end = if last + 1 == total {
            h + plaintext_len + total * T
        } else {
            h + (last + 1) * (c + T)
        };
        Ok(ChunkRange {
            first_chunk: first,
            chunk_count: last - first + 1,
            includes_final: last + 1 == total,
            stored_start: h + first * (c + T),
            stored_end,
            skip: start - first * c,
            len: end - start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Profile {
        Profile::new(512, 4096).unwrap()
    }

    #[test]
    fn lengths_round_trip_around_chunk_boundaries() {
        for len in [0, 1, 4095, 4096, 4097, 8192, 8193, 1 << 20] {
            let s = p().sealed_len(len).unwrap();
            assert_eq!(p().plaintext_len(s).unwrap(), len, "len {len}");
        }
        assert_eq!(p().sealed_len(0), Some(512 + 16));
        assert_eq!(p().sealed_len(4096), Some(512 + 4096 + 16));
        assert_eq!(p().sealed_len(4097), Some(512 + 4097 + 32));
    }

    #[test]
    fn impossible_stored_lengths_are_refused() {
        for s in [0, 511, 512, 512 + 15, 512 + 4096 + 16 + 16] {
            assert_eq!(
                p().plaintext_len(s),
                Err(Error::InvalidStoredLength(s)),
                "{s}"
            );
        }
    }

    #[test]
    fn every_stored_length_maps_to_at_most_one_plaintext_length() {
        for s in 0..3 * 4112 + 600 {
            if let Ok(len) = p().plaintext_len(s) {
                assert_eq!(p().sealed_len(len), Some(s));
            }
        }
    }

    #[test]
    fn ranges() {
        let r = p().chunk_range(10_000, 4095, 4097).unwrap();
        assert_eq!(
            (r.first_chunk, r.chunk_count, r.skip, r.len),
            (0, 2, 4095, 2)
        );
        assert_eq!(r.stored_start, 512);
        assert_eq!(r.stored_end, 512 + 2 * 4112);
        assert!(!r.includes_final);
        let r = p().chunk_range(10_000, 9_000, 10_000).unwrap();
        assert!(r.includes_final);
        assert_eq!(r.stored_end, p().sealed_len(10_000).unwrap());
        assert!(p().chunk_range(10, 5, 5).is_err());
        assert!(p().chunk_range(10, 5, 11).is_err());
    }
}
