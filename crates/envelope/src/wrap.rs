//! HPKE wrapping of data-key shares to custodians (RFC 9180 base mode,
//! DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, through the `hpke` crate).
//!
//! ```text
//! info = "custodia v1 share" || u16be(format_version) || object_id
//! aad  = context || recipient_id
//! (enc, wrapped) = SealBase(pkR, info, aad, share)
//! ```
//! The AAD binds the share to the object's context (mailbox, region) and to the recipient, so
//! a stanza relabelled to another region, mailbox or custodian does not open.

use core::fmt;

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::header::{FORMAT_VERSION, ObjectId};
use crate::keys::LABEL_SHARE_INFO;
use crate::rng::{HpkeRng, Randomness};
use crate::secret::{KEY_LEN, Share};
use crate::stanza::{ENC_LEN, KeyId, RecipientId, Stanza, WRAPPED_LEN};
use crate::{Error, Result};

type Kem = X25519HkdfSha256;

/// A custodian's public key for one key version, with its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientPublicKey {
    /// Who holds the private key.
    pub id: RecipientId,
    /// The X25519 public key.
    pub public_key: [u8; 32],
}

/// A custodian's X25519 private key, with its public key and key id computed once.
/// Zeroized on drop; `Debug` prints a redaction.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RecipientSecretKey {
    secret: [u8; 32],
    public: [u8; 32],
    key_id: [u8; 16],
}

impl fmt::Debug for RecipientSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecipientSecretKey(<redacted>)")
    }
}

impl RecipientSecretKey {
    /// A fresh key pair's private half.
    ///
    /// # Errors
    /// [`Error::Randomness`].
    pub fn generate(rng: &mut dyn Randomness) -> Result<Self> {
        let mut ikm = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(ikm.as_mut())?;
        let (sk, pk) = Kem::derive_keypair(ikm.as_ref());
        let mut secret = [0; 32];
        secret.copy_from_slice(&sk.to_bytes());
        let mut public = [0; 32];
        public.copy_from_slice(&pk.to_bytes());
        Ok(Self {
            secret,
            public,
            key_id: KeyId::of(&public).0,
        })
    }

    /// From stored bytes (e.g. a keystore).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let public = <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes)
            .map(|sk| {
                let mut out = [0; 32];
                out.copy_from_slice(&<Kem as hpke::Kem>::sk_to_pk(&sk).to_bytes());
                out
            })
            .unwrap_or([0; 32]);
        Self {
            secret: bytes,
            public,
            key_id: KeyId::of(&public).0,
        }
    }

    /// The secret bytes, for sealing into a keystore.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.secret
    }

    fn hpke_key(&self) -> Result<<Kem as hpke::Kem>::PrivateKey> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.secret)
            .map_err(|_| Error::InvalidArgument("not an X25519 private key"))
    }

    /// The matching public key.
    ///
    /// # Errors
    /// Never for keys made by this type (kept fallible for keys from other sources).
    pub fn public_key(&self) -> Result<[u8; 32]> {
        Ok(self.public)
    }

    /// The key id of the matching public key.
    ///
    /// # Errors
    /// As [`Self::public_key`].
    pub fn key_id(&self) -> Result<KeyId> {
        Ok(KeyId(self.key_id))
    }
}

fn info(object_id: &ObjectId) -> Vec<u8> {
    let mut info = Vec::with_capacity(LABEL_SHARE_INFO.len() + 2 + 32);
    info.extend_from_slice(LABEL_SHARE_INFO);
    info.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    info.extend_from_slice(&object_id.0);
    info
}

fn aad(context: &[u8], recipient: &RecipientId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(context.len() + recipient.encoded_len());
    aad.extend_from_slice(context);
    recipient.write(&mut aad);
    aad
}

/// Wraps `share` to `recipient` for the object `object_id` with encoded context `context`.
///
/// # Errors
/// [`Error::InvalidArgument`] for a public key HPKE refuses (a low-order point);
/// [`Error::Randomness`].
pub fn wrap_share(
    share: &Share,
    recipient: &RecipientPublicKey,
    object_id: &ObjectId,
    context: &[u8],
    rng: &mut dyn Randomness,
) -> Result<Stanza> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.public_key)
        .map_err(|_| Error::InvalidArgument("not an X25519 public key"))?;
    let mut hrng = HpkeRng::new(rng);
    let (enc, ct) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        &info(object_id),
        share.expose(),
        &aad(context, &recipient.id),
        &mut hrng,
    )
    .map_err(|_| Error::InvalidArgument("HPKE refused the recipient public key"))?;
    hrng.check()?;
    let mut stanza = Stanza {
        recipient: recipient.id.clone(),
        enc: [0; ENC_LEN],
        wrapped: [0; WRAPPED_LEN],
    };
    stanza.enc.copy_from_slice(&enc.to_bytes());
    if ct.len() != WRAPPED_LEN {
        return Err(Error::InvalidArgument("HPKE produced an unexpected length"));
    }
    stanza.wrapped.copy_from_slice(&ct);
    Ok(stanza)
}

/// Unwraps one stanza with the recipient's private key. This is the custodian's operation.
///
/// # Errors
/// [`Error::StanzaAuthentication`] if the key is wrong or the stanza, context or object id were
/// changed.
pub fn unwrap_share(
    secret: &RecipientSecretKey,
    stanza: &Stanza,
    object_id: &ObjectId,
    context: &[u8],
) -> Result<Share> {
    let sk = secret.hpke_key()?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&stanza.enc)
        .map_err(|_| Error::StanzaAuthentication)?;
    let pt = zeroize::Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info(object_id),
            &stanza.wrapped,
            &aad(context, &stanza.recipient),
        )
        .map_err(|_| Error::StanzaAuthentication)?,
    );
    let mut share = [0u8; KEY_LEN];
    if pt.len() != KEY_LEN {
        return Err(Error::StanzaAuthentication);
    }
    share.copy_from_slice(&pt);
    let out = Share::from_bytes(share);
    share.zeroize();
    Ok(out)
}

/// Rewraps one stanza to a new key version of the same custodian: the share is unwrapped
/// with the old key and wrapped to the new one, inside the custodian. The body, the header MAC
/// and every other stanza stay as they are ([`Header::replace_stanza`](crate::Header::replace_stanza)).
///
/// # Errors
/// [`Error::InvalidArgument`] if `new_key` is another custodian's;
/// [`Error::StanzaAuthentication`] if the old stanza does not open.
pub fn rewrap_stanza(
    old_secret: &RecipientSecretKey,
    stanza: &Stanza,
    object_id: &ObjectId,
    context: &[u8],
    new_key: &RecipientPublicKey,
    rng: &mut dyn Randomness,
) -> Result<Stanza> {
    if !new_key.id.same_custodian(&stanza.recipient) {
        return Err(Error::InvalidArgument(
            "rewrap must stay with the same custodian",
        ));
    }
    let share = unwrap_share(old_secret, stanza, object_id, context)?;
    wrap_share(&share, new_key, object_id, context, rng)
}
