//! n-of-n XOR splitting of the data key across the custodians of one region.
//!
//! `share_1 .. share_{n-1}` are random, `share_n = DEK xor share_1 xor .. xor share_{n-1}`.
//! Any `n - 1` shares are independent of the DEK, so no single key holder can be made to
//! release it alone.

use crate::rng::Randomness;
use crate::secret::{DataKey, KEY_LEN, Share};
use crate::{Error, Result};

/// Splits `dek` into `n` shares (`n >= 1`; for `n == 1` the share is the DEK itself).
///
/// # Errors
/// [`Error::InvalidArgument`] for `n == 0`; [`Error::Randomness`].
pub fn split(dek: &DataKey, n: usize, rng: &mut dyn Randomness) -> Result<Vec<Share>> {
    if n == 0 {
        return Err(Error::InvalidArgument(
            "a data key needs at least one share",
        ));
    }
    let mut shares = Vec::with_capacity(n);
    let mut last = *dek.expose();
    for _ in 1..n {
        let s = Share::random(rng)?;
        xor_into(&mut last, s.expose());
        shares.push(s);
    }
    shares.push(Share::from_bytes(last));
    zeroize::Zeroize::zeroize(&mut last);
    Ok(shares)
}

/// Rebuilds the data key from all of its shares.
///
/// # Errors
/// [`Error::InvalidArgument`] for no shares.
pub fn combine(shares: &[Share]) -> Result<DataKey> {
    if shares.is_empty() {
        return Err(Error::InvalidArgument(
            "a data key needs at least one share",
        ));
    }
    let mut acc = [0u8; KEY_LEN];
    for s in shares {
        xor_into(&mut acc, s.expose());
    }
    let dek = DataKey::from_bytes(acc);
    zeroize::Zeroize::zeroize(&mut acc);
    Ok(dek)
}

fn xor_into(acc: &mut [u8; KEY_LEN], other: &[u8; KEY_LEN]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SystemRandomness;

    #[test]
    fn split_then_combine_is_identity_and_all_shares_are_needed() {
        let mut rng = SystemRandomness::new();
        let dek = DataKey::random(&mut rng).unwrap();
        for n in 1..=5 {
            let shares = split(&dek, n, &mut rng).unwrap();
            assert_eq!(shares.len(), n);
            assert_eq!(combine(&shares).unwrap(), dek);
            if n > 1 {
                assert_ne!(combine(&shares[1..]).unwrap(), dek);
            }
        }
        assert!(split(&dek, 0, &mut rng).is_err());
        assert!(combine(&[]).is_err());
    }
}
