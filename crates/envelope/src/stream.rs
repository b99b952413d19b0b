//! STREAM (Hoang–Reyhanitabar–Rogaway–Vizár) over AES-256-GCM from ring: the body as a
//! sequence of independently authenticated chunks.
//!
//! Nonce of chunk `i`: **11 bytes of big-endian counter `i`, then 1 byte of last-chunk flag**
//! (`0x01` on the final chunk, `0x00` otherwise). AAD is empty: the chunk key already binds
//! the object's context and name. Every chunk but the last holds exactly `chunk_size` plaintext
//! bytes; the last holds `1 ..= chunk_size`, or `0` only when the whole body is empty. This
//! detects truncation, reordering, duplication and appended data.
//!
//! [`ChunkSealer`] and [`ChunkOpener`] work in place on caller buffers, one chunk at a time:
//! the zero-copy hot path. [`Sealer`](crate::Sealer) and [`Opener`](crate::Opener) build
//! byte-stream state machines on them.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, Tag, UnboundKey};

use crate::header::{Profile, TAG_LEN};
use crate::secret::DerivedKey;
use crate::{Error, Result};

/// Largest chunk counter this implementation uses (the format allows 2^88 - 1).
pub const MAX_COUNTER: u64 = u64::MAX;

/// A STREAM nonce: 11-byte big-endian counter and the last-chunk flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamNonce([u8; NONCE_LEN]);

impl StreamNonce {
    /// The nonce of chunk `counter`.
    #[must_use]
    pub fn new(counter: u64, last: bool) -> Self {
        let mut n = [0u8; NONCE_LEN];
        n[3..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        Self(n)
    }

    /// The 12 nonce bytes.
    #[must_use]
    pub fn bytes(&self) -> [u8; NONCE_LEN] {
        self.0
    }
}

fn aead_key(key: &DerivedKey) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .map(LessSafeKey::new)
        .map_err(|_| Error::InvalidArgument("AES-256-GCM key"))
}

/// Position bookkeeping shared by the sealer and the opener.
#[derive(Debug, Clone, Copy)]
struct Position {
    chunk_size: usize,
    next: u64,
    finished: bool,
}

impl Position {
    /// Checks that a chunk of `len` plaintext bytes may come next, and returns its nonce.
    fn advance(&mut self, len: usize, last: bool) -> Result<StreamNonce> {
        if self.finished {
            return Err(Error::ChunkMisuse("chunk after the final chunk"));
        }
        if !last && len != self.chunk_size {
            return Err(Error::ChunkMisuse(
                "a non-final chunk must be exactly chunk_size",
            ));
        }
        if len > self.chunk_size {
            return Err(Error::ChunkMisuse("chunk larger than chunk_size"));
        }
        if last && len == 0 && self.next != 0 {
            return Err(Error::ChunkMisuse(
                "only an empty body has an empty final chunk",
            ));
        }
        if self.next == MAX_COUNTER {
            return Err(Error::ChunkMisuse("chunk counter exhausted"));
        }
        let nonce = StreamNonce::new(self.next, last);
        self.next += 1;
        self.finished = last;
        Ok(nonce)
    }
}

/// Seals chunks in place, in order.
pub struct ChunkSealer {
    key: LessSafeKey,
    pos: Position,
}

impl core::fmt::Debug for ChunkSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ChunkSealer(next = {})", self.pos.next)
    }
}

impl ChunkSealer {
    /// A sealer for a fresh stream under `chunk_key` (each object has its own key).
    ///
    /// # Errors
    /// Only if ring refuses the key.
    pub fn new(chunk_key: &DerivedKey, profile: Profile) -> Result<Self> {
        Ok(Self {
            key: aead_key(chunk_key)?,
            pos: Position {
                chunk_size: profile.chunk_size(),
                next: 0,
                finished: false,
            },
        })
    }

    /// Encrypts `chunk` in place and returns its tag. `last` marks the final chunk.
    ///
    /// # Errors
    /// [`Error::ChunkMisuse`] for a chunk of the wrong size or after the final chunk.
    pub fn seal_chunk(&mut self, chunk: &mut [u8], last: bool) -> Result<[u8; TAG_LEN]> {
        let nonce = self.pos.advance(chunk.len(), last)?;
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce.0), Aad::empty(), chunk)
            .map_err(|_| Error::ChunkMisuse("chunk too large for AES-GCM"))?;
        let mut out = [0; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Seals chunk `index` without touching the stream position: for whole-object sealing,
    /// which lays out and sizes every chunk itself and seals each exactly once.
    pub(crate) fn seal_at(
        &self,
        index: u64,
        chunk: &mut [u8],
        last: bool,
    ) -> Result<[u8; TAG_LEN]> {
        let nonce = StreamNonce::new(index, last);
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce.0), Aad::empty(), chunk)
            .map_err(|_| Error::ChunkMisuse("chunk too large for AES-GCM"))?;
        let mut out = [0; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Index of the next chunk.
    #[must_use]
    pub fn next_index(&self) -> u64 {
        self.pos.next
    }

    /// Whether the final chunk has been sealed.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.pos.finished
    }
}

/// Opens chunks in place, in order, starting at any chunk index (for range reads).
pub struct ChunkOpener {
    key: LessSafeKey,
    pos: Position,
}

impl core::fmt::Debug for ChunkOpener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ChunkOpener(next = {})", self.pos.next)
    }
}

impl ChunkOpener {
    /// An opener whose next chunk is `first_index`.
    ///
    /// # Errors
    /// Only if ring refuses the key.
    pub fn new(chunk_key: &DerivedKey, profile: Profile, first_index: u64) -> Result<Self> {
        Ok(Self {
            key: aead_key(chunk_key)?,
            pos: Position {
                chunk_size: profile.chunk_size(),
                next: first_index,
                finished: false,
            },
        })
    }

    /// Verifies and decrypts one stored chunk (ciphertext followed by its tag) in place and
    /// returns the plaintext, which is only ever released after the tag verified.
    ///
    /// # Errors
    /// [`Error::ChunkAuthentication`] naming the chunk (also for a stored chunk of a size no
    /// chunk in that position can have); [`Error::Truncated`] for fewer than 16 bytes;
    /// [`Error::ChunkMisuse`] for a chunk after the final one.
    pub fn open_chunk<'a>(&mut self, stored: &'a mut [u8], last: bool) -> Result<&'a mut [u8]> {
        self.open_at(stored, 0, last)
    }

    /// Like [`Self::open_chunk`] for a non-final chunk stored at `in_out[shift..]`: the
    /// plaintext is written to `in_out[..len]` in the same pass (ring's `open_within`).
    pub(crate) fn open_chunk_within(&mut self, in_out: &mut [u8], shift: usize) -> Result<()> {
        self.open_at(in_out, shift, false).map(|_| ())
    }

    /// Verifies and decrypts the chunk stored at `in_out[shift..]` into `in_out[..len]`.
    fn open_at<'a>(
        &mut self,
        in_out: &'a mut [u8],
        shift: usize,
        last: bool,
    ) -> Result<&'a mut [u8]> {
        let Some(len) = in_out.len().checked_sub(shift + TAG_LEN) else {
            return Err(Error::Truncated {
                field: "chunk",
                needed: (shift + TAG_LEN).saturating_sub(in_out.len()),
            });
        };
        let index = self.pos.next;
        if self.pos.finished {
            return Err(Error::ChunkMisuse("chunk after the final chunk"));
        }
        // Sizes come from stored bytes: a wrong size is damage, not misuse.
        let nonce = self
            .pos
            .advance(len, last)
            .map_err(|_| Error::ChunkAuthentication { index })?;
        self.key
            .open_within(
                Nonce::assume_unique_for_key(nonce.0),
                Aad::empty(),
                in_out,
                shift..,
            )
            .map(|pt| &mut *pt)
            .map_err(|_| Error::ChunkAuthentication { index })
    }

    /// Opens the final chunk of a stream whose length was not known in advance.
    ///
    /// If a full-size final chunk fails as final but authenticates as a non-final chunk, the
    /// stream was cut at a chunk boundary: [`Error::Truncation`].
    ///
    /// # Errors
    /// As [`Self::open_chunk`], plus [`Error::Truncation`].
    pub fn open_final<'a>(&mut self, stored: &'a mut [u8]) -> Result<&'a mut [u8]> {
        let full = stored.len() == self.pos.chunk_size + TAG_LEN;
        let backup = full.then(|| stored.to_vec());
        let index = self.pos.next;
        match self.open_chunk(stored, true) {
            Err(Error::ChunkAuthentication { .. }) => {
                if let Some(mut copy) = backup {
                    let nonce = StreamNonce::new(index, false);
                    let as_non_final = self.key.open_in_place(
                        Nonce::assume_unique_for_key(nonce.0),
                        Aad::empty(),
                        &mut copy,
                    );
                    if as_non_final.is_ok() {
                        // The copy now holds authentic plaintext that is not released.
                        zeroize::Zeroize::zeroize(&mut copy);
                        return Err(Error::Truncation);
                    }
                }
                Err(Error::ChunkAuthentication { index })
            }
            other => other,
        }
    }

    /// Index of the next chunk.
    #[must_use]
    pub fn next_index(&self) -> u64 {
        self.pos.next
    }

    /// Whether the final chunk has been opened.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.pos.finished
    }
}
