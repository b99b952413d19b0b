//! Key-encryption keys (KEKs): what seals the keystore at rest, behind a small trait so an HSM
//! or a KMS can take the place of the local key later.
//!
//! [`LocalKek`] is AES-256-GCM (NIST SP 800-38D, through ring) under a 32-byte key kept in a
//! file or an environment variable as 64 hex characters:
//!
//! ```text
//! kek_id = hex(SHA-256("custodia kek id v1" || key)[0..8])        16 lowercase hex characters
//! sealed = nonce[12] || AES-256-GCM(key, nonce, aad, plaintext) || tag[16]
//! ```
//! The nonce is drawn from the system CSPRNG for every seal. A KEK seals a handful of times
//! in its life (once per keystore change), far below the 2^32 random-nonce limit.
//!
//! This module also holds `write_atomic`, the one way this crate replaces a file holding
//! key material: a temporary file of mode 0600 in the same directory, fsync, rename (or a
//! hard link when the target must not exist yet), fsync of the directory.

use core::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use custodia_envelope::Randomness;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, Result};

/// Length of a [`LocalKek`] in bytes.
pub const KEK_LEN: usize = 32;
/// Length of the AES-GCM tag appended by [`LocalKek::seal`].
const TAG_LEN: usize = 16;
/// Domain label of the KEK id hash.
const LABEL_KEK_ID: &[u8] = b"custodia kek id v1";
/// Longest KEK file accepted (64 hex characters and a line ending, with room to spare).
const MAX_KEK_FILE: u64 = 128;
/// Read buffer capacity for a KEK file: above the read limit, so the buffer never grows.
const KEK_READ_CAPACITY: usize = 256;

/// A key that seals and opens the keystore. Implemented by [`LocalKek`]; an HSM or KMS client
/// can implement it too.
pub trait KeyEncryptionKey: Send + Sync {
    /// Short public identifier, stored beside sealed data so that a wrong KEK gives a clear
    /// error instead of a bare authentication failure. Never reveals the key.
    fn id(&self) -> String;

    /// Encrypts and authenticates `plaintext`, binding `aad`. Each call uses a fresh nonce.
    ///
    /// # Errors
    /// [`Error::Keystore`] if randomness or the backend fails.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>>;

    /// Opens what [`Self::seal`] produced with the same `aad`.
    ///
    /// # Errors
    /// [`Error::Keystore`] if the key is wrong, or `aad` or `sealed` were changed.
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// A local AES-256-GCM key-encryption key. Zeroized on drop; `Debug` prints only its id.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LocalKek {
    key: [u8; KEK_LEN],
    id: String,
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalKek(id={}, key=<redacted>)", self.id)
    }
}

impl LocalKek {
    /// Wraps raw key bytes. The caller is responsible for zeroizing its own copy.
    #[must_use]
    pub fn from_bytes(key: [u8; KEK_LEN]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(LABEL_KEK_ID);
        ctx.update(&key);
        let id = hex::encode(&ctx.finish().as_ref()[..8]);
        Self { key, id }
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// [`Error::Envelope`] (randomness) if `rng` fails.
    pub fn generate(rng: &mut dyn Randomness) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        rng.fill(key.as_mut())?;
        Ok(Self::from_bytes(*key))
    }

    /// From 64 hex characters (either case), nothing else.
    ///
    /// # Errors
    /// [`Error::Config`] for field `kek` if `s` is not exactly 64 hex characters. The message
    /// never repeats the input.
    pub fn from_hex(s: &str) -> Result<Self> {
        Self::parse_hex(s.as_bytes(), "kek")
    }

    fn parse_hex(s: &[u8], field: &str) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        if s.len() != 2 * KEK_LEN || hex::decode_to_slice(s, key.as_mut()).is_err() {
            return Err(Error::config(
                field,
                "a key-encryption key must be exactly 64 hex characters",
            ));
        }
        Ok(Self::from_bytes(*key))
    }

    /// Reads a key written by [`Self::write_file`]: 64 hex characters, optionally followed by
    /// one line ending (`\n` or `\r\n`).
    ///
    /// On Unix the file must not be accessible to group or others (`mode & 0o077 == 0`).
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read; [`Error::Config`] (field = the path) if it is not a
    /// regular file, is accessible to group or others, or does not hold a key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let field = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // Checked on the open handle, so the file checked is the file read.
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::config(field, "not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::config(
                    field,
                    format!(
                        "key-encryption key file has mode {mode:03o}: group or others can access it; \
                         run `chmod 600` on it"
                    ),
                ));
            }
        }
        // Capacity above the read limit: the buffer never grows, so no copy is left behind.
        let mut buf = Zeroizing::new(Vec::with_capacity(KEK_READ_CAPACITY));
        file.take(MAX_KEK_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        let text: &[u8] = buf
            .strip_suffix(b"\r\n")
            .or_else(|| buf.strip_suffix(b"\n"))
            .unwrap_or(&buf);
        Self::parse_hex(text, &field)
    }

    /// Reads the key from environment variable `var`: 64 hex characters, optionally followed
    /// by one line ending.
    ///
    /// # Errors
    /// [`Error::Config`] (field = `var`) if the variable is unset, not Unicode, or not a key.
    pub fn from_env(var: &str) -> Result<Self> {
        let value = Zeroizing::new(std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => Error::config(var, "not set"),
            std::env::VarError::NotUnicode(_) => Error::config(var, "not valid Unicode"),
        })?);
        let text = value
            .strip_suffix("\r\n")
            .or_else(|| value.strip_suffix('\n'))
            .unwrap_or(&value);
        Self::parse_hex(text.as_bytes(), var)
    }

    /// Writes the key as 64 lowercase hex characters and a newline to a new file of mode
    /// 0600, atomically (see `write_atomic`). Refuses to replace an existing file: losing a
    /// key-encryption key loses the keystore it seals.
    ///
    /// # Errors
    /// [`Error::Io`] (kind `AlreadyExists` if `path` exists).
    pub fn write_file(&self, path: &Path) -> Result<()> {
        let mut text = Zeroizing::new([0u8; 2 * KEK_LEN + 1]);
        hex::encode_to_slice(self.key, &mut text[..2 * KEK_LEN])
            .map_err(|_| Error::Keystore("hex encoding failed".into()))?;
        text[2 * KEK_LEN] = b'\n';
        write_atomic(path, text.as_ref(), false)
    }

    fn aead_key(&self) -> Result<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| Error::Keystore("AES-256-GCM refused the key".into()))
    }
}

impl KeyEncryptionKey for LocalKek {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Keystore("no randomness for a KEK nonce".into()))?;
        // Exact capacity: encrypting in place never reallocates, so no plaintext copy is left
        // behind in freed memory.
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .aead_key()?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| Error::Keystore("AES-256-GCM seal failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (nonce, body) = sealed
            .split_first_chunk::<NONCE_LEN>()
            .filter(|(_, body)| body.len() >= TAG_LEN)
            .ok_or_else(|| Error::Keystore("sealed data is too short".into()))?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .aead_key()?
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| {
                Error::Keystore(format!(
                    "does not open under KEK {}: wrong key, or the data or its labels were changed",
                    self.id
                ))
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// Writes `contents` to `path` so that a crash leaves either the old file or the new one:
/// a temporary file of mode 0600 is created next to `path`, written and fsynced, then renamed
/// over `path` (`replace`) or hard-linked to it (`!replace`, failing with `AlreadyExists` if
/// `path` exists), and the directory is fsynced.
///
/// # Errors
/// [`Error::Io`] naming the file that failed.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], replace: bool) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let name = path
        .file_name()
        .ok_or_else(|| Error::config(path.display().to_string(), "not a file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut salt = [0u8; 8];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::Keystore("no randomness for a temporary file name".into()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        hex::encode(salt)
    ));

    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(contents).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        if replace {
            std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
        } else {
            std::fs::hard_link(&tmp, path).map_err(|e| Error::io(path, e))
        }
    })();
    // After a rename the temporary name is gone; after a link or a failure it must go.
    if !replace || result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use custodia_envelope::DeterministicRandomness;

    fn kek(seed: &[u8]) -> LocalKek {
        LocalKek::generate(&mut DeterministicRandomness::new(seed)).unwrap()
    }

    #[test]
    fn round_trip() {
        let k = kek(b"a");
        let sealed = k.seal(b"aad", b"secret bytes").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 12 + TAG_LEN);
        assert_eq!(k.open(b"aad", &sealed).unwrap().as_slice(), b"secret bytes");
        // Fresh nonce each time.
        assert_ne!(k.seal(b"aad", b"secret bytes").unwrap(), sealed);
        // Empty plaintext works too.
        let empty = k.seal(b"", b"").unwrap();
        assert!(k.open(b"", &empty).unwrap().is_empty());
    }

    #[test]
    fn wrong_kek_wrong_aad_and_tampering_fail() {
        let k = kek(b"a");
        let other = kek(b"b");
        assert_ne!(k.id(), other.id());
        let sealed = k.seal(b"aad", b"secret bytes").unwrap();
        assert!(matches!(
            other.open(b"aad", &sealed),
            Err(Error::Keystore(_))
        ));
        assert!(matches!(k.open(b"aae", &sealed), Err(Error::Keystore(_))));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(k.open(b"aad", &t).is_err(), "byte {i}");
        }
        assert!(k.open(b"aad", &sealed[..sealed.len() - 1]).is_err());
        assert!(k.open(b"aad", &sealed[..NONCE_LEN + TAG_LEN - 1]).is_err());
        assert!(k.open(b"aad", &[]).is_err());
    }

    #[test]
    fn id_is_short_public_and_stable() {
        let k = LocalKek::from_bytes([7; 32]);
        let id = k.id();
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(LocalKek::from_bytes([7; 32]).id(), id);
        let dbg = format!("{k:?}");
        assert!(dbg.contains(&id) && dbg.contains("redacted"));
        assert!(!dbg.contains(&hex::encode([7u8; 32])));
        assert!(!dbg.contains("7, 7"));
    }

    #[test]
    fn hex_parsing() {
        let hex64 = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let k = LocalKek::from_hex(hex64).unwrap();
        assert_eq!(
            k.id(),
            LocalKek::from_hex(&hex64.to_lowercase()).unwrap().id()
        );
        for bad in [
            "",
            &hex64[..63],
            &format!("{hex64}0"),
            &format!("{hex64}\n"),
            &hex64.replace('0', "g"),
        ] {
            let e = LocalKek::from_hex(bad).unwrap_err();
            assert!(matches!(e, Error::Config { .. }), "{bad:?}");
            assert!(!e.to_string().contains("8899"), "error echoes the key: {e}");
        }
    }

    #[test]
    fn file_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let k = kek(b"file");
        k.write_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert_eq!(LocalKek::from_file(&path).unwrap().id(), k.id());
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Never overwrites.
        let e = kek(b"other").write_file(&path).unwrap_err();
        assert!(
            matches!(e, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
        );
        assert_eq!(LocalKek::from_file(&path).unwrap().id(), k.id());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            for mode in [0o640, 0o604, 0o620, 0o644] {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
                let e = LocalKek::from_file(&path).unwrap_err();
                assert!(matches!(e, Error::Config { .. }), "{mode:o}");
                assert!(e.to_string().contains("chmod 600"));
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
            assert!(LocalKek::from_file(&path).is_ok());
        }

        // CRLF is accepted; anything else around the key is not.
        let crlf = dir.path().join("crlf");
        write_atomic(&crlf, format!("{}\r\n", text.trim_end()).as_bytes(), false).unwrap();
        assert_eq!(LocalKek::from_file(&crlf).unwrap().id(), k.id());
        let padded = dir.path().join("padded");
        write_atomic(&padded, format!(" {text}").as_bytes(), false).unwrap();
        assert!(matches!(
            LocalKek::from_file(&padded),
            Err(Error::Config { .. })
        ));
        let long = dir.path().join("long");
        write_atomic(&long, &[b'a'; 4096], false).unwrap();
        assert!(matches!(
            LocalKek::from_file(&long),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            LocalKek::from_file(dir.path()),
            Err(Error::Config { .. } | Error::Io { .. })
        ));
        assert!(matches!(
            LocalKek::from_file(&dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn write_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", false).unwrap();
        write_atomic(&path, b"two", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn env_var() {
        // Reading only: set_var is unsafe in edition 2024 and this crate forbids unsafe, so the
        // happy path is covered through `from_hex`/`from_file`, which share the parser.
        let e = LocalKek::from_env("CUSTODIA_TEST_KEK_SURELY_UNSET_4b1d").unwrap_err();
        assert!(e.to_string().contains("not set"));
        // PATH is set but is not a key.
        assert!(matches!(
            LocalKek::from_env("PATH"),
            Err(Error::Config { .. })
        ));
    }
}
