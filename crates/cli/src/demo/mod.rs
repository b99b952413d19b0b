//! `custodia demo`: the whole story on one machine with no external services. Two custodians
//! (`ie`, `us`) and the gateway of each region run as child processes of this binary, an
//! embedded S3 store (s3s-fs) runs inside it; then the scenario is narrated and checked step
//! by step (`steps`). Everything lives in a temporary directory, removed at the end together
//! with the servers, also on errors and on Ctrl-C; `--keep` leaves them running until Ctrl-C
//! and says how to use them.

mod mail;
mod procs;
mod s3;
mod setup;
mod steps;
mod store;
mod ui;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::Args;

use self::procs::{Cleanup, Guard};
use self::setup::{BUCKET, S3_REGION, World};
use self::ui::Ui;
use crate::failure::{CliResult, Failure};

/// Flags of `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Leave the servers running afterwards and print how to use them with `aws` and `curl`;
    /// Ctrl-C then stops them and removes everything.
    #[arg(long)]
    keep: bool,
}

/// Runs `demo`.
pub(crate) fn run(args: &DemoArgs) -> CliResult {
    let started = Instant::now();
    let ui = Ui::detect();
    let tmp = tempfile::Builder::new()
        .prefix("custodia-demo-")
        .tempdir()
        .map_err(|e| Failure::failed(format!("creating a temporary directory: {e}")))?;
    let cleanup = Cleanup::new(tmp);
    let guard = Guard(cleanup.clone());
    let waiting = Arc::new(AtomicBool::new(false));
    let interrupted = procs::on_interrupt(cleanup.clone(), waiting.clone());

    ui.title("Custodia demo: a US provider, an Irish mailbox, and a US court order");
    ui.say(&format!(
        "Everything runs on 127.0.0.1 from {} and is removed at the end.",
        cleanup.dir().display()
    ));
    ui.section(
        1,
        "Two regions come up: custodians, an object store, a gateway each",
    );
    let world = match setup::build(&ui, &cleanup) {
        Ok(w) => w,
        Err(e) => {
            report_failure(&ui, &cleanup, &e);
            return Err(e);
        }
    };
    let outcome = steps::run(&ui, &world, cleanup.dir());
    match &outcome {
        Ok(()) => ui.verdict(
            true,
            &format!(
                "Every step behaved as expected ({} checks, {:.1} s).",
                ui.checks(),
                started.elapsed().as_secs_f64()
            ),
        ),
        Err(e) => report_failure(&ui, &cleanup, e),
    }
    if args.keep {
        keep(&ui, &world, &cleanup);
        waiting.store(true, Ordering::SeqCst);
        let _ = interrupted.recv();
        say!();
    }
    drop(world);
    cleanup.run();
    drop(guard);
    ui.say(&format!(
        "Servers and store stopped; {} removed.",
        cleanup.dir().display()
    ));
    outcome
}

/// Says what went wrong, with the servers that died and the end of each server's log.
fn report_failure(ui: &Ui, cleanup: &Cleanup, e: &Failure) {
    ui.verdict(false, &format!("The demo stopped: {e}"));
    for line in cleanup.exited() {
        ui.say(&line);
    }
    let logs = cleanup.dir().join("logs");
    let Ok(entries) = std::fs::read_dir(&logs) else {
        return;
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            continue;
        }
        ui.say(&format!(
            "{} (last lines):",
            file.file_name().unwrap_or_default().to_string_lossy()
        ));
        for line in &lines[lines.len().saturating_sub(5)..] {
            ui.detail(line);
        }
    }
}

/// `--keep`: where everything is and how to use it.
fn keep(ui: &Ui, world: &World, cleanup: &Cleanup) {
    let exe =
        std::env::current_exe().map_or_else(|_| "custodia".to_owned(), |p| p.display().to_string());
    let keys = world.keys.display();
    ui.section(9, "The servers keep running (--keep)");
    for r in &world.index.regions {
        ui.say(&format!(
            "custodian {}/{}: {}",
            r.name, r.custodian, r.address
        ));
    }
    ui.say(&format!(
        "store (s3s-fs): http://{}  access key {}  secret {}  files {}",
        world.store.addr,
        world.store_keys.access,
        world.store_keys.secret,
        world.store.root.display()
    ));
    for g in &world.gateways {
        ui.say(&format!(
            "gateway {}: S3 http://{}  access key {}  secret {}",
            g.region, g.s3, g.keys.access, g.keys.secret
        ));
        ui.say(&format!(
            "{:width$}HTTP http://{}  bearer token {}  config {}",
            "",
            g.http,
            g.token,
            g.config.display(),
            width = "gateway : ".len() + g.region.len()
        ));
    }
    let (Ok(ie), Ok(us)) = (world.gateway("ie"), world.gateway("us")) else {
        return;
    };
    const KEY: &str = "aoife@example.ie/INBOX/0001.eml";
    let object = format!("s3://{BUCKET}/{KEY}");
    let aws = |g: &setup::Keys, ep: &std::net::SocketAddr, rest: &str| {
        format!(
            "AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={S3_REGION} \\\n         aws --endpoint-url http://{ep} {rest}",
            g.access, g.secret
        )
    };
    say!();
    ui.say("Through the Irish gateway (plaintext, in region):");
    ui.detail(&aws(
        &ie.keys,
        &ie.s3,
        &format!("s3 ls s3://{BUCKET}/ --recursive"),
    ));
    ui.detail(&aws(&ie.keys, &ie.s3, &format!("s3 cp {object} -")));
    ui.detail(&aws(
        &ie.keys,
        &ie.s3,
        &format!("s3 cp ./note.eml s3://{BUCKET}/aoife@example.ie/INBOX/0003.eml"),
    ));
    ui.say("Through the US gateway (refused: AccessDenied … approval_required):");
    ui.detail(&aws(
        &us.keys,
        &us.s3,
        &format!("s3api get-object --bucket {BUCKET} --key {KEY} /dev/stdout"),
    ));
    ui.say("Straight from the store (the provider's keys: ciphertext):");
    ui.detail(&aws(
        &world.store_keys,
        &world.store.addr,
        &format!("s3 cp {object} - | xxd | head"),
    ));
    ui.say("With curl, on the HTTP front (bearer token) and on the S3 front (SigV4):");
    ui.detail(&format!(
        "curl -H 'Authorization: Bearer {}' http://{}/{BUCKET}/{KEY}",
        ie.token, ie.http
    ));
    ui.detail(&format!(
        "curl --aws-sigv4 aws:amz:{S3_REGION}:s3 --user '{}:{}' \\\n         -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' http://{}/{BUCKET}/{KEY}",
        ie.keys.access, ie.keys.secret, ie.s3
    ));
    ui.say("The Irish custodian's records:");
    ui.detail(&format!(
        "{exe} audit show --keys {keys} --region ie --details"
    ));
    ui.detail(&format!("{exe} report --keys {keys} --region ie"));
    say!();
    ui.say(&format!(
        "Press Ctrl-C to stop everything and remove {}.",
        cleanup.dir().display()
    ));
}
