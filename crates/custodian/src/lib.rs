//! # custodia-custodian
//!
//! The region-local key-custody service. A custodian is run by an independent key holder in
//! one region; it is the only place where its share of that region's data keys can be
//! unwrapped, and it decides every unwrap by policy, writing each decision durably before any
//! share leaves.
//!
//! ## In scope
//! Keystore (sealed at rest), signed manifest, caller identity from mTLS, policy, lawful-access
//! approvals (format, signing, verifying), decision log, the HTTPS API and its typed client.
//!
//! ## Out of scope
//! The envelope format (`custodia-envelope`), sealing and opening objects (the SDK).

pub mod admission;
pub mod api;
pub mod approval;
pub mod audit;
pub mod audit_store;
pub mod client;
pub mod config;
pub mod decision_log;
pub mod error;
pub mod kek;
pub mod keystore;
pub mod manifest;
pub mod metrics;
pub mod policy;
pub mod policy_tls;
pub mod ratelimit;
pub mod server;
pub mod service;
pub mod tls;
pub mod work;

pub use error::{Error, Result};
