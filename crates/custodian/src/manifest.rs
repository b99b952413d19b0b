//! The signed public manifest: a custodian's X25519 key versions and their status, with an
//! increasing serial and an expiry, Ed25519-signed (RFC 8032) by the keystore's manifest key.
//!
//! Served as JSON at `GET /v1/manifest` ([`SignedManifest`]). Binary values are lowercase hex.
//! The signature covers [`signed_bytes`], a length-prefixed binary encoding of every field:
//!
//! ```text
//! signed_bytes = "custodia manifest v1"                 20 ASCII bytes, no length prefix
//!             || str(region) || str(custodian)
//!             || u64be(serial) || u64be(issued_at) || u64be(not_after)
//!             || str(signing_key)
//!             || u64be(number of keys)
//!             || for each key, in the order of `keys`:
//!                  str(key_id) || u32be(version) || str(status) || str(public_key)
//! str(s)      = u64be(byte length of s) || the UTF-8 bytes of s, exactly as in the JSON
//!               (hex fields are signed as their lowercase hex text; status is
//!               "active", "retired" or "destroyed")
//! signature   = hex(Ed25519-Sign(manifest signing key, signed_bytes))   128 hex characters
//! ```
//!
//! A client pins the custodian's manifest signing key and keeps a [`ManifestPin`], which
//! refuses a bad signature, another signing key, an expired manifest, a malformed one, and a
//! serial lower than one it already accepted; it hands out only the `active` keys.

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use custodia_envelope::{
    CustodianName, KeyId, KeyVersion, RecipientId, RecipientPublicKey, Region,
};

use crate::keystore::KeyStatus;
use crate::{Error, Result};

/// The domain label that starts [`signed_bytes`].
pub const MANIFEST_LABEL: &[u8] = b"custodia manifest v1";

/// A custodian's public keys at one point in time. Sign with the keystore
/// ([`Keystore::sign_manifest`](crate::keystore::Keystore::sign_manifest)); check with
/// [`SignedManifest::verify`] or [`ManifestPin::accept`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The custodian's region (a valid [`Region`] name).
    pub region: String,
    /// The custodian's name (a valid [`CustodianName`]).
    pub custodian: String,
    /// Increases with every manifest the custodian signs; never reused.
    pub serial: u64,
    /// When it was signed (Unix seconds).
    pub issued_at: u64,
    /// Last second (Unix) at which it may be used: valid while `now <= not_after`.
    pub not_after: u64,
    /// The Ed25519 public key that signed it (64 lowercase hex characters).
    pub signing_key: String,
    /// Every key version the custodian has ever had, in increasing version order.
    pub keys: Vec<ManifestKey>,
}

/// One key version in a [`Manifest`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestKey {
    /// The key id (32 lowercase hex characters): the first 16 bytes of
    /// `SHA-256("custodia key id v1" || public_key)`.
    pub key_id: String,
    /// The key version (1 and up).
    pub version: u32,
    /// Whether new objects may be sealed to it: only `active` keys.
    pub status: KeyStatus,
    /// The X25519 public key (64 lowercase hex characters).
    pub public_key: String,
}

/// A [`Manifest`] and its Ed25519 signature over [`signed_bytes`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// The signature (128 lowercase hex characters).
    pub signature: String,
}

/// Appends `u64be(len(s)) || s`.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The bytes the manifest signature covers; layout in the [module documentation](self).
#[must_use]
pub fn signed_bytes(m: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + 160 * m.keys.len());
    out.extend_from_slice(MANIFEST_LABEL);
    put_str(&mut out, &m.region);
    put_str(&mut out, &m.custodian);
    out.extend_from_slice(&m.serial.to_be_bytes());
    out.extend_from_slice(&m.issued_at.to_be_bytes());
    out.extend_from_slice(&m.not_after.to_be_bytes());
    put_str(&mut out, &m.signing_key);
    out.extend_from_slice(&(m.keys.len() as u64).to_be_bytes());
    for k in &m.keys {
        put_str(&mut out, &k.key_id);
        out.extend_from_slice(&k.version.to_be_bytes());
        put_str(&mut out, k.status.as_str());
        put_str(&mut out, &k.public_key);
    }
    out
}

/// Decodes `s` into `out` if `s` is exactly `2 * out.len()` lowercase hex characters (the one
/// canonical spelling). Writes straight into `out`, so a secret lands only where the caller
/// wants it.
pub(crate) fn decode_lower_hex(s: &str, out: &mut [u8]) -> bool {
    s.len() == 2 * out.len()
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && hex::decode_to_slice(s, out).is_ok()
}

/// [`decode_lower_hex`] into a fixed-size array.
pub(crate) fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    decode_lower_hex(s, &mut out).then_some(out)
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Manifest(reason.into())
}

impl SignedManifest {
    /// Checks, in this order: the `signing_key` field equals `pinned_key` (constant time); the
    /// signature is `pinned_key`'s over [`signed_bytes`]; the manifest is well-formed (valid
    /// region and custodian names, hex fields of the right length in lowercase, each key id
    /// matching its public key, versions from 1 in strictly increasing order, at most one
    /// `active` key, `issued_at <= not_after`); and it has not expired (`now <= not_after`).
    ///
    /// # Errors
    /// [`Error::Manifest`] saying which check failed.
    pub fn verify(&self, pinned_key: &[u8; 32], now: u64) -> Result<&Manifest> {
        let m = &self.manifest;
        let signing_key = lower_hex::<32>(&m.signing_key)
            .ok_or_else(|| bad("signing_key is not 64 lowercase hex characters"))?;
        if !bool::from(signing_key.ct_eq(pinned_key)) {
            return Err(bad("signed by a key other than the pinned manifest key"));
        }
        let signature = lower_hex::<64>(&self.signature)
            .ok_or_else(|| bad("signature is not 128 lowercase hex characters"))?;
        UnparsedPublicKey::new(&ED25519, pinned_key)
            .verify(&signed_bytes(m), &signature)
            .map_err(|_| bad("signature does not verify"))?;
        check_well_formed(m)?;
        if now > m.not_after {
            return Err(bad(format!(
                "expired: not_after {} is before now ({now})",
                m.not_after
            )));
        }
        Ok(m)
    }
}

fn check_well_formed(m: &Manifest) -> Result<()> {
    Region::new(&m.region).map_err(|e| bad(format!("region: {e}")))?;
    CustodianName::new(&m.custodian).map_err(|e| bad(format!("custodian: {e}")))?;
    if m.issued_at > m.not_after {
        return Err(bad("issued_at is after not_after"));
    }
    let mut previous = 0u32;
    let mut active = 0usize;
    for k in &m.keys {
        if k.version <= previous {
            return Err(bad(format!(
                "key version {} is 0, repeated or out of order",
                k.version
            )));
        }
        previous = k.version;
        let public_key = lower_hex::<32>(&k.public_key).ok_or_else(|| {
            bad(format!(
                "key version {}: public_key is not 64 lowercase hex characters",
                k.version
            ))
        })?;
        let key_id = lower_hex::<16>(&k.key_id).ok_or_else(|| {
            bad(format!(
                "key version {}: key_id is not 32 lowercase hex characters",
                k.version
            ))
        })?;
        if KeyId::of(&public_key).0 != key_id {
            return Err(bad(format!(
                "key version {}: key_id does not match public_key",
                k.version
            )));
        }
        if k.status == KeyStatus::Active {
            active += 1;
        }
    }
    if active > 1 {
        return Err(bad("more than one active key"));
    }
    Ok(())
}

/// The active keys of a verified manifest, as recipients to seal to.
fn active_recipients(m: &Manifest) -> Result<Vec<RecipientPublicKey>> {
    let region = Region::new(&m.region).map_err(|e| bad(format!("region: {e}")))?;
    let custodian = CustodianName::new(&m.custodian).map_err(|e| bad(format!("custodian: {e}")))?;
    let mut out = Vec::new();
    for k in m.keys.iter().filter(|k| k.status == KeyStatus::Active) {
        let (Some(public_key), Some(key_id)) =
            (lower_hex::<32>(&k.public_key), lower_hex(&k.key_id))
        else {
            return Err(bad("malformed key"));
        };
        out.push(RecipientPublicKey {
            id: RecipientId {
                region: region.clone(),
                custodian: custodian.clone(),
                key_id: KeyId(key_id),
                key_version: KeyVersion(k.version),
            },
            public_key,
        });
    }
    if out.is_empty() {
        return Err(bad(format!(
            "no active key for custodian {}/{}",
            m.region, m.custodian
        )));
    }
    Ok(out)
}

/// A client's trust in one custodian's manifests: the pinned signing key and the newest
/// manifest accepted so far (so an older one is refused as a rollback).
#[derive(Debug, Clone)]
pub struct ManifestPin {
    pinned_key: [u8; 32],
    current: Option<Manifest>,
}

impl ManifestPin {
    /// Trusts manifests signed by `pinned_key`; none accepted yet.
    #[must_use]
    pub fn new(pinned_key: [u8; 32]) -> Self {
        Self {
            pinned_key,
            current: None,
        }
    }

    /// The pinned manifest signing key.
    #[must_use]
    pub fn pinned_key(&self) -> &[u8; 32] {
        &self.pinned_key
    }

    /// The newest manifest accepted so far.
    #[must_use]
    pub fn current(&self) -> Option<&Manifest> {
        self.current.as_ref()
    }

    /// Verifies `m` ([`SignedManifest::verify`]) and checks it against what was accepted
    /// before: a lower serial is a rollback; an equal serial must be the identical manifest;
    /// region and custodian may not change. On success `m` becomes the current manifest and
    /// its **active** keys are returned as recipients (retired and destroyed keys never are).
    /// On any error nothing changes.
    ///
    /// # Errors
    /// [`Error::Manifest`]: verification failed, rollback, serial reused with other content,
    /// another custodian, or no active key.
    pub fn accept(&mut self, m: &SignedManifest, now: u64) -> Result<Vec<RecipientPublicKey>> {
        let manifest = m.verify(&self.pinned_key, now)?;
        if let Some(current) = &self.current {
            if manifest.region != current.region || manifest.custodian != current.custodian {
                return Err(bad(format!(
                    "manifest is for {}/{}, the pinned custodian is {}/{}",
                    manifest.region, manifest.custodian, current.region, current.custodian
                )));
            }
            if manifest.serial < current.serial {
                return Err(bad(format!(
                    "rollback: serial {} is older than serial {} already accepted",
                    manifest.serial, current.serial
                )));
            }
            if manifest.serial == current.serial && manifest != current {
                return Err(bad(format!(
                    "serial {} was already accepted with different content",
                    manifest.serial
                )));
            }
        }
        let recipients = active_recipients(manifest)?;
        self.current = Some(manifest.clone());
        Ok(recipients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    const SEED: [u8; 32] = [42; 32];

    /// One named change to a value under test.
    type Edit<T> = fn(&mut T);

    fn key_pair(seed: &[u8; 32]) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(seed).unwrap()
    }

    fn public(seed: &[u8; 32]) -> [u8; 32] {
        key_pair(seed).public_key().as_ref().try_into().unwrap()
    }

    fn key(version: u32, status: KeyStatus, pk_byte: u8) -> ManifestKey {
        let pk = [pk_byte; 32];
        ManifestKey {
            key_id: hex::encode(KeyId::of(&pk).0),
            version,
            status,
            public_key: hex::encode(pk),
        }
    }

    fn manifest(serial: u64) -> Manifest {
        Manifest {
            region: "ie".into(),
            custodian: "dublin-1".into(),
            serial,
            issued_at: 1000,
            not_after: 2000,
            signing_key: hex::encode(public(&SEED)),
            keys: vec![
                key(1, KeyStatus::Destroyed, 1),
                key(2, KeyStatus::Retired, 2),
                key(3, KeyStatus::Active, 3),
            ],
        }
    }

    /// Signs whatever it is given, well-formed or not, so checks after the signature are
    /// reachable.
    fn sign(m: Manifest, seed: &[u8; 32]) -> SignedManifest {
        let signature = hex::encode(key_pair(seed).sign(&signed_bytes(&m)).as_ref());
        SignedManifest {
            manifest: m,
            signature,
        }
    }

    fn pin() -> [u8; 32] {
        public(&SEED)
    }

    #[test]
    fn good_manifest_verifies() {
        let sm = sign(manifest(1), &SEED);
        assert_eq!(sm.verify(&pin(), 1500).unwrap(), &sm.manifest);
        assert!(sm.verify(&pin(), 2000).is_ok(), "valid through not_after");
        assert!(sm.verify(&pin(), 0).is_ok());
        // JSON round trip.
        let json = serde_json::to_string(&sm).unwrap();
        let back: SignedManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sm);
        assert!(back.verify(&pin(), 1500).is_ok());
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        let sm = sign(manifest(1), &SEED);
        let mut v = serde_json::to_value(&sm).unwrap();
        v["manifest"]["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<SignedManifest>(v).is_err());
        let mut v = serde_json::to_value(&sm).unwrap();
        v["manifest"]["keys"][0]["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<SignedManifest>(v).is_err());
        let mut v = serde_json::to_value(&sm).unwrap();
        v["manifest"]["keys"][0]["status"] = serde_json::json!("revoked");
        assert!(serde_json::from_value::<SignedManifest>(v).is_err());
    }

    #[test]
    fn signed_bytes_layout_is_fixed() {
        let m = Manifest {
            region: "ie".into(),
            custodian: "c".into(),
            serial: 7,
            issued_at: 0x0102,
            not_after: 0x0304,
            signing_key: "ab".into(),
            keys: vec![ManifestKey {
                key_id: "cd".into(),
                version: 5,
                status: KeyStatus::Retired,
                public_key: "ef".into(),
            }],
        };
        let mut want = b"custodia manifest v1".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend(b"ie");
        want.extend([0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend(b"c");
        want.extend([0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend([0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend([0, 0, 0, 0, 0, 0, 3, 4]);
        want.extend([0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend(b"ab");
        want.extend([0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend([0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend(b"cd");
        want.extend([0, 0, 0, 5]);
        want.extend([0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend(b"retired");
        want.extend([0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend(b"ef");
        assert_eq!(signed_bytes(&m), want);
        // Moving a byte across a field boundary changes the encoding.
        let mut shifted = m.clone();
        shifted.region = "iec".into();
        shifted.custodian = String::new();
        assert_ne!(signed_bytes(&shifted), signed_bytes(&m));
    }

    #[test]
    fn wrong_pin_is_refused() {
        let other = [9u8; 32];
        // Signed by another key that is also named in the manifest.
        let mut m = manifest(1);
        m.signing_key = hex::encode(public(&other));
        let sm = sign(m, &other);
        assert!(sm.verify(&public(&other), 1500).is_ok());
        let e = sm.verify(&pin(), 1500).unwrap_err();
        assert!(e.to_string().contains("pinned"), "{e}");
        // Signed by another key but claiming the pinned one.
        let sm = sign(manifest(1), &other);
        let e = sm.verify(&pin(), 1500).unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
    }

    #[test]
    fn every_tampered_field_is_refused() {
        let sm = sign(manifest(5), &SEED);
        let tampers: Vec<(&str, Edit<SignedManifest>)> = vec![
            ("region", |s| s.manifest.region = "us".into()),
            ("custodian", |s| s.manifest.custodian = "dublin-2".into()),
            ("serial", |s| s.manifest.serial += 1),
            ("issued_at", |s| s.manifest.issued_at -= 1),
            ("not_after", |s| s.manifest.not_after += 1),
            ("signing_key", |s| {
                s.manifest.signing_key = hex::encode([1u8; 32]);
            }),
            ("signing_key case", |s| {
                s.manifest.signing_key = s.manifest.signing_key.to_uppercase();
            }),
            ("key_id", |s| {
                s.manifest.keys[2].key_id = s.manifest.keys[1].key_id.clone();
            }),
            ("version", |s| s.manifest.keys[2].version = 4),
            ("status", |s| s.manifest.keys[1].status = KeyStatus::Active),
            ("status 2", |s| {
                s.manifest.keys[2].status = KeyStatus::Retired;
            }),
            ("public_key", |s| {
                let k = key(3, KeyStatus::Active, 4);
                s.manifest.keys[2] = k;
            }),
            ("key removed", |s| {
                s.manifest.keys.remove(1);
            }),
            ("key added", |s| {
                s.manifest.keys.push(key(4, KeyStatus::Retired, 9));
            }),
            ("keys reordered", |s| s.manifest.keys.swap(0, 1)),
            ("signature", |s| {
                let mut b = hex::decode(&s.signature).unwrap();
                b[10] ^= 1;
                s.signature = hex::encode(b);
            }),
            ("signature length", |s| {
                s.signature.pop();
            }),
            ("signature case", |s| {
                s.signature = s.signature.to_uppercase();
            }),
        ];
        for (name, tamper) in tampers {
            let mut t = sm.clone();
            tamper(&mut t);
            assert_ne!(t, sm, "{name}: tamper did nothing");
            assert!(
                matches!(t.verify(&pin(), 1500), Err(Error::Manifest(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn expired_is_refused() {
        let sm = sign(manifest(1), &SEED);
        let e = sm.verify(&pin(), 2001).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        assert!(ManifestPin::new(pin()).accept(&sm, 2001).is_err());
    }

    #[test]
    fn malformed_but_signed_is_refused() {
        let cases: Vec<(&str, Edit<Manifest>)> = vec![
            ("region", |m| m.region = "IE".into()),
            ("custodian", |m| m.custodian = String::new()),
            ("times", |m| m.issued_at = m.not_after + 1),
            ("duplicate version", |m| m.keys[1].version = 1),
            ("version 0", |m| m.keys[0].version = 0),
            ("two active", |m| m.keys[1].status = KeyStatus::Active),
            ("key id mismatch", |m| {
                m.keys[0].key_id = m.keys[1].key_id.clone();
            }),
            ("short key id", |m| {
                m.keys[0].key_id.pop();
            }),
            ("upper public key", |m| {
                let k = key(1, KeyStatus::Destroyed, 0xab);
                m.keys[0] = ManifestKey {
                    public_key: k.public_key.to_uppercase(),
                    ..k
                };
            }),
            ("short public key", |m| m.keys[0].public_key = "00".into()),
        ];
        for (name, change) in cases {
            let mut m = manifest(1);
            change(&mut m);
            let sm = sign(m, &SEED);
            assert!(
                matches!(sm.verify(&pin(), 1500), Err(Error::Manifest(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn pin_returns_only_active_keys() {
        let mut pin_state = ManifestPin::new(pin());
        let recipients = pin_state.accept(&sign(manifest(1), &SEED), 1500).unwrap();
        assert_eq!(recipients.len(), 1);
        let r = &recipients[0];
        assert_eq!(r.id.key_version, KeyVersion(3));
        assert_eq!(r.public_key, [3; 32]);
        assert_eq!(r.id.key_id, KeyId::of(&[3; 32]));
        assert_eq!(r.id.region.as_str(), "ie");
        assert_eq!(r.id.custodian.as_str(), "dublin-1");
        assert_eq!(pin_state.current().unwrap().serial, 1);

        // No active key at all: refused, state unchanged.
        let mut m = manifest(2);
        m.keys[2].status = KeyStatus::Retired;
        let e = pin_state.accept(&sign(m, &SEED), 1500).unwrap_err();
        assert!(e.to_string().contains("no active key"), "{e}");
        assert_eq!(pin_state.current().unwrap().serial, 1);
    }

    #[test]
    fn pin_refuses_rollback_and_serial_reuse() {
        let mut p = ManifestPin::new(pin());
        let m5 = sign(manifest(5), &SEED);
        p.accept(&m5, 1500).unwrap();
        // Same manifest again: fine.
        p.accept(&m5, 1500).unwrap();
        // Older serial: rollback.
        let e = p.accept(&sign(manifest(4), &SEED), 1500).unwrap_err();
        assert!(e.to_string().contains("rollback"), "{e}");
        // Same serial, other content.
        let mut other = manifest(5);
        other.not_after += 10;
        let e = p.accept(&sign(other, &SEED), 1500).unwrap_err();
        assert!(e.to_string().contains("different content"), "{e}");
        // Another custodian under the same key.
        let mut moved = manifest(6);
        moved.custodian = "cork-1".into();
        assert!(p.accept(&sign(moved, &SEED), 1500).is_err());
        // Newer: fine, and the older one is now a rollback.
        p.accept(&sign(manifest(6), &SEED), 1500).unwrap();
        assert!(p.accept(&m5, 1500).is_err());
        assert_eq!(p.current().unwrap().serial, 6);
        assert_eq!(p.pinned_key(), &pin());
    }
}
