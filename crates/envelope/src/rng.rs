//! Where randomness comes from: the system CSPRNG, or (feature `deterministic`, tests only) a
//! seeded stream used to generate reproducible test vectors.
//!
//! Sealing draws, in this order: the data key (32 bytes), the object id (32 bytes), `n - 1`
//! shares (32 bytes each), then one 32-byte HPKE ephemeral seed per recipient stanza.
//! docs/FORMAT.md relies on that order for its worked examples.

use core::convert::Infallible;

use hpke::rand_core::{TryCryptoRng, TryRng};

use crate::{Error, Result};

/// A source of cryptographically secure random bytes.
pub trait Randomness {
    /// Fills `dest` entirely.
    ///
    /// # Errors
    /// [`Error::Randomness`] if no randomness could be had; callers must fail closed.
    fn fill(&mut self, dest: &mut [u8]) -> Result<()>;
}

/// The operating system's CSPRNG, through ring.
#[derive(Debug)]
pub struct SystemRandomness(ring::rand::SystemRandom);

impl SystemRandomness {
    /// A handle to the system CSPRNG.
    #[must_use]
    pub fn new() -> Self {
        Self(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRandomness {
    fn default() -> Self {
        Self::new()
    }
}

impl Randomness for SystemRandomness {
    fn fill(&mut self, dest: &mut [u8]) -> Result<()> {
        ring::rand::SecureRandom::fill(&self.0, dest).map_err(|_| Error::Randomness)
    }
}

/// A deterministic byte stream for test vectors: block `i` is
/// `HMAC-SHA256(seed, "custodia test randomness" || u64be(i))`.
///
/// **Insecure.** It exists so that docs/FORMAT.md's worked examples can be reproduced; it is
/// compiled only with the `deterministic` feature, which no shipped binary enables.
#[cfg(feature = "deterministic")]
pub struct DeterministicRandomness {
    key: ring::hmac::Key,
    counter: u64,
    pending: Vec<u8>,
}

#[cfg(feature = "deterministic")]
impl DeterministicRandomness {
    /// A stream seeded with `seed`.
    #[must_use]
    pub fn new(seed: &[u8]) -> Self {
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed),
            counter: 0,
            pending: Vec::new(),
        }
    }
}

#[cfg(feature = "deterministic")]
impl Randomness for DeterministicRandomness {
    fn fill(&mut self, dest: &mut [u8]) -> Result<()> {
        let mut written = 0;
        while written < dest.len() {
            if self.pending.is_empty() {
                let mut ctx = ring::hmac::Context::with_key(&self.key);
                ctx.update(b"custodia test randomness");
                ctx.update(&self.counter.to_be_bytes());
                self.counter += 1;
                self.pending = ctx.sign().as_ref().to_vec();
            }
            let take = self.pending.len().min(dest.len() - written);
            dest[written..written + take].copy_from_slice(&self.pending[..take]);
            self.pending.drain(..take);
            written += take;
        }
        Ok(())
    }
}

/// Adapts a [`Randomness`] to the `rand_core` traits the `hpke` crate asks for.
///
/// `hpke` cannot report a failing RNG, so a failure is remembered here and turned into
/// [`Error::Randomness`] by the caller after the HPKE call (the output is then discarded).
pub(crate) struct HpkeRng<'a> {
    inner: &'a mut dyn Randomness,
    failed: bool,
}

impl<'a> HpkeRng<'a> {
    pub(crate) fn new(inner: &'a mut dyn Randomness) -> Self {
        Self {
            inner,
            failed: false,
        }
    }

    /// Whether the underlying source failed during the HPKE call.
    pub(crate) fn check(&self) -> Result<()> {
        if self.failed {
            Err(Error::Randomness)
        } else {
            Ok(())
        }
    }
}

impl TryRng for HpkeRng<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if self.inner.fill(dst).is_err() {
            self.failed = true;
        }
        Ok(())
    }
}

impl TryCryptoRng for HpkeRng<'_> {}
