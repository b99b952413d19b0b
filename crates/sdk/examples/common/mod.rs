//! What the examples share: the `CUSTODIA_*` environment convention, the TLS setup and
//! building a [`Client`] for the configured custodian.
//!
//! Every example needs these variables (and some add their own):
//! `CUSTODIA_ADDR`, `CUSTODIA_SERVER_NAME`, `CUSTODIA_REGION`, `CUSTODIA_CUSTODIAN`,
//! `CUSTODIA_MANIFEST_KEY` (64 hex characters), `CUSTODIA_SERVER_CA`,
//! `CUSTODIA_CLIENT_CERT` and `CUSTODIA_CLIENT_KEY` (PEM files).
#![allow(
    dead_code,
    clippy::print_stdout,
    reason = "each example uses part of this module; examples print what they do"
)]

use std::sync::Arc;

use custodia::{Client, CustodianEndpoint, Directory, Policy};
use custodia_envelope::{CustodianName, Region};

/// A boxed error, enough for examples.
pub(crate) type BoxError = Box<dyn std::error::Error>;

/// The variables every example needs.
pub(crate) const VARS: [&str; 8] = [
    "CUSTODIA_ADDR",
    "CUSTODIA_SERVER_NAME",
    "CUSTODIA_REGION",
    "CUSTODIA_CUSTODIAN",
    "CUSTODIA_MANIFEST_KEY",
    "CUSTODIA_SERVER_CA",
    "CUSTODIA_CLIENT_CERT",
    "CUSTODIA_CLIENT_KEY",
];

/// The configuration read from the environment.
pub(crate) struct Config {
    addr: String,
    server_name: String,
    /// The custodian's region (the mailbox's home region).
    pub(crate) region: Region,
    custodian: CustodianName,
    manifest_key: [u8; 32],
    server_ca: String,
    client_cert: String,
    client_key: String,
    /// The values of the example's extra variables, in the order asked for.
    pub(crate) extra: Vec<String>,
}

/// Reads [`VARS`] and `extra` from the environment. `None` (after printing what `example`
/// needs) when any is unset: the example then exits successfully, so CI can run it anywhere.
///
/// # Errors
/// A variable that is set but invalid.
pub(crate) fn config(example: &str, extra: &[&str]) -> Result<Option<Config>, BoxError> {
    let names: Vec<&str> = VARS.iter().chain(extra).copied().collect();
    let values: Option<Vec<String>> = names
        .iter()
        .map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .collect();
    let Some(mut v) = values else {
        println!(
            "{example}: set {} to run against a custodian (see the source); nothing to do.",
            names.join(", ")
        );
        return Ok(None);
    };
    let extra = v.split_off(VARS.len());
    Ok(Some(Config {
        region: Region::new(&v[2])?,
        custodian: CustodianName::new(&v[3])?,
        manifest_key: hex32(&v[4]).ok_or("CUSTODIA_MANIFEST_KEY: 64 hex characters expected")?,
        addr: v[0].clone(),
        server_name: v[1].clone(),
        server_ca: v[5].clone(),
        client_cert: v[6].clone(),
        client_key: v[7].clone(),
        extra,
    }))
}

impl Config {
    /// The demo mailbox, homed in the configured region.
    pub(crate) fn mailbox(&self) -> String {
        format!("demo@{}.example", self.region.as_str())
    }

    /// A client connecting with `CUSTODIA_CLIENT_CERT`/`KEY`, its directory refreshed (the
    /// custodian's manifest fetched and verified, so it can seal).
    ///
    /// # Errors
    /// Unreadable PEM files, an unreachable custodian or a manifest that fails verification.
    pub(crate) async fn client(&self) -> Result<Client, BoxError> {
        let client = self.client_as(&self.client_cert, &self.client_key)?;
        client.directory().refresh().await?;
        Ok(client)
    }

    /// A client connecting with the certificate `cert` and key `key` (PEM files); its
    /// directory is not refreshed (opening needs no manifest).
    ///
    /// # Errors
    /// Unreadable PEM files.
    pub(crate) fn client_as(&self, cert: &str, key: &str) -> Result<Client, BoxError> {
        let endpoint = CustodianEndpoint {
            addr: self.addr.clone(),
            server_name: self.server_name.clone(),
            tls: tls(&self.server_ca, cert, key)?,
            manifest_key: self.manifest_key,
        };
        let directory = Arc::new(
            Directory::builder()
                .custodian(&self.region, &self.custodian, endpoint)?
                .build(),
        );
        let policy = Policy::builder()
            .mailbox(&self.mailbox(), &self.region)
            .build();
        Ok(Client::builder(directory, policy).build())
    }
}

fn tls(ca: &str, cert: &str, key: &str) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let roots = CertificateDer::pem_file_iter(ca)?.collect::<Result<Vec<_>, _>>()?;
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    Ok(custodia_custodian::tls::client_config(roots, chain, key)?)
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
