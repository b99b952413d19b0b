//! The envelope's one error type, grouped by who is at fault.

use thiserror::Error;

/// Everything that can go wrong while sealing, parsing or opening an object.
///
/// Variants are grouped by cause, so a caller can tell what to do:
/// * **malformed input** (the stored bytes are not a well-formed object: refuse it, report damage),
/// * **authentication failures** (the bytes are well-formed but were tampered with, truncated,
///   moved, or the wrong key was used: refuse it, never serve any of it),
/// * **API misuse** (the caller asked for something the format cannot express: fix the call).
///
/// No variant ever carries key material or plaintext.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // ---- malformed input -------------------------------------------------------------------
    /// The input ended before a complete field could be read.
    #[error("truncated: {field} needs {needed} more bytes")]
    Truncated {
        /// Which field was being read.
        field: &'static str,
        /// How many more bytes it needed.
        needed: usize,
    },
    /// The bytes do not start with the Custodia magic: not a sealed object.
    #[error("not a Custodia object (bad magic)")]
    NotSealed,
    /// The header declares a format version this implementation does not read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
    /// A field holds a value outside the limits of the format (see docs/FORMAT.md, "Limits").
    #[error("{field} = {value} is outside the format's limits ({limit})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// The limit it broke, in words.
        limit: &'static str,
    },
    /// A field is not in its one canonical encoding (unsorted or duplicate keys, bad UTF-8,
    /// non-zero padding, a name with forbidden characters, ...).
    #[error("non-canonical {field}: {reason}")]
    NonCanonical {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The authenticated context lacks a required key (`mailbox` or `region`).
    #[error("context has no `{0}` entry")]
    MissingContextKey(&'static str),
    /// A recipient stanza names a region other than the object's context region.
    #[error("a recipient stanza is for another region than the object's context")]
    RegionMismatch,
    /// The stored length cannot be the length of any sealed object with this profile.
    #[error("stored length {0} is not a valid sealed-object length for this profile")]
    InvalidStoredLength(u64),

    // ---- authentication failures -----------------------------------------------------------
    /// A recipient stanza did not open with the given private key: wrong key, or the stanza,
    /// its context or its object id were changed.
    #[error(
        "recipient stanza did not authenticate (wrong key, or stanza/context/object id changed)"
    )]
    StanzaAuthentication,
    /// The data key rebuilt from the shares does not match the header's key commitment:
    /// a share is missing, extra, swapped or from another object.
    #[error("key commitment mismatch: the shares do not rebuild this object's data key")]
    CommitmentMismatch,
    /// The header MAC does not verify: the header was changed, or the object is being read
    /// under another name than the one it was sealed for (moved or swapped).
    #[error(
        "header did not authenticate (header changed, or object moved/swapped to another name)"
    )]
    HeaderAuthentication,
    /// The sealed metadata block did not decrypt.
    #[error("sealed metadata did not authenticate")]
    MetadataAuthentication,
    /// A body chunk did not authenticate: changed, reordered, duplicated or from another object.
    #[error("chunk {index} did not authenticate (changed, reordered, duplicated or truncated)")]
    ChunkAuthentication {
        /// Zero-based chunk index.
        index: u64,
    },
    /// The body ended without a final chunk: the object was truncated.
    #[error("object truncated: no final chunk")]
    Truncation,
    /// Bytes followed the final chunk.
    #[error("trailing data after the final chunk")]
    TrailingData,
    /// A part of a multipart object is not the one its layout names: from another upload or
    /// position, or (layout version 2) another envelope than the upload completed with — a
    /// part re-sent and put back, or swapped in.
    #[error("multipart layout mismatch: {0}")]
    LayoutMismatch(&'static str),
    /// A version 3 multipart layout whose tag does not verify under its part 1's layout key:
    /// the layout was written by someone who could not open part 1 (forged with public
    /// keys), or names other parts, sizes or metadata than it was written with.
    #[error("multipart layout does not authenticate")]
    LayoutAuthentication,

    // ---- API misuse ------------------------------------------------------------------------
    /// The caller passed an argument the format cannot express.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The header fields do not fit in the profile's header size.
    #[error("header needs {needed} bytes but the profile allows {available}")]
    HeaderTooLarge {
        /// Bytes the header needs.
        needed: usize,
        /// The profile's header size.
        available: usize,
    },
    /// A chunk was passed out of turn (after the final chunk, or a non-final chunk of the
    /// wrong size).
    #[error("chunk misuse: {0}")]
    ChunkMisuse(&'static str),
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Randomness,
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
