//! Fixtures shared by the fuzz targets and the seed generator (`examples/make_seeds.rs`).
//!
//! Everything is sealed with `DeterministicRandomness`, so the fixture object, and therefore
//! every committed seed, is the same on every machine and every run.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "fuzz harness")]

use std::sync::OnceLock;

use custodia_envelope::{
    Binding, Context, CustodianName, DeterministicRandomness, Header, KeyVersion, Metadata,
    Profile, RecipientId, RecipientPublicKey, RecipientSecretKey, Region, Result, SealOptions,
    Unlocked, seal,
};

/// Header size of the opener fixture: the format's minimum.
pub const FIXTURE_HEADER: u32 = Profile::MIN_HEADER;
/// Chunk size of the opener fixture (the format's minimum).
pub const FIXTURE_CHUNK: u32 = 4096;

/// A sealed object together with everything needed to open it.
pub struct Sample {
    /// The whole stored object (header and body).
    pub stored: Vec<u8>,
    /// Its plaintext.
    pub plaintext: Vec<u8>,
    /// The recipients' private keys, one per stanza.
    pub secrets: Vec<RecipientSecretKey>,
    /// The name it is bound to.
    pub binding: Binding,
}

impl Sample {
    /// The parsed, unwrapped and verified header.
    pub fn unlock(&self) -> Result<Unlocked> {
        let header = Header::parse(&self.stored)?;
        header.unlock(&header.unwrap_with(&self.secrets)?, &self.binding)
    }
}

/// `len` bytes of a fixed, non-constant pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Seals `plaintext` for one recipient per custodian name in `custodians` (region `ie`),
/// deterministically from `seed`. `context_extra` and `metadata` are added as key/value pairs.
pub fn seal_sample(
    seed: &[u8],
    profile: Profile,
    custodians: &[&str],
    context_extra: &[(&str, &str)],
    metadata: &[(&str, &str)],
    plaintext: &[u8],
) -> Result<Sample> {
    let mut rng = DeterministicRandomness::new(seed);
    let ie = Region::new("ie")?;
    let mut secrets = Vec::new();
    let mut recipients = Vec::new();
    for name in custodians {
        let secret = RecipientSecretKey::generate(&mut rng)?;
        recipients.push(RecipientPublicKey {
            id: RecipientId {
                region: ie.clone(),
                custodian: CustodianName::new(name)?,
                key_id: secret.key_id()?,
                key_version: KeyVersion(1),
            },
            public_key: secret.public_key()?,
        });
        secrets.push(secret);
    }
    let mut context = Context::new("m", &ie)?;
    for (k, v) in context_extra {
        context = context.with(k, v)?;
    }
    let mut meta = Metadata::new();
    for (k, v) in metadata {
        meta.insert(k, v)?;
    }
    let binding = Binding::new("mail", "m/1")?;
    let opts = SealOptions {
        profile,
        context: &context,
        binding: &binding,
        recipients: &recipients,
        metadata: &meta,
    };
    let stored = seal(&opts, plaintext, &mut rng)?;
    Ok(Sample {
        stored,
        plaintext: plaintext.to_vec(),
        secrets,
        binding,
    })
}

/// The opener target's fixed object: 5000 bytes (one full 4096-byte chunk and a short final
/// chunk) sealed for one recipient, with its verified header.
pub struct Fixture {
    /// The object.
    pub sample: Sample,
    /// Its verified header.
    pub unlocked: Unlocked,
}

impl Fixture {
    /// The stored body (everything after the header).
    pub fn body(&self) -> &[u8] {
        &self.sample.stored[FIXTURE_HEADER as usize..]
    }
}

/// The opener fixture, sealed once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let profile = Profile::new(FIXTURE_HEADER, FIXTURE_CHUNK).expect("profile");
        let sample = seal_sample(
            b"custodia fuzz opener",
            profile,
            &["a"],
            &[],
            &[],
            &pattern(5000),
        )
        .expect("fixture seals");
        let unlocked = sample.unlock().expect("fixture opens");
        Fixture { sample, unlocked }
    })
}

/// Feeds `body` to a fresh [`custodia_envelope::Opener`] in pieces whose sizes cycle through
/// `1 + 37 * s` for each `s` in `sizes` (the whole body at once if `sizes` is empty), then
/// finishes it. Returns the plaintext.
pub fn open_in_pieces(unlocked: &Unlocked, sizes: &[u8], mut body: &[u8]) -> Result<Vec<u8>> {
    let mut opener = unlocked.opener()?;
    let mut out = Vec::new();
    for &s in sizes.iter().cycle() {
        if body.is_empty() {
            break;
        }
        let (piece, rest) = body.split_at((1 + 37 * usize::from(s)).min(body.len()));
        opener.update(piece, &mut out)?;
        body = rest;
    }
    opener.update(body, &mut out)?;
    opener.finish(&mut out)?;
    Ok(out)
}

/// AES-256-GCM with empty AAD through two independent implementations: ring (which the
/// envelope uses) and RustCrypto's `aes-gcm`. Sealed form: ciphertext || 16-byte tag.
pub mod gcm {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as RingNonce, UnboundKey};

    fn ring_key(key: &[u8; 32]) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key"))
    }

    /// Seals with ring.
    pub fn ring_seal(key: &[u8; 32], nonce: [u8; 12], plaintext: &[u8]) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        let n = RingNonce::assume_unique_for_key(nonce);
        let tag = ring_key(key)
            .seal_in_place_separate_tag(n, Aad::empty(), &mut buf)
            .expect("ring seals");
        buf.extend_from_slice(tag.as_ref());
        buf
    }

    /// Opens with ring; `None` if it does not authenticate.
    pub fn ring_open(key: &[u8; 32], nonce: [u8; 12], sealed: &[u8]) -> Option<Vec<u8>> {
        let mut buf = sealed.to_vec();
        let n = RingNonce::assume_unique_for_key(nonce);
        let plain = ring_key(key)
            .open_in_place(n, Aad::empty(), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }

    /// Seals with `aes-gcm` (in place, detached tag).
    pub fn rc_seal(key: &[u8; 32], nonce: [u8; 12], plaintext: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&(*key).into());
        let mut buf = plaintext.to_vec();
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(nonce), &[], buf.as_mut_slice().into())
            .expect("aes-gcm seals");
        buf.extend_from_slice(&tag);
        buf
    }

    /// Opens with `aes-gcm` (in place, detached tag); `None` if it does not authenticate.
    pub fn rc_open(key: &[u8; 32], nonce: [u8; 12], sealed: &[u8]) -> Option<Vec<u8>> {
        let cipher = Aes256Gcm::new(&(*key).into());
        let (ct, tag) = sealed.split_at_checked(sealed.len().checked_sub(16)?)?;
        let tag = Tag::try_from(tag).ok()?;
        let mut buf = ct.to_vec();
        cipher
            .decrypt_inout_detached(&Nonce::from(nonce), &[], buf.as_mut_slice().into(), &tag)
            .ok()?;
        Some(buf)
    }
}
