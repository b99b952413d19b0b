//! HPKE-sealed replies from a custodian to its caller: the released shares of one batch, sealed
//! to the caller's ephemeral X25519 key in **one** HPKE context (RFC 9180 base mode, same suite
//! as the stanzas), so no share is ever in clear past TLS.
//!
//! ```text
//! (enc, ctx) = SetupBaseS(pk_caller, info)
//! reply_k    = ctx.Seal(aad_k, share_k)        for k = 0, 1, ... in order (HPKE sequence numbers)
//! ```
//! The caller opens them in the same order with `SetupBaseR(enc, sk_caller, info)`.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};

use crate::rng::{HpkeRng, Randomness};
use crate::secret::{KEY_LEN, Share};
use crate::stanza::{ENC_LEN, WRAPPED_LEN};
use crate::wrap::RecipientSecretKey;
use crate::{Error, Result};

type Kem = X25519HkdfSha256;

/// The sending side of one batch's reply context: set up (encapsulated to the caller's key)
/// before anything is decided, so a caller key HPKE refuses fails the request before any
/// decision is logged; then one [`ReplySealer::seal`] per released share, in order.
pub struct ReplySealer {
    ctx: hpke::aead::AeadCtxS<AesGcm256, HkdfSha256, Kem>,
}

impl core::fmt::Debug for ReplySealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ReplySealer(<redacted>)")
    }
}

impl ReplySealer {
    /// Sets up the context to `caller_public`; returns the encapsulated key and the sealer.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a public key HPKE refuses (e.g. a low-order point);
    /// [`Error::Randomness`].
    pub fn new(
        caller_public: &[u8; 32],
        info: &[u8],
        rng: &mut dyn Randomness,
    ) -> Result<([u8; ENC_LEN], Self)> {
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(caller_public)
            .map_err(|_| Error::InvalidArgument("caller key is not an X25519 public key"))?;
        let mut hrng = HpkeRng::new(rng);
        let (enc, ctx) = hpke::setup_sender_with_rng::<AesGcm256, HkdfSha256, Kem>(
            &OpModeS::Base,
            &pk,
            info,
            &mut hrng,
        )
        .map_err(|_| Error::InvalidArgument("HPKE refused the caller key"))?;
        hrng.check()?;
        let mut e = [0u8; ENC_LEN];
        e.copy_from_slice(&enc.to_bytes());
        Ok((e, Self { ctx }))
    }

    /// Seals the next share.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the HPKE sequence is exhausted.
    pub fn seal(&mut self, aad: &[u8], share: &Share) -> Result<[u8; WRAPPED_LEN]> {
        let ct = self
            .ctx
            .seal(share.expose(), aad)
            .map_err(|_| Error::InvalidArgument("HPKE sequence exhausted"))?;
        let mut reply = [0u8; WRAPPED_LEN];
        if ct.len() != WRAPPED_LEN {
            return Err(Error::InvalidArgument("HPKE produced an unexpected length"));
        }
        reply.copy_from_slice(&ct);
        Ok(reply)
    }
}

/// Seals `shares` (with their AADs) to `caller_public` in one HPKE context. Returns the
/// encapsulated key and one 48-byte reply per share, in order.
///
/// # Errors
/// As [`ReplySealer::new`] and [`ReplySealer::seal`].
pub fn seal_replies(
    caller_public: &[u8; 32],
    info: &[u8],
    shares: &[(Vec<u8>, &Share)],
    rng: &mut dyn Randomness,
) -> Result<([u8; ENC_LEN], Vec<[u8; WRAPPED_LEN]>)> {
    let (enc, mut sealer) = ReplySealer::new(caller_public, info, rng)?;
    let replies = shares
        .iter()
        .map(|(aad, share)| sealer.seal(aad, share))
        .collect::<Result<Vec<_>>>()?;
    Ok((enc, replies))
}

/// Opens the replies of one batch, in order, with the caller's ephemeral secret.
///
/// # Errors
/// [`Error::StanzaAuthentication`] if any reply does not open (tampered, reordered, or sealed
/// to another key).
pub fn open_replies(
    caller_secret: &RecipientSecretKey,
    enc: &[u8; ENC_LEN],
    info: &[u8],
    replies: &[(Vec<u8>, [u8; WRAPPED_LEN])],
) -> Result<Vec<Share>> {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(caller_secret.expose())
        .map_err(|_| Error::InvalidArgument("not an X25519 private key"))?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc)
        .map_err(|_| Error::StanzaAuthentication)?;
    let mut ctx =
        hpke::setup_receiver::<AesGcm256, HkdfSha256, Kem>(&OpModeR::Base, &sk, &enc, info)
            .map_err(|_| Error::StanzaAuthentication)?;
    replies
        .iter()
        .map(|(aad, ct)| {
            let pt = zeroize::Zeroizing::new(
                ctx.open(ct, aad).map_err(|_| Error::StanzaAuthentication)?,
            );
            let bytes: [u8; KEY_LEN] = pt
                .as_slice()
                .try_into()
                .map_err(|_| Error::StanzaAuthentication)?;
            Ok(Share::from_bytes(bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SystemRandomness;

    #[test]
    fn replies_open_in_order_and_fail_reordered() {
        let mut rng = SystemRandomness::new();
        let caller = RecipientSecretKey::generate(&mut rng).unwrap();
        let a = Share::random(&mut rng).unwrap();
        let b = Share::random(&mut rng).unwrap();
        let (enc, replies) = seal_replies(
            &caller.public_key().unwrap(),
            b"info",
            &[(b"0".to_vec(), &a), (b"1".to_vec(), &b)],
            &mut rng,
        )
        .unwrap();
        let items = vec![(b"0".to_vec(), replies[0]), (b"1".to_vec(), replies[1])];
        let got = open_replies(&caller, &enc, b"info", &items).unwrap();
        assert_eq!(got, vec![a, b]);
        let swapped = vec![(b"1".to_vec(), replies[1]), (b"0".to_vec(), replies[0])];
        assert!(open_replies(&caller, &enc, b"info", &swapped).is_err());
        let other = RecipientSecretKey::generate(&mut rng).unwrap();
        assert!(open_replies(&other, &enc, b"info", &items).is_err());
    }
}
