//! # custodia-envelope
//!
//! Custodia's sealed-object format: the header, the key schedule, the HPKE-wrapped data-key
//! shares, the chunked STREAM AEAD, and the length and range arithmetic. Byte-level spec:
//! `docs/FORMAT.md`.
//!
//! ## In scope
//! Pure functions and state machines over byte slices: no I/O, no async, no clocks.
//!
//! ## Out of scope
//! Talking to custodians, fetching objects, caching keys: the SDK and the gateway do that.
//!
//! ## Sealing and opening
//! ```
//! use custodia_envelope::*;
//! let mut rng = SystemRandomness::new();
//! let ie = Region::new("ie")?;
//! let secret = RecipientSecretKey::generate(&mut rng)?;
//! let recipient = RecipientPublicKey {
//!     id: RecipientId {
//!         region: ie.clone(),
//!         custodian: CustodianName::new("dublin-1")?,
//!         key_id: secret.key_id()?,
//!         key_version: KeyVersion(1),
//!     },
//!     public_key: secret.public_key()?,
//! };
//! let context = Context::new("mailbox-42", &ie)?;
//! let binding = Binding::new("mail", "mailbox-42/inbox/1.eml")?;
//! let opts = SealOptions {
//!     profile: Profile::DEFAULT,
//!     context: &context,
//!     binding: &binding,
//!     recipients: &[recipient],
//!     metadata: &Metadata::new(),
//! };
//! let stored = seal(&opts, b"Subject: hello\r\n\r\nhi", &mut rng)?;
//!
//! let header = Header::parse(&stored)?;
//! let shares = header.unwrap_with(&[secret])?; // a gateway asks the custodians instead
//! let unlocked = header.unlock(&shares, &binding)?;
//! assert_eq!(unlocked.open(&stored)?, b"Subject: hello\r\n\r\nhi");
//! # Ok::<(), custodia_envelope::Error>(())
//! ```

mod binding;
mod codec;
mod error;
mod header;
mod keys;
mod mailbox;
pub mod multipart;
mod names;
mod open;
mod pairs;
mod protect;
mod range;
mod reply;
mod rng;
mod seal;
mod secret;
mod split;
mod stanza;
mod stream;
mod wrap;

pub use binding::Binding;
pub use error::{Error, Result};
pub use header::{
    FORMAT_VERSION, Header, MAC_LEN, MAGIC, MAX_STANZAS, ObjectId, PREFIX_LEN, Profile, TAG_LEN,
    looks_sealed,
};
pub use keys::{Commitment, ObjectKeys};
pub use mailbox::{MAX_MAILBOX, MailboxError, canonical_domain, canonical_mailbox, is_invisible};
pub use names::{CustodianName, Region};
pub use open::{Opener, Unlocked, open_with_keys};
pub use pairs::{Context, Metadata};
pub use range::ChunkRange;
pub use reply::{ReplySealer, open_replies, seal_replies};
#[cfg(feature = "deterministic")]
pub use rng::DeterministicRandomness;
pub use rng::{Randomness, SystemRandomness};
pub use seal::{SealOptions, Sealer, new_header, seal, seal_in_place};
pub use secret::{DataKey, DerivedKey, KEY_LEN, Share};
pub use split::{combine, split};
pub use stanza::{ENC_LEN, KEY_ID_LEN, KeyId, KeyVersion, RecipientId, Stanza, WRAPPED_LEN};
pub use stream::{ChunkOpener, ChunkSealer, MAX_COUNTER, StreamNonce};
pub use wrap::{RecipientPublicKey, RecipientSecretKey, rewrap_stanza, unwrap_share, wrap_share};
