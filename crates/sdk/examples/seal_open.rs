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

mod common;

use custodia_envelope::{Binding, Metadata};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), common::BoxError> {
    let Some(config) = common::config("seal_open", &[])? else {
        return Ok(());
    };
    let client = config.client().await?;
    let mailbox = config.mailbox();

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
