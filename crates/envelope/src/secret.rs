//! Secret values: the data key, its shares and recipient private keys.
//!
//! Every type here zeroizes on drop, has a `Debug` that prints a redaction, exposes its bytes
//! only through an explicit `expose()`, and compares in constant time.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Result;
use crate::rng::Randomness;

/// Length in bytes of a data key, a share and every derived symmetric key.
pub const KEY_LEN: usize = 32;

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// Wraps raw bytes. The caller is responsible for zeroizing its own copy.
            #[must_use]
            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(bytes)
            }

            /// Draws a fresh value from `rng`.
            ///
            /// # Errors
            /// [`crate::Error::Randomness`] if the random source fails.
            pub fn random(rng: &mut dyn Randomness) -> Result<Self> {
                let mut v = Self([0; KEY_LEN]);
                rng.fill(&mut v.0)?;
                Ok(v)
            }

            /// The secret bytes. Every call site is a place where the secret leaves this type.
            #[must_use]
            pub fn expose(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl Eq for $name {}
    };
}

secret_bytes!(
    /// The per-object data key (DEK). Every symmetric key of an object derives from it.
    DataKey
);

secret_bytes!(
    /// One custodian's XOR share of a data key. All shares of an object XOR to its [`DataKey`].
    Share
);

secret_bytes!(
    /// A symmetric key derived by the key schedule (chunk key, MAC key, metadata key).
    DerivedKey
);

/// Constant-time equality of two byte strings of any length (length is not secret).
#[must_use]
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}
