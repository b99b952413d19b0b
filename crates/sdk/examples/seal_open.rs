//! Seal a message for a mailbox and open it again through a running custodian.
//!
//! Run (against a custodian started with `custodia custodian serve`):
//! ```text
//! CUSTODIA_ADDR=127.0.0.1:7443 CUSTODIA_SERVER_NAME=localhost \
//! CUSTODIA_REGION=ie CUSTODIA_CUSTODIAN=dublin \
//! CUSTODIA_MANIFEST_KEY=<64 hex chars> CUSTODIA_SERVER_CA=server-ca.pem \
//! CUSTODIA_CLIENT_CERT=gateway-ie.pem CUSTODIA_CLIENT_KEY=gateway-ie.key \
//! cargo run -p custodia --example seal_open
//! ```
//! Without those variables it says what it needs and exits successfully (so CI can run it).
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;

use custodia::{Client, CustodianEndpoint, Directory, Policy};
use custodia_envelope::{Binding, CustodianName, Metadata, Region};

const VARS: [&str; 8] = [
    "CUSTODIA_ADDR",
    "CUSTODIA_SERVER_NAME",
    "CUSTODIA_REGION",
    "CUSTODIA_CUSTODIAN",
    "CUSTODIA_MANIFEST_KEY",
    "CUSTODIA_SERVER_CA",
    "CUSTODIA_CLIENT_CERT",
    "CUSTODIA_CLIENT_KEY",
];

fn tls(
    ca: &str,
    cert: &str,
    key: &str,
) -> Result<Arc<rustls::ClientConfig>, Box<dyn std::error::Error>> {
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let values: Vec<Option<String>> = VARS.iter().map(|v| std::env::var(v).ok()).collect();
    let Some(v) = values.into_iter().collect::<Option<Vec<String>>>() else {
        println!(
            "seal_open: set {} to run against a custodian (see the source); nothing to do.",
            VARS.join(", ")
        );
        return Ok(());
    };
    let region = Region::new(&v[2])?;
    let endpoint = CustodianEndpoint {
        addr: v[0].clone(),
        server_name: v[1].clone(),
        tls: tls(&v[5], &v[6], &v[7])?,
        manifest_key: hex32(&v[4]).ok_or("CUSTODIA_MANIFEST_KEY: 64 hex characters expected")?,
    };
    let directory = Arc::new(
        Directory::builder()
            .custodian(&region, &CustodianName::new(&v[3])?, endpoint)?
            .build(),
    );
    directory.refresh().await?;
    let mailbox = format!("demo@{}.example", region.as_str());
    let policy = Policy::builder().mailbox(&mailbox, &region).build();
    let client = Client::builder(directory, policy).build();

    let binding = Binding::new("mail", "demo/inbox/1.eml")?;
    let mut metadata = Metadata::new();
    metadata.insert("content-type", "message/rfc822")?;
    let body = b"Subject: hello\r\n\r\nsealed by the Custodia SDK";
    let stored = client.seal(&mailbox, &binding, body, &metadata)?;
    println!(
        "sealed {} bytes into {} stored bytes for {mailbox}",
        body.len(),
        stored.len()
    );
    match client.open(&binding, &stored).await {
        Ok(opened) => println!(
            "opened: {:?} (metadata content-type = {:?})",
            String::from_utf8_lossy(&opened.plaintext),
            opened.metadata.get("content-type")
        ),
        Err(e) => println!("open refused: {e} (retryable: {})", e.is_retryable()),
    }
    Ok(())
}
