//! What a caller from another region gets: a typed denial, not a generic error.
//!
//! Run with the `CUSTODIA_*` variables of `seal_open` (see `examples/common/mod.rs`) plus
//! a certificate the custodian knows from another region:
//! ```text
//! CUSTODIA_OTHER_CERT=gateway-us.pem CUSTODIA_OTHER_KEY=gateway-us.key \
//! cargo run -p custodia --example denial
//! ```
//! It seals as the in-region client, then opens as the other-region one, which the
//! custodian refuses with `approval_required` (an approval signed by the approvers would
//! let it through: `Client::open_with_approval`). Without the variables it says what it
//! needs and exits successfully (so CI can run it).
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

mod common;

use custodia::{Denial, Error};
use custodia_envelope::{Binding, Metadata};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), common::BoxError> {
    let Some(config) = common::config("denial", &["CUSTODIA_OTHER_CERT", "CUSTODIA_OTHER_KEY"])?
    else {
        return Ok(());
    };
    let home = config.client().await?;
    let mailbox = config.mailbox();
    let binding = Binding::new("mail", "demo/inbox/2.eml")?;
    let stored = home.seal(&mailbox, &binding, b"for in-region eyes", &Metadata::new())?;
    println!(
        "sealed {} stored bytes for {mailbox} (region {})",
        stored.len(),
        config.region
    );

    let other = config.client_as(&config.extra[0], &config.extra[1])?;
    match other.open(&binding, &stored).await {
        Ok(_) => Err("the other-region caller opened the object without an approval".into()),
        Err(
            e @ Error::Denied {
                denial: Denial::ApprovalRequired,
                ..
            },
        ) => {
            println!("denied: approval_required ({e})");
            println!("retryable: {}", e.is_retryable());
            Ok(())
        }
        Err(e) => Err(format!("expected an approval_required denial, got: {e}").into()),
    }
}
