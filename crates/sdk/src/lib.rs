//! # custodia — the Custodia SDK
//!
//! What applications (a mail server, an archiver) link to seal and open mailbox data
//! in-process, exactly as the Custodia gateway does:
//!
//! * a [`Directory`] of each region's custodians (endpoints, pinned manifest keys, verified
//!   and cached manifests),
//! * a residency [`Policy`] (mailbox → region; no rule → refused),
//! * a [`Client`] that seals to all custodians of the mailbox's region (n-of-n, no custodian
//!   round trip), and opens by asking each custodian for its share: whole objects, ranges
//!   (only the chunks needed), streams (memory bounded by a chunk), batches (one call per
//!   custodian), and rewraps after a key rotation (`/v1/rewrap`; no share is released),
//! * a DEK cache for re-reads ([`CacheConfig`]); a key obtained with an approval is never
//!   cached,
//! * one [`Error`] type saying which region and custodian refused, why, and whether a retry
//!   can help.
//!
//! ## Out of scope
//! The object format (`custodia-envelope`), the custodian service (`custodia-custodian`),
//! storage: the application stores the sealed bytes wherever it likes.
//!
//! ## Example (needs running custodians: see `examples/seal_open.rs`)
//! ```no_run
//! # async fn demo(endpoint: custodia::CustodianEndpoint) -> Result<(), custodia::Error> {
//! use std::sync::Arc;
//! use custodia::{Client, Directory, Policy};
//! use custodia_envelope::{Binding, CustodianName, Metadata, Region};
//!
//! let ie = Region::new("ie")?;
//! let directory = Arc::new(
//!     Directory::builder()
//!         .custodian(&ie, &CustodianName::new("dublin")?, endpoint)?
//!         .build(),
//! );
//! directory.refresh().await?;
//! let policy = Policy::builder().domain("example.ie", &ie).build();
//! let client = Client::builder(directory, policy).build();
//!
//! let binding = Binding::new("mail", "aoife/inbox/1.eml")?;
//! let stored = client.seal("aoife@example.ie", &binding, b"hello", &Metadata::new())?;
//! let opened = client.open(&binding, &stored).await?;
//! assert_eq!(opened.plaintext, b"hello");
//! # Ok(()) }
//! ```

mod cache;
mod client;
mod directory;
mod error;
mod maintenance;
mod policy;

pub use cache::CacheConfig;
pub use client::{
    Client, ClientBuilder, ClientStats, Opened, RangeSource, refuse_multipart_record,
};
pub use directory::{CustodianEndpoint, Directory, DirectoryBuilder, Timeouts};
pub use error::{Error, Result};
pub use maintenance::{Rewrapped, SealCheck};
pub use policy::{Policy, PolicyBuilder};

/// The denial reasons a custodian gives (re-exported from `custodia-custodian`).
pub use custodia_custodian::api::Denial;
/// A lawful-access approval document (re-exported from `custodia-custodian`).
pub use custodia_custodian::approval::SignedApproval;
