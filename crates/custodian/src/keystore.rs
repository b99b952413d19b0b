//! The keystore: a custodian's X25519 key versions and its Ed25519 manifest signing key,
//! sealed at rest under a [`KeyEncryptionKey`].
//!
//! ## On-disk format
//!
//! One JSON file (pretty-printed, trailing newline; unknown fields refused):
//!
//! ```text
//! {
//!   "format": "custodia-keystore-v1",
//!   "region": "<region name>",
//!   "custodian": "<custodian name>",
//!   "insecure": <bool>,              true: development keys, refused unless allowed (--dev)
//!   "kek_id": "<KEK id>",            which KEK sealed it (LocalKek: 16 lowercase hex)
//!   "sealed": "<lowercase hex>"      KEK.seal(aad, secrets)
//! }
//!
//! aad     = str("custodia-keystore-v1") || str(region) || str(custodian) || u8(insecure ? 1 : 0)
//! str(s)  = u64be(byte length of s) || the UTF-8 bytes of s
//!
//! secrets = JSON (compact; unknown fields refused):
//! {
//!   "manifest_seed": "<64 hex>",     Ed25519 seed (RFC 8032) of the manifest signing key
//!   "manifest_serial": <u64>,        serial of the last manifest signed (0: none yet)
//!   "keys": [                        increasing version order; exactly one "active"
//!     { "version": <u32>,            1 and up
//!       "status": "active" | "retired" | "destroyed",
//!       "created_at": <u64>,         Unix seconds
//!       "public_key": "<64 hex>",    X25519 public key
//!       "private_key": "<64 hex>" }  X25519 private key; absent when "destroyed"
//!   ]
//! }
//! ```
//!
//! With [`LocalKek`](crate::kek::LocalKek), `sealed = nonce[12] || ciphertext || tag[16]`
//! (AES-256-GCM). All hex is lowercase. Region, custodian and the insecure flag are
//! authenticated through the AAD, so changing any of them on disk (say, clearing `insecure`
//! on development keys) makes [`Keystore::open`] fail; so does any change to `sealed`.
//! `kek_id` is a hint for a clear error: a wrong KEK is reported as such before decryption.
//!
//! ## Writes
//!
//! Every change is written before the call returns, atomically: a temporary file of mode 0600
//! in the same directory, fsync, rename over the keystore, fsync of the directory
//! (`write_atomic`). If the write fails, the in-memory keystore is left unchanged.
//!
//! ## Secrets in memory
//!
//! Private keys ([`RecipientSecretKey`]), the manifest seed and every buffer holding the
//! secrets JSON zeroize on drop and print as redacted in `Debug`.
//! [`Keystore::destroy`] drops (and so zeroizes) the destroyed private key and re-seals the
//! whole keystore under a **new** KEK: older copies of the file (backups, stale disk blocks)
//! then open only with the old KEK, which the operator destroys.

use core::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use custodia_envelope::{
    CustodianName, KeyId, KeyVersion, Randomness, RecipientId, RecipientPublicKey,
    RecipientSecretKey, Region,
};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::api::Denial;
use crate::kek::{KeyEncryptionKey, write_atomic};
use crate::manifest::{Manifest, ManifestKey, SignedManifest, decode_lower_hex, put_str};
use crate::{Error, Result};

/// The `format` value of a keystore file.
pub const FORMAT: &str = "custodia-keystore-v1";
/// Largest keystore file read (tens of thousands of key versions).
const MAX_FILE_LEN: u64 = 16 << 20;
/// Upper bound of one key's entry in the secrets JSON (the widest is about 200 bytes).
const SECRETS_PER_KEY: usize = 256;
/// Upper bound of the secrets JSON without its keys (about 130 bytes).
const SECRETS_BASE: usize = 256;

/// The status of one key version.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// New objects are sealed to it. Exactly one version is active.
    Active,
    /// No new objects are sealed to it; it still unwraps existing stanzas.
    Retired,
    /// Its private key is gone (crypto-shredded); only its public part is kept.
    Destroyed,
}

impl KeyStatus {
    /// The snake_case name, as in JSON and in the manifest's signed bytes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Destroyed => "destroyed",
        }
    }
}

/// The public facts of one key version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KeyInfo {
    /// The version (1 and up).
    pub version: KeyVersion,
    /// Its key id (derived from the public key).
    pub key_id: KeyId,
    /// The X25519 public key.
    pub public_key: [u8; 32],
    /// Active, retired or destroyed.
    pub status: KeyStatus,
    /// When it was created (Unix seconds).
    pub created_at: u64,
}

/// The manifest signing key's Ed25519 seed. Zeroized on drop; `Debug` prints a redaction.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SigningSeed([u8; 32]);

impl fmt::Debug for SigningSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSeed(<redacted>)")
    }
}

impl SigningSeed {
    fn key_pair(&self) -> Result<Ed25519KeyPair> {
        Ed25519KeyPair::from_seed_unchecked(&self.0)
            .map_err(|_| Error::Keystore("the manifest signing seed is not usable".into()))
    }
}

/// An owned Ed25519 signer over the manifest signing key (the same key signs manifests and
/// audit-log checkpoints). Holds ring's expanded key pair (not zeroized by ring); `Debug`
/// prints a redaction. Signs with ring (RFC 8032, deterministic).
#[derive(Clone)]
pub struct ManifestSigner {
    public_key: [u8; 32],
    /// The expanded key pair, built once (rebuilding it per signature cost ~25 us per
    /// checkpoint). ring does not zeroize it (the keystore's seed copy is).
    pair: std::sync::Arc<Ed25519KeyPair>,
}

impl fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestSigner")
            .field("seed", &"<redacted>")
            .field("public_key", &hex::encode(self.public_key))
            .finish()
    }
}

impl ManifestSigner {
    /// A signer over an Ed25519 seed (RFC 8032). For tests and tools; a custodian gets its
    /// signer from [`Keystore::manifest_signer`].
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let seed = SigningSeed(seed);
        let public_key = ed25519_public_key(&seed);
        let pair = std::sync::Arc::new(ed25519_key_pair(&seed));
        Self { public_key, pair }
    }

    /// The Ed25519 public key.
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The Ed25519 signature of `msg`.
    #[must_use]
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

/// The key pair of a seed. ring refuses a seed only for its length, which is fixed here.
fn ed25519_key_pair(seed: &SigningSeed) -> Ed25519KeyPair {
    match Ed25519KeyPair::from_seed_unchecked(&seed.0) {
        Ok(pair) => pair,
        Err(_) => unreachable!("ring accepts every 32-byte Ed25519 seed"),
    }
}

fn ed25519_public_key(seed: &SigningSeed) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ed25519_key_pair(seed).public_key().as_ref());
    out
}

/// HKDF-SHA256 output length for [`Keystore::audit_commitment_key`].
struct Len32;

impl ring::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// One key version and, unless destroyed, its private key.
#[derive(Clone, Debug)]
struct KeyEntry {
    info: KeyInfo,
    secret: Option<RecipientSecretKey>,
}

/// Everything sealed, checked by [`State::new`]: versions strictly increasing from 1, exactly
/// one active (at index `active`), a private key exactly for the versions not destroyed and
/// matching their public keys, key ids derived from the public keys.
#[derive(Clone, Debug)]
struct State {
    manifest_seed: SigningSeed,
    manifest_serial: u64,
    keys: Vec<KeyEntry>,
    active: usize,
}

fn damaged(reason: impl fmt::Display) -> Error {
    Error::Keystore(format!("damaged secrets: {reason}"))
}

impl State {
    fn new(manifest_seed: SigningSeed, manifest_serial: u64, keys: Vec<KeyEntry>) -> Result<Self> {
        let mut previous = 0u32;
        let mut active = None;
        for (i, k) in keys.iter().enumerate() {
            let v = k.info.version.0;
            if v <= previous {
                return Err(damaged(format!(
                    "key version {v} is 0, repeated or out of order"
                )));
            }
            previous = v;
            if k.info.key_id != KeyId::of(&k.info.public_key) {
                return Err(damaged(format!("key version {v}: key id does not match")));
            }
            match (&k.secret, k.info.status) {
                (None, KeyStatus::Destroyed) => {}
                (Some(secret), KeyStatus::Active | KeyStatus::Retired) => {
                    if secret.public_key()? != k.info.public_key {
                        return Err(damaged(format!(
                            "key version {v}: private key does not match its public key"
                        )));
                    }
                }
                (None, _) => return Err(damaged(format!("key version {v}: no private key"))),
                (Some(_), KeyStatus::Destroyed) => {
                    return Err(damaged(format!(
                        "key version {v} is destroyed but has a private key"
                    )));
                }
            }
            if k.info.status == KeyStatus::Active {
                if active.is_some() {
                    return Err(damaged("more than one active key"));
                }
                active = Some(i);
            }
        }
        let active = active.ok_or_else(|| damaged("no active key"))?;
        Ok(Self {
            manifest_seed,
            manifest_serial,
            keys,
            active,
        })
    }

    fn entry(&self, version: KeyVersion) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.info.version == version)
    }

    /// The secrets JSON, written into a buffer that never reallocates (its capacity bounds
    /// the output), so no copy of a secret is left in freed memory.
    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut buf = Zeroizing::new(Vec::with_capacity(secrets_capacity(self.keys.len())));
        let doc = SecretsOut {
            manifest_seed: HexSecret(&self.manifest_seed.0),
            manifest_serial: self.manifest_serial,
            keys: self
                .keys
                .iter()
                .map(|k| KeyOut {
                    version: k.info.version.0,
                    status: k.info.status,
                    created_at: k.info.created_at,
                    public_key: HexSecret(&k.info.public_key),
                    private_key: k.secret.as_ref().map(|s| HexSecret(s.expose())),
                })
                .collect(),
        };
        serde_json::to_writer(&mut *buf, &doc)
            .map_err(|e| Error::Keystore(format!("cannot encode secrets: {e}")))?;
        Ok(buf)
    }

    fn from_json(json: &[u8]) -> Result<Self> {
        let doc: SecretsIn = serde_json::from_slice(json).map_err(|e| {
            // The message names fields, never values; say where, not what.
            damaged(format_args!(
                "not valid secrets JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let keys = doc
            .keys
            .into_iter()
            .map(|k| KeyEntry {
                info: KeyInfo {
                    version: KeyVersion(k.version),
                    key_id: KeyId::of(&k.public_key.0),
                    public_key: *k.public_key.0,
                    status: k.status,
                    created_at: k.created_at,
                },
                secret: k.private_key.map(|s| RecipientSecretKey::from_bytes(*s.0)),
            })
            .collect();
        Self::new(SigningSeed(*doc.manifest_seed.0), doc.manifest_serial, keys)
    }
}

fn secrets_capacity(keys: usize) -> usize {
    SECRETS_BASE + SECRETS_PER_KEY * keys
}

/// Serializes 32 bytes as lowercase hex from a zeroized stack buffer.
struct HexSecret<'a>(&'a [u8; 32]);

impl Serialize for HexSecret<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> core::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut text = Zeroizing::new([0u8; 64]);
        hex::encode_to_slice(self.0, text.as_mut()).map_err(S::Error::custom)?;
        let text = core::str::from_utf8(text.as_ref()).map_err(S::Error::custom)?;
        serializer.serialize_str(text)
    }
}

/// Deserializes 64 lowercase hex characters straight into a zeroizing buffer.
struct Hex32(Zeroizing<[u8; 32]>);

impl<'de> Deserialize<'de> for Hex32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> core::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Hex32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 lowercase hex characters")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> core::result::Result<Hex32, E> {
                let mut out = Zeroizing::new([0u8; 32]);
                if decode_lower_hex(v, out.as_mut()) {
                    Ok(Hex32(out))
                } else {
                    Err(E::custom("not 64 lowercase hex characters"))
                }
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[derive(Serialize)]
struct SecretsOut<'a> {
    manifest_seed: HexSecret<'a>,
    manifest_serial: u64,
    keys: Vec<KeyOut<'a>>,
}

#[derive(Serialize)]
struct KeyOut<'a> {
    version: u32,
    status: KeyStatus,
    created_at: u64,
    public_key: HexSecret<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key: Option<HexSecret<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsIn {
    manifest_seed: Hex32,
    manifest_serial: u64,
    keys: Vec<KeyIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyIn {
    version: u32,
    status: KeyStatus,
    created_at: u64,
    public_key: Hex32,
    #[serde(default)]
    private_key: Option<Hex32>,
}

/// The outer, public JSON document.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeystoreFile {
    format: String,
    region: String,
    custodian: String,
    insecure: bool,
    kek_id: String,
    sealed: String,
}

fn aad(region: &Region, custodian: &CustodianName, insecure: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(3 * 8 + FORMAT.len() + 48 + 1);
    put_str(&mut aad, FORMAT);
    put_str(&mut aad, region.as_str());
    put_str(&mut aad, custodian.as_str());
    aad.push(u8::from(insecure));
    aad
}

/// A custodian's keys, opened. Every change is persisted (sealed, atomically) before the
/// method that makes it returns. `Debug` shows no secret.
#[derive(Debug)]
pub struct Keystore {
    path: PathBuf,
    region: Region,
    custodian: CustodianName,
    insecure: bool,
    kek_id: String,
    manifest_public_key: [u8; 32],
    state: State,
}

impl Keystore {
    /// Creates a keystore at `path` with key version 1 active and a fresh manifest signing
    /// key, sealed under `kek`. `insecure` marks development keys. Refuses to replace an
    /// existing file.
    ///
    /// # Errors
    /// [`Error::Keystore`] if `path` exists; [`Error::Io`]; [`Error::Envelope`] if `rng`
    /// fails.
    pub fn create(
        path: &Path,
        region: &Region,
        custodian: &CustodianName,
        insecure: bool,
        kek: &dyn KeyEncryptionKey,
        rng: &mut dyn Randomness,
        now: u64,
    ) -> Result<Self> {
        if path.symlink_metadata().is_ok() {
            return Err(Error::Keystore(format!(
                "{} already exists; refusing to overwrite a keystore",
                path.display()
            )));
        }
        let first = new_key(KeyVersion(1), rng, now)?;
        let mut seed = SigningSeed([0; 32]);
        rng.fill(&mut seed.0)?;
        let state = State::new(seed, 0, vec![first])?;
        let store = Self {
            path: path.to_path_buf(),
            region: region.clone(),
            custodian: custodian.clone(),
            insecure,
            kek_id: kek.id(),
            manifest_public_key: manifest_public_key(&state.manifest_seed)?,
            state,
        };
        store.persist(&store.state, kek, false)?;
        Ok(store)
    }

    /// Opens the keystore at `path` with `kek`.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read; [`Error::Keystore`] if it was sealed under another
    /// KEK (`sealed under KEK <id>, not <id>`), was changed or damaged, or is not a keystore;
    /// [`Error::InsecureKeys`] if it holds development keys and `allow_insecure` is false.
    pub fn open(path: &Path, kek: &dyn KeyEncryptionKey, allow_insecure: bool) -> Result<Self> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes))
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(Error::Keystore(format!(
                "{}: larger than {MAX_FILE_LEN} bytes",
                path.display()
            )));
        }
        let file: KeystoreFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Keystore(format!("{}: not a keystore file: {e}", path.display()))
        })?;
        if file.format != FORMAT {
            return Err(Error::Keystore(format!(
                "{}: unknown format {:?} (expected {FORMAT:?})",
                path.display(),
                file.format
            )));
        }
        let region = Region::new(&file.region)
            .map_err(|e| Error::Keystore(format!("{}: region: {e}", path.display())))?;
        let custodian = CustodianName::new(&file.custodian)
            .map_err(|e| Error::Keystore(format!("{}: custodian: {e}", path.display())))?;
        if file.kek_id != kek.id() {
            return Err(Error::Keystore(format!(
                "sealed under KEK {}, not {}",
                file.kek_id,
                kek.id()
            )));
        }
        let mut sealed = vec![0u8; file.sealed.len() / 2];
        if !decode_lower_hex(&file.sealed, &mut sealed) {
            return Err(Error::Keystore(format!(
                "{}: sealed is not lowercase hex",
                path.display()
            )));
        }
        let json = kek
            .open(&aad(&region, &custodian, file.insecure), &sealed)
            .map_err(|_| {
                Error::Keystore(format!(
                    "{}: does not open: the file was changed or damaged (region, custodian, \
                     insecure flag and sealed data are all authenticated)",
                    path.display()
                ))
            })?;
        let state = State::from_json(&json)?;
        // Only now is the flag authenticated.
        if file.insecure && !allow_insecure {
            return Err(Error::InsecureKeys);
        }
        Ok(Self {
            path: path.to_path_buf(),
            region,
            custodian,
            insecure: file.insecure,
            kek_id: file.kek_id,
            manifest_public_key: manifest_public_key(&state.manifest_seed)?,
            state,
        })
    }

    /// The file this keystore lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The custodian's region.
    #[must_use]
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The custodian's name.
    #[must_use]
    pub fn custodian(&self) -> &CustodianName {
        &self.custodian
    }

    /// Whether these are development keys.
    #[must_use]
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The id of the KEK the keystore is currently sealed under.
    #[must_use]
    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }

    /// Every key version, in increasing version order.
    #[must_use]
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.state.keys.iter().map(|k| k.info).collect()
    }

    /// The active key version (there is always exactly one).
    #[must_use]
    pub fn active(&self) -> KeyInfo {
        self.state.keys[self.state.active].info
    }

    /// The recipient identity and public key of a key version, for sealing to it.
    #[must_use]
    pub fn recipient(&self, info: &KeyInfo) -> RecipientPublicKey {
        RecipientPublicKey {
            id: RecipientId {
                region: self.region.clone(),
                custodian: self.custodian.clone(),
                key_id: info.key_id,
                key_version: info.version,
            },
            public_key: info.public_key,
        }
    }

    /// The private key of version `version`, if its key id is `key_id`. Retired versions
    /// still unwrap.
    ///
    /// # Errors
    /// [`Denial::UnknownKey`] if there is no such version or its key id differs;
    /// [`Denial::KeyDestroyed`] if it was destroyed.
    pub fn secret(
        &self,
        key_id: &KeyId,
        version: KeyVersion,
    ) -> Result<&RecipientSecretKey, Denial> {
        let entry = self
            .state
            .entry(version)
            .filter(|k| k.info.key_id == *key_id)
            .ok_or(Denial::UnknownKey)?;
        entry.secret.as_ref().ok_or(Denial::KeyDestroyed)
    }

    /// Adds a new active key version (highest version + 1); the previously active one becomes
    /// retired. Persisted before returning.
    ///
    /// # Errors
    /// [`Error::Keystore`] if `kek` is not the KEK the keystore is sealed under, or versions
    /// are exhausted; [`Error::Io`]; [`Error::Envelope`] if `rng` fails.
    pub fn rotate(
        &mut self,
        kek: &dyn KeyEncryptionKey,
        rng: &mut dyn Randomness,
        now: u64,
    ) -> Result<KeyInfo> {
        self.check_kek(kek)?;
        let highest = self.state.keys.iter().map(|k| k.info.version.0).max();
        let version = highest
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| Error::Keystore("key versions exhausted".into()))?;
        let entry = new_key(KeyVersion(version), rng, now)?;
        let info = entry.info;
        let mut keys = self.state.keys.clone();
        for k in &mut keys {
            if k.info.status == KeyStatus::Active {
                k.info.status = KeyStatus::Retired;
            }
        }
        keys.push(entry);
        self.commit(kek, self.state.manifest_serial, keys)?;
        Ok(info)
    }

    /// Retires `version` so that nothing new is sealed to it; it still unwraps.
    ///
    /// Exactly one version is always active, and [`Self::rotate`] is what retires the
    /// previous one, so this never changes the keystore: it confirms that `version` is
    /// retired (a no-op for a retired version) and refuses the active and destroyed ones.
    ///
    /// # Errors
    /// [`Error::Keystore`] for the active version ("rotate first") or a KEK other than the
    /// one the keystore is sealed under; [`Error::Denied`] with [`Denial::UnknownKey`] or
    /// [`Denial::KeyDestroyed`]; [`Error::Io`].
    pub fn retire(&mut self, version: KeyVersion, kek: &dyn KeyEncryptionKey) -> Result<()> {
        self.check_kek(kek)?;
        match self.status_of(version)? {
            KeyStatus::Retired => Ok(()),
            KeyStatus::Active => Err(Error::Keystore(format!(
                "key version {} is the active key: rotate first",
                version.0
            ))),
            KeyStatus::Destroyed => Err(Error::Denied(Denial::KeyDestroyed)),
        }
    }

    /// Destroys a retired `version`: its private key is wiped (zeroized), its public part is
    /// kept with status destroyed, and the whole keystore is re-sealed under `new_kek` (fresh
    /// nonce) and written atomically. Copies of the old file then open only with the old KEK,
    /// and the new file never held the destroyed key. The operator must destroy every copy of
    /// the old KEK; keep `new_kek` safe **before** calling this (see
    /// [`LocalKek::write_file`](crate::kek::LocalKek::write_file)).
    ///
    /// # Errors
    /// [`Error::Keystore`] if `new_kek` is the KEK the keystore is already sealed under, or
    /// `version` is active ("rotate, then retire"); [`Error::Denied`] with
    /// [`Denial::UnknownKey`] or [`Denial::KeyDestroyed`] (already destroyed); [`Error::Io`].
    /// On error the keystore (in memory and on disk) is unchanged.
    pub fn destroy(&mut self, version: KeyVersion, new_kek: &dyn KeyEncryptionKey) -> Result<()> {
        if new_kek.id() == self.kek_id {
            return Err(Error::Keystore(format!(
                "destroy needs a new key-encryption key: KEK {} already sealed this keystore, \
                 so it would still open older copies holding the key",
                self.kek_id
            )));
        }
        match self.status_of(version)? {
            KeyStatus::Retired => {}
            KeyStatus::Active => {
                return Err(Error::Keystore(format!(
                    "key version {} is the active key: rotate, then retire, before destroying",
                    version.0
                )));
            }
            KeyStatus::Destroyed => return Err(Error::Denied(Denial::KeyDestroyed)),
        }
        let mut keys = self.state.keys.clone();
        for k in keys.iter_mut().filter(|k| k.info.version == version) {
            k.info.status = KeyStatus::Destroyed;
            // Dropping the key zeroizes it.
            k.secret = None;
        }
        self.commit(new_kek, self.state.manifest_serial, keys)?;
        self.kek_id = new_kek.id();
        Ok(())
    }

    /// The Ed25519 public key that signs this custodian's manifests (clients pin it).
    #[must_use]
    pub fn manifest_public_key(&self) -> [u8; 32] {
        self.manifest_public_key
    }

    /// An owned signer over the manifest signing key, for audit-log checkpoints.
    #[must_use]
    pub fn manifest_signer(&self) -> ManifestSigner {
        ManifestSigner {
            pair: std::sync::Arc::new(ed25519_key_pair(&self.state.manifest_seed)),
            public_key: self.manifest_public_key,
        }
    }

    /// The key of the audit log's mailbox commitments:
    /// HKDF-SHA256(salt = `custodia audit v1`, ikm = manifest seed,
    /// info = `mailbox commitment key`), 32 bytes. It is stable for the keystore's life, so
    /// the custodian's own auditors can recompute commitments from the restricted details.
    #[must_use]
    pub fn audit_commitment_key(&self) -> Zeroizing<[u8; 32]> {
        use ring::hkdf;
        let mut out = Zeroizing::new([0u8; 32]);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"custodia audit v1")
            .extract(&self.state.manifest_seed.0);
        let filled = prk
            .expand(&[b"mailbox commitment key"], Len32)
            .and_then(|okm| okm.fill(out.as_mut()));
        if filled.is_err() {
            unreachable!("HKDF-SHA256 always yields 32 bytes");
        }
        out
    }

    /// Signs a manifest of every key version, valid from `now` through
    /// `now + validity_secs`. Its serial is one more than the last one signed, and is
    /// persisted before the manifest is returned, so serials never repeat, even across
    /// restarts.
    ///
    /// # Errors
    /// [`Error::Keystore`] if `kek` is not the KEK the keystore is sealed under, or on serial
    /// or time overflow; [`Error::Io`].
    pub fn sign_manifest(
        &mut self,
        kek: &dyn KeyEncryptionKey,
        now: u64,
        validity_secs: u64,
    ) -> Result<SignedManifest> {
        self.check_kek(kek)?;
        let serial = self
            .state
            .manifest_serial
            .checked_add(1)
            .ok_or_else(|| Error::Keystore("manifest serials exhausted".into()))?;
        let not_after = now
            .checked_add(validity_secs)
            .ok_or_else(|| Error::Keystore("manifest validity overflows".into()))?;
        let key_pair = self.state.manifest_seed.key_pair()?;
        self.commit(kek, serial, self.state.keys.clone())?;
        let manifest = Manifest {
            region: self.region.as_str().to_owned(),
            custodian: self.custodian.as_str().to_owned(),
            serial,
            issued_at: now,
            not_after,
            signing_key: hex::encode(self.manifest_public_key),
            keys: self
                .state
                .keys
                .iter()
                .map(|k| ManifestKey {
                    key_id: hex::encode(k.info.key_id.0),
                    version: k.info.version.0,
                    status: k.info.status,
                    public_key: hex::encode(k.info.public_key),
                })
                .collect(),
        };
        let signature = hex::encode(
            key_pair
                .sign(&crate::manifest::signed_bytes(&manifest))
                .as_ref(),
        );
        Ok(SignedManifest {
            manifest,
            signature,
        })
    }

    fn check_kek(&self, kek: &dyn KeyEncryptionKey) -> Result<()> {
        let id = kek.id();
        if id == self.kek_id {
            Ok(())
        } else {
            Err(Error::Keystore(format!(
                "sealed under KEK {}, not {id}",
                self.kek_id
            )))
        }
    }

    fn status_of(&self, version: KeyVersion) -> Result<KeyStatus> {
        self.state
            .entry(version)
            .map(|k| k.info.status)
            .ok_or(Error::Denied(Denial::UnknownKey))
    }

    /// Checks and persists a new state under `kek`, then makes it current. On error nothing
    /// changes.
    fn commit(
        &mut self,
        kek: &dyn KeyEncryptionKey,
        manifest_serial: u64,
        keys: Vec<KeyEntry>,
    ) -> Result<()> {
        let next = State::new(self.state.manifest_seed.clone(), manifest_serial, keys)?;
        self.persist(&next, kek, true)?;
        // The old state (and any key removed from it) is zeroized as it drops.
        self.state = next;
        Ok(())
    }

    fn persist(&self, state: &State, kek: &dyn KeyEncryptionKey, replace: bool) -> Result<()> {
        let json = state.to_json()?;
        let sealed = kek.seal(&aad(&self.region, &self.custodian, self.insecure), &json)?;
        let file = KeystoreFile {
            format: FORMAT.to_owned(),
            region: self.region.as_str().to_owned(),
            custodian: self.custodian.as_str().to_owned(),
            insecure: self.insecure,
            kek_id: kek.id(),
            sealed: hex::encode(sealed),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Keystore(format!("cannot encode keystore: {e}")))?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes, replace)
    }
}

fn new_key(version: KeyVersion, rng: &mut dyn Randomness, now: u64) -> Result<KeyEntry> {
    let secret = RecipientSecretKey::generate(rng)?;
    let public_key = secret.public_key()?;
    Ok(KeyEntry {
        info: KeyInfo {
            version,
            key_id: KeyId::of(&public_key),
            public_key,
            status: KeyStatus::Active,
            created_at: now,
        },
        secret: Some(secret),
    })
}

fn manifest_public_key(seed: &SigningSeed) -> Result<[u8; 32]> {
    let pair = seed.key_pair()?;
    let mut out = [0u8; 32];
    out.copy_from_slice(pair.public_key().as_ref());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kek::LocalKek;
    use crate::manifest::ManifestPin;
    use custodia_envelope::{DeterministicRandomness, ObjectId, Share, unwrap_share, wrap_share};

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        kek: LocalKek,
        rng: DeterministicRandomness,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let mut rng = DeterministicRandomness::new(b"keystore tests");
        let kek = LocalKek::generate(&mut rng).unwrap();
        Fixture {
            _dir: dir,
            path,
            kek,
            rng,
        }
    }

    fn ie() -> Region {
        Region::new("ie").unwrap()
    }

    fn dublin() -> CustodianName {
        CustodianName::new("dublin-1").unwrap()
    }

    fn create(f: &mut Fixture, insecure: bool) -> Keystore {
        Keystore::create(&f.path, &ie(), &dublin(), insecure, &f.kek, &mut f.rng, 100).unwrap()
    }

    /// Decrypts the secrets JSON of the file at `path` (test access to the sealed layer).
    fn decrypted(path: &Path, kek: &LocalKek) -> Zeroizing<Vec<u8>> {
        let file: KeystoreFile = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let aad = aad(
            &Region::new(&file.region).unwrap(),
            &CustodianName::new(&file.custodian).unwrap(),
            file.insecure,
        );
        kek.open(&aad, &hex::decode(&file.sealed).unwrap()).unwrap()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// Wraps a share to `info`'s key and checks the keystore's secret unwraps it.
    fn assert_unwraps(ks: &Keystore, info: &KeyInfo, rng: &mut DeterministicRandomness) {
        let share = Share::random(rng).unwrap();
        let object_id = ObjectId([5; 32]);
        let stanza = wrap_share(&share, &ks.recipient(info), &object_id, b"ctx", rng).unwrap();
        let secret = ks.secret(&info.key_id, info.version).unwrap();
        assert_eq!(
            unwrap_share(secret, &stanza, &object_id, b"ctx").unwrap(),
            share
        );
    }

    #[test]
    fn create_open_round_trip() {
        let mut f = fixture();
        let ks = create(&mut f, false);
        assert_eq!(ks.keys().len(), 1);
        let active = ks.active();
        assert_eq!(active.version, KeyVersion(1));
        assert_eq!(active.status, KeyStatus::Active);
        assert_eq!(active.created_at, 100);
        assert_eq!(active.key_id, KeyId::of(&active.public_key));
        assert!(!ks.is_insecure());

        let opened = Keystore::open(&f.path, &f.kek, false).unwrap();
        assert_eq!(opened.region(), &ie());
        assert_eq!(opened.custodian(), &dublin());
        assert_eq!(opened.keys(), ks.keys());
        assert_eq!(opened.manifest_public_key(), ks.manifest_public_key());
        assert_eq!(opened.kek_id(), f.kek.id());
        assert_eq!(
            opened
                .secret(&active.key_id, active.version)
                .unwrap()
                .expose(),
            ks.secret(&active.key_id, active.version).unwrap().expose()
        );
        assert_unwraps(&opened, &active, &mut f.rng);

        let r = opened.recipient(&active);
        assert_eq!(r.id.region, ie());
        assert_eq!(r.id.custodian, dublin());
        assert_eq!(r.id.key_id, active.key_id);
        assert_eq!(r.id.key_version, KeyVersion(1));
        assert_eq!(r.public_key, active.public_key);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&f.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the keystore in the directory: no temporary files left.
        assert_eq!(
            std::fs::read_dir(f.path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn create_refuses_existing_file() {
        let mut f = fixture();
        create(&mut f, false);
        let before = std::fs::read(&f.path).unwrap();
        let e =
            Keystore::create(&f.path, &ie(), &dublin(), false, &f.kek, &mut f.rng, 1).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read(&f.path).unwrap(), before);
    }

    #[test]
    fn wrong_kek_is_named() {
        let mut f = fixture();
        create(&mut f, false);
        let other = LocalKek::from_bytes([1; 32]);
        let e = Keystore::open(&f.path, &other, false).unwrap_err();
        let want = format!("sealed under KEK {}, not {}", f.kek.id(), other.id());
        assert!(matches!(&e, Error::Keystore(m) if *m == want), "{e}");
    }

    #[test]
    fn insecure_keys_need_allow() {
        let mut f = fixture();
        let ks = create(&mut f, true);
        assert!(ks.is_insecure());
        assert!(matches!(
            Keystore::open(&f.path, &f.kek, false),
            Err(Error::InsecureKeys)
        ));
        assert!(Keystore::open(&f.path, &f.kek, true).unwrap().is_insecure());
        // A secure store opens either way.
        let mut g = fixture();
        create(&mut g, false);
        assert!(!Keystore::open(&g.path, &g.kek, true).unwrap().is_insecure());
    }

    #[test]
    fn flipping_insecure_flag_region_or_custodian_fails() {
        for insecure in [false, true] {
            let mut f = fixture();
            create(&mut f, insecure);
            let original = std::fs::read_to_string(&f.path).unwrap();
            let edits = [
                original.replace(
                    &format!("\"insecure\": {insecure}"),
                    &format!("\"insecure\": {}", !insecure),
                ),
                original.replace("\"region\": \"ie\"", "\"region\": \"us\""),
                original.replace("\"custodian\": \"dublin-1\"", "\"custodian\": \"dublin-2\""),
            ];
            for edited in edits {
                assert_ne!(edited, original);
                std::fs::write(&f.path, &edited).unwrap();
                let e = Keystore::open(&f.path, &f.kek, true).unwrap_err();
                assert!(matches!(e, Error::Keystore(_)), "{e}");
            }
        }
    }

    #[test]
    fn any_changed_byte_fails_to_open() {
        let mut f = fixture();
        let mut ks = create(&mut f, false);
        ks.rotate(&f.kek, &mut f.rng, 200).unwrap();
        let original = std::fs::read(&f.path).unwrap();
        assert!(Keystore::open(&f.path, &f.kek, true).is_ok());
        for i in 0..original.len() {
            for mask in [0x01, 0x20, 0x80] {
                let mut t = original.clone();
                t[i] ^= mask;
                std::fs::write(&f.path, &t).unwrap();
                assert!(
                    Keystore::open(&f.path, &f.kek, true).is_err(),
                    "byte {i} ^ {mask:#x} still opens"
                );
            }
        }
        std::fs::write(&f.path, &original[..original.len() - 2]).unwrap();
        assert!(Keystore::open(&f.path, &f.kek, true).is_err());
    }

    #[test]
    fn rotate_makes_new_active_and_old_retired_both_unwrap() {
        let mut f = fixture();
        let mut ks = create(&mut f, false);
        let v1 = ks.active();
        let v2 = ks.rotate(&f.kek, &mut f.rng, 200).unwrap();
        assert_eq!(v2.version, KeyVersion(2));
        assert_eq!(v2.status, KeyStatus::Active);
        assert_eq!(v2.created_at, 200);
        assert_ne!(v2.public_key, v1.public_key);
        assert_eq!(ks.active(), v2);
        let keys = ks.keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].status, KeyStatus::Retired);
        assert_eq!(keys[0].public_key, v1.public_key);

        // Persisted before returning.
        let opened = Keystore::open(&f.path, &f.kek, false).unwrap();
        assert_eq!(opened.keys(), ks.keys());
        for info in opened.keys() {
            assert_unwraps(&opened, &info, &mut f.rng);
        }
        let v3 = ks.rotate(&f.kek, &mut f.rng, 300).unwrap();
        assert_eq!(v3.version, KeyVersion(3));
        assert_eq!(
            ks.keys()
                .iter()
                .filter(|k| k.status == KeyStatus::Active)
                .count(),
            1
        );
        // A different KEK is refused and changes nothing.
        let other = LocalKek::from_bytes([1; 32]);
        assert!(matches!(
            ks.rotate(&other, &mut f.rng, 400),
            Err(Error::Keystore(_))
        ));
        assert_eq!(ks.keys().len(), 3);
        assert_eq!(
            Keystore::open(&f.path, &f.kek, false).unwrap().keys().len(),
            3
        );
    }

    #[test]
    fn secret_lookup_denials() {
        let mut f = fixture();
        let ks = create(&mut f, false);
        let v1 = ks.active();
        assert_eq!(
            ks.secret(&v1.key_id, KeyVersion(2)).unwrap_err(),
            Denial::UnknownKey
        );
        assert_eq!(
            ks.secret(&KeyId([0; 16]), KeyVersion(1)).unwrap_err(),
            Denial::UnknownKey
        );
    }

    #[test]
    fn retire_rules() {
        let mut f = fixture();
        let mut ks = create(&mut f, false);
        let e = ks.retire(KeyVersion(1), &f.kek).unwrap_err();
        assert!(e.to_string().contains("rotate first"), "{e}");
        ks.rotate(&f.kek, &mut f.rng, 200).unwrap();
        let before = std::fs::read(&f.path).unwrap();
        ks.retire(KeyVersion(1), &f.kek).unwrap(); // already retired: no-op
        assert_eq!(std::fs::read(&f.path).unwrap(), before);
        assert_eq!(ks.keys()[0].status, KeyStatus::Retired);
        assert!(ks.retire(KeyVersion(2), &f.kek).is_err());
        assert!(matches!(
            ks.retire(KeyVersion(9), &f.kek),
            Err(Error::Denied(Denial::UnknownKey))
        ));
        let new_kek = LocalKek::from_bytes([2; 32]);
        ks.destroy(KeyVersion(1), &new_kek).unwrap();
        assert!(matches!(
            ks.retire(KeyVersion(1), &new_kek),
            Err(Error::Denied(Denial::KeyDestroyed))
        ));
        // The old KEK no longer matches.
        assert!(matches!(
            ks.retire(KeyVersion(1), &f.kek),
            Err(Error::Keystore(_))
        ));
    }

    #[test]
    fn destroy_shreds_the_key_and_reseals_under_the_new_kek() {
        let mut f = fixture();
        let mut ks = create(&mut f, false);
        let v1 = ks.active();
        let v1_secret = *ks.secret(&v1.key_id, v1.version).unwrap().expose();
        let v2 = ks.rotate(&f.kek, &mut f.rng, 200).unwrap();
        let old_copy = f.path.with_extension("backup");
        std::fs::copy(&f.path, &old_copy).unwrap();

        let new_kek = LocalKek::generate(&mut f.rng).unwrap();
        // Refusals first: the active key, the same KEK, an unknown version.
        assert!(ks.destroy(KeyVersion(2), &new_kek).is_err());
        let e = ks.destroy(KeyVersion(1), &f.kek).unwrap_err();
        assert!(e.to_string().contains("new key-encryption key"), "{e}");
        assert!(matches!(
            ks.destroy(KeyVersion(7), &new_kek),
            Err(Error::Denied(Denial::UnknownKey))
        ));
        assert_eq!(ks.kek_id(), f.kek.id());

        ks.destroy(KeyVersion(1), &new_kek).unwrap();
        assert_eq!(ks.kek_id(), new_kek.id());
        assert_eq!(
            ks.secret(&v1.key_id, v1.version).unwrap_err(),
            Denial::KeyDestroyed
        );
        assert_eq!(ks.keys()[0].status, KeyStatus::Destroyed);
        assert_eq!(ks.keys()[0].public_key, v1.public_key);
        assert_unwraps(&ks, &v2, &mut f.rng);
        assert!(matches!(
            ks.destroy(KeyVersion(1), &LocalKek::from_bytes([3; 32])),
            Err(Error::Denied(Denial::KeyDestroyed))
        ));

        // The new file opens with the new KEK, and the key stays destroyed.
        let opened = Keystore::open(&f.path, &new_kek, false).unwrap();
        assert_eq!(
            opened.secret(&v1.key_id, v1.version).unwrap_err(),
            Denial::KeyDestroyed
        );
        assert_eq!(opened.keys(), ks.keys());
        assert_eq!(opened.manifest_public_key(), ks.manifest_public_key());
        assert_unwraps(&opened, &v2, &mut f.rng);
        // ... not with the old one.
        assert!(matches!(
            Keystore::open(&f.path, &f.kek, false),
            Err(Error::Keystore(_))
        ));
        // The old copy does not open with the new KEK, even with its kek_id relabelled ...
        assert!(matches!(
            Keystore::open(&old_copy, &new_kek, false),
            Err(Error::Keystore(_))
        ));
        let relabelled = std::fs::read_to_string(&old_copy)
            .unwrap()
            .replace(&f.kek.id(), &new_kek.id());
        std::fs::write(&old_copy, relabelled).unwrap();
        assert!(matches!(
            Keystore::open(&old_copy, &new_kek, false),
            Err(Error::Keystore(_))
        ));

        // The destroyed private key is nowhere in the new file nor in its decrypted secrets,
        // raw or hex; the live key is (so the search works).
        let file = std::fs::read(&f.path).unwrap();
        let secrets = decrypted(&f.path, &new_kek);
        let v2_secret = *ks.secret(&v2.key_id, v2.version).unwrap().expose();
        for hay in [&file[..], &secrets[..]] {
            assert!(!contains(hay, &v1_secret));
            assert!(!contains(hay, hex::encode(v1_secret).as_bytes()));
        }
        assert!(contains(&secrets, hex::encode(v2_secret).as_bytes()));
        let v: serde_json::Value = serde_json::from_slice(&secrets).unwrap();
        assert!(v["keys"][0].get("private_key").is_none());
        assert_eq!(v["keys"][0]["status"], "destroyed");
    }

    #[test]
    fn manifest_serial_increases_across_reopen() {
        let mut f = fixture();
        let mut ks = create(&mut f, false);
        let m1 = ks.sign_manifest(&f.kek, 1000, 3600).unwrap();
        let m2 = ks.sign_manifest(&f.kek, 1001, 3600).unwrap();
        assert_eq!((m1.manifest.serial, m2.manifest.serial), (1, 2));
        assert_eq!(m1.manifest.not_after, 4600);
        drop(ks);
        let mut ks = Keystore::open(&f.path, &f.kek, false).unwrap();
        let m3 = ks.sign_manifest(&f.kek, 1002, 3600).unwrap();
        assert_eq!(m3.manifest.serial, 3);
        let pinned = ks.manifest_public_key();
        assert_eq!(
            m3.verify(&pinned, 1002).unwrap().signing_key,
            hex::encode(pinned)
        );

        // Serial survives a destroy (re-seal) too, and the manifest signing key does not change.
        ks.rotate(&f.kek, &mut f.rng, 1003).unwrap();
        let new_kek = LocalKek::from_bytes([4; 32]);
        ks.destroy(KeyVersion(1), &new_kek).unwrap();
        let mut ks = Keystore::open(&f.path, &new_kek, false).unwrap();
        assert_eq!(ks.manifest_public_key(), pinned);
        let m4 = ks.sign_manifest(&new_kek, 1004, 3600).unwrap();
        assert_eq!(m4.manifest.serial, 4);

        // Overflow of validity is refused without consuming a serial.
        assert!(ks.sign_manifest(&new_kek, u64::MAX, 1).is_err());
        assert_eq!(
            ks.sign_manifest(&new_kek, 1005, 1).unwrap().manifest.serial,
            5
        );
    }

    #[test]
    fn manifest_lists_every_key_and_pin_returns_only_active() {
        let mut f = fixture();
        let mut ks = create(&mut f, false);
        ks.rotate(&f.kek, &mut f.rng, 200).unwrap();
        let v3 = ks.rotate(&f.kek, &mut f.rng, 300).unwrap();
        let new_kek = LocalKek::from_bytes([5; 32]);
        ks.destroy(KeyVersion(1), &new_kek).unwrap();
        let sm = ks.sign_manifest(&new_kek, 1000, 60).unwrap();
        let statuses: Vec<_> = sm
            .manifest
            .keys
            .iter()
            .map(|k| (k.version, k.status))
            .collect();
        assert_eq!(
            statuses,
            [
                (1, KeyStatus::Destroyed),
                (2, KeyStatus::Retired),
                (3, KeyStatus::Active)
            ]
        );
        let mut pin = ManifestPin::new(ks.manifest_public_key());
        let recipients = pin.accept(&sm, 1000).unwrap();
        assert_eq!(recipients, vec![ks.recipient(&v3)]);
        // A newer manifest is accepted; replaying the older one is a rollback.
        let newer = ks.sign_manifest(&new_kek, 1001, 60).unwrap();
        pin.accept(&newer, 1001).unwrap();
        assert!(pin.accept(&sm, 1001).is_err());
    }

    #[test]
    fn manifest_signer_and_audit_commitment_key() {
        use ring::{hmac, signature};
        let mut f = fixture();
        let ks = create(&mut f, false);
        let seed = ks.state.manifest_seed.0;
        let signer = ks.manifest_signer();
        assert_eq!(signer.public_key(), ks.manifest_public_key());
        assert_eq!(
            ManifestSigner::from_seed(seed).public_key(),
            ks.manifest_public_key()
        );
        let sig = signer.sign(b"checkpoint");
        signature::UnparsedPublicKey::new(&signature::ED25519, ks.manifest_public_key())
            .verify(b"checkpoint", &sig)
            .unwrap();
        let dbg = format!("{signer:?}");
        assert!(dbg.contains("redacted") && !dbg.contains(&hex::encode(seed)));

        // RFC 5869 by hand: PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info || 0x01).
        let salt = hmac::Key::new(hmac::HMAC_SHA256, b"custodia audit v1");
        let prk = hmac::sign(&salt, &seed);
        let prk = hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref());
        let okm = hmac::sign(&prk, b"mailbox commitment key\x01");
        let key = ks.audit_commitment_key();
        assert_eq!(&key[..], okm.as_ref());
        // Stable across reopen; not the seed.
        let reopened = Keystore::open(&f.path, &f.kek, false).unwrap();
        assert_eq!(*reopened.audit_commitment_key(), *key);
        assert_ne!(*key, seed);
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut f = fixture();
        let ks = create(&mut f, false);
        let v1 = ks.active();
        let secret = ks.secret(&v1.key_id, v1.version).unwrap().expose();
        let dbg = format!("{ks:?}");
        assert!(dbg.contains("redacted"));
        assert!(!dbg.contains(&hex::encode(secret)));
        assert!(!dbg.contains(&format!("{secret:?}")));
        assert!(!dbg.contains(&format!("{:?}", ks.state.manifest_seed.0)));
    }

    #[test]
    fn secrets_json_never_outgrows_its_buffer() {
        let secret = RecipientSecretKey::from_bytes([0xff; 32]);
        let public_key = secret.public_key().unwrap();
        let widest = |version, status, secret: Option<RecipientSecretKey>| KeyEntry {
            info: KeyInfo {
                version: KeyVersion(version),
                key_id: KeyId::of(&public_key),
                public_key,
                status,
                created_at: u64::MAX,
            },
            secret,
        };
        let keys = vec![
            widest(u32::MAX - 2, KeyStatus::Destroyed, None),
            widest(u32::MAX - 1, KeyStatus::Retired, Some(secret.clone())),
            widest(u32::MAX, KeyStatus::Active, Some(secret)),
        ];
        let state = State::new(SigningSeed([0xff; 32]), u64::MAX, keys).unwrap();
        let json = state.to_json().unwrap();
        assert_eq!(json.capacity(), secrets_capacity(3));
        let back = State::from_json(&json).unwrap();
        assert_eq!(back.keys.len(), 3);
        assert_eq!(back.manifest_serial, u64::MAX);
    }

    #[test]
    fn damaged_secrets_are_refused() {
        let secret = RecipientSecretKey::from_bytes([0xab; 32]);
        let pk = hex::encode(secret.public_key().unwrap());
        let sk = hex::encode(secret.expose());
        let seed = hex::encode([2u8; 32]);
        let doc = |keys: &str| {
            format!(r#"{{"manifest_seed":"{seed}","manifest_serial":0,"keys":[{keys}]}}"#)
        };
        let key = |v: u32, status: &str, private: bool| {
            let private = if private {
                format!(r#","private_key":"{sk}""#)
            } else {
                String::new()
            };
            format!(
                r#"{{"version":{v},"status":"{status}","created_at":0,"public_key":"{pk}"{private}}}"#
            )
        };
        assert!(State::from_json(doc(&key(1, "active", true)).as_bytes()).is_ok());
        let bad = [
            doc(""),
            doc(&key(1, "active", false)),
            doc(&key(1, "destroyed", true)),
            doc(&key(1, "retired", true)),
            doc(&format!(
                "{},{}",
                key(1, "active", true),
                key(2, "active", true)
            )),
            doc(&format!(
                "{},{}",
                key(2, "retired", true),
                key(1, "active", true)
            )),
            doc(&format!(
                "{},{}",
                key(1, "retired", true),
                key(1, "active", true)
            )),
            doc(&key(0, "active", true)),
            doc(&key(1, "active", true)).replace(&sk, &hex::encode([3u8; 32])),
            doc(&key(1, "active", true)).replace(&sk, &sk.to_uppercase()),
            doc(&key(1, "active", true))
                .replace("\"manifest_serial\"", "\"extra\":1,\"manifest_serial\""),
        ];
        for json in bad {
            let e = State::from_json(json.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::Keystore(_)), "{json}");
            assert!(!e.to_string().contains(&sk), "error echoes a secret: {e}");
        }
    }
}
