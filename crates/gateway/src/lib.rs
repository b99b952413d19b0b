//! The Custodia gateway: a drop-in proxy in front of a mail store's blob storage that seals
//! every body before it reaches the store and opens it on the way out, streaming, in
//! constant memory. Only ciphertext reaches the store; a key no residency rule covers is
//! refused; an object without a Custodia header is never served as plaintext.
//!
//! * [`config`]: the TOML configuration; [`routes`]: bucket + key pattern → mailbox.
//! * [`codec`]: the streaming body codec; [`meta`]: what of a request is sealed with it.
//! * [`objects`]: the object operations with plaintext semantics, shared by the fronts.
//! * [`http_front`]: plain HTTP/WebDAV with bearer tokens; [`s3_front`]: the S3 API (s3s).
//! * [`store`]: the upstream stores (WebDAV, S3 re-signed with the gateway's credentials).
//! * [`gateway`]: building and serving from a [`Config`]; [`server`]: the accept loop;
//!   [`metrics`]: Prometheus text.
//! * [`ops`]: bulk jobs over a bucket (migrate, rewrap, verify, shred), with checkpoints.

pub mod body_idle;
pub mod codec;
pub mod config;
pub mod error;
pub mod gateway;
pub mod http_front;
pub mod meta;
pub mod metrics;
pub mod objects;
pub mod ops;
pub mod routes;
pub mod s3_front;
pub mod server;
pub mod slots;
pub mod store;

pub use config::Config;
pub use error::{Error, Result};
pub use gateway::Gateway;
