//! The verifiable audit log and the transparency report, against a real custodian process:
//! receipts prove every release (also across a SIGKILL), the log verifies from the outside, a
//! full or read-only log directory releases nothing and recovers, the public side never shows
//! a mailbox id, and the report recomputes from the log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use custodia_custodian::Error;
use custodia_custodian::api::Denial;
use custodia_custodian::audit::checkpoint::{origin, verify_checkpoint};
use custodia_custodian::audit::entry::PublicEntry;
use custodia_custodian::audit::report::{Period, build_report};
use custodia_custodian::audit::verify::{
    verify_checkpoints_consistent, verify_details, verify_entry, verify_log,
};
use custodia_custodian::audit_store::AuditReceipt;
use custodia_custodian::client::CustodianClient;
use custodia_tests::custodia_bin;
use custodia_tests::world::{MAILBOX_A, MAILBOX_B, Object, World, item, rt, world};

const ORIGIN: (&str, &str) = ("ie", "dublin");

fn hashes(proof: &[String]) -> Vec<[u8; 32]> {
    proof
        .iter()
        .map(|h| hex::decode(h).unwrap().try_into().unwrap())
        .collect()
}

/// Every public entry, fetched through the API in pages.
fn all_entries(client: &CustodianClient) -> (String, Vec<Vec<u8>>) {
    let runtime = rt();
    let checkpoint = runtime.block_on(client.checkpoint()).unwrap();
    let pk = checkpoint_size(&checkpoint);
    let mut records = Vec::new();
    let mut start = 0;
    while start < pk {
        let end = (start + 1000).min(pk);
        let page = runtime.block_on(client.entries(start, end)).unwrap();
        records.extend(page.into_iter().map(String::into_bytes));
        start = end;
    }
    (checkpoint, records)
}

fn checkpoint_size(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}

fn verify_receipt(w: &World, r: &AuditReceipt) {
    let o = origin(ORIGIN.0, ORIGIN.1);
    for (i, (entry, proof)) in r.entries.iter().zip(&r.proofs).enumerate() {
        verify_entry(
            entry.as_bytes(),
            r.first + i as u64,
            &hashes(proof),
            &r.checkpoint,
            &o,
            &w.custodian.manifest_key,
        )
        .unwrap();
    }
}

fn unwrap_keep(client: &CustodianClient, o: &Object) -> Option<AuditReceipt> {
    match rt().block_on(client.unwrap(&[item(o)], None)) {
        Ok(u) if u.results[0].is_ok() => Some(u.receipt),
        _ => None,
    }
}

#[test]
fn after_sigkill_every_released_share_has_its_entry_and_the_log_verifies() {
    let mut w = world();
    let objects: Vec<Object> = (0..150)
        .map(|i| w.seal(MAILBOX_A, &format!("aoife/{i}.eml"), b"x"))
        .collect();
    let client = w.client(&w.gw_ie).with_retries(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut receipts: Vec<AuditReceipt> = Vec::new();
    let (objects_ref, client_ref) = (&objects, &client);
    std::thread::scope(|s| {
        s.spawn(move || {
            for o in objects_ref {
                let Some(r) = unwrap_keep(client_ref, o) else {
                    break;
                };
                if tx.send(r).is_err() {
                    break;
                }
            }
        });
        for _ in 0..5 {
            receipts.push(rx.recv_timeout(Duration::from_secs(30)).unwrap());
        }
        w.custodian.kill9();
        receipts.extend(rx.iter());
    });
    assert!(
        receipts.len() < objects.len(),
        "the kill landed after the load ended"
    );
    w.custodian.spawn();

    let client = w.client(&w.gw_ie);
    let (checkpoint, records) = all_entries(&client);
    let o = origin(ORIGIN.0, ORIGIN.1);
    verify_log(&records, &checkpoint, &o, &w.custodian.manifest_key).unwrap();
    let now = checkpoint_size(&checkpoint);
    for r in &receipts {
        // The receipt verified when it was received (the client checks it); it still proves
        // its entries, which are in the restarted log unchanged, and its checkpoint is
        // consistent with today's.
        verify_receipt(&w, r);
        for (i, e) in r.entries.iter().enumerate() {
            assert_eq!(records[(r.first as usize) + i], e.as_bytes());
        }
        let old = checkpoint_size(&r.checkpoint);
        let proof = rt().block_on(client.consistency_proof(old, now)).unwrap();
        verify_checkpoints_consistent(
            &r.checkpoint,
            &checkpoint,
            &hashes(&proof),
            &o,
            &w.custodian.manifest_key,
        )
        .unwrap();
    }
}

/// A tmpfs mounted over the custodian's audit directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn over(dir: &Path, size: &str) -> Self {
        let saved = dir.with_extension("saved");
        std::fs::rename(dir, &saved).unwrap();
        std::fs::create_dir(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI and tests/run run as root)"
        );
        for f in std::fs::read_dir(&saved).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        Self(dir.to_owned())
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_or_read_only_log_releases_nothing_and_recovers() {
    let mut w = world();
    let o = w.seal(MAILBOX_A, "aoife/1.eml", b"x");
    w.custodian.kill9();
    let audit = w.custodian.audit_dir();
    let fs = Tmpfs::over(&audit, "256k");
    w.custodian.spawn();
    let client = w.client(&w.gw_ie);
    assert!(unwrap_keep(&client, &o).is_some());

    // Fill the file system, then ask.
    let filler = audit.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    while std::io::Write::write_all(&mut f, &[0]).is_ok() {}
    drop(f);
    // The log's last pages may still have room for a few entries; then it must refuse.
    let mut released_after_full = 0;
    loop {
        match rt().block_on(client.unwrap(&[item(&o)], None)) {
            Ok(u) => {
                assert!(u.results[0].is_ok());
                released_after_full += 1;
                assert!(
                    released_after_full < 200,
                    "a full file system never refused"
                );
            }
            Err(Error::Http {
                status: 503, code, ..
            }) => {
                assert_eq!(code, "log_unavailable");
                break;
            }
            Err(e) => panic!("expected 503 log_unavailable, got {e:?}"),
        }
    }
    rt().block_on(client.health()).unwrap();
    std::fs::remove_file(&filler).unwrap();
    assert!(
        unwrap_keep(&client, &o).is_some(),
        "recovers when space returns"
    );

    // A read-only log directory: the custodian refuses to start (it could not record a
    // decision) and says why; once writable again it starts and serves.
    w.custodian.kill9();
    fs.remount("ro");
    let out = Command::new(custodia_bin())
        .args(["custodian", "serve", "--dev", "--config"])
        .arg(&w.custodian.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    fs.remount("rw");
    w.custodian.spawn();
    let client = w.client(&w.gw_ie);
    assert!(
        unwrap_keep(&client, &o).is_some(),
        "recovers when writable again"
    );

    let (checkpoint, records) = all_entries(&client);
    verify_log(
        &records,
        &checkpoint,
        &origin(ORIGIN.0, ORIGIN.1),
        &w.custodian.manifest_key,
    )
    .unwrap();
    let operations: Vec<String> = records
        .iter()
        .map(|r| PublicEntry::from_record(r).unwrap().operation)
        .collect();
    let policies = operations.iter().filter(|o| *o == "policy").count();
    // Three starts that served (the first, over the tmpfs, writable again), each logged.
    assert_eq!(policies, 3, "{operations:?}");
    assert_eq!(
        records.len() - policies,
        3 + released_after_full,
        "refused batches left nothing behind"
    );
    w.custodian.kill9();
}

fn current_period() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{}-{:02}", now.year(), u8::from(now.month()))
}

#[test]
fn the_public_side_shows_no_mailbox_and_the_auditor_sees_details() {
    let w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"a");
    let b = w.seal(MAILBOX_B, "brian/1.eml", b"b");
    let gw = w.client(&w.gw_ie);
    unwrap_keep(&gw, &a).unwrap();
    unwrap_keep(&gw, &b).unwrap();
    let approval = w.sign(&w.approval(&[MAILBOX_A], &w.gw_us), &[0, 1]);
    let us = w.client(&w.gw_us);
    let r = rt()
        .block_on(us.unwrap(&[item(&a), item(&b)], Some(&approval)))
        .unwrap();
    assert!(r.results[0].is_ok());
    assert_eq!(r.results[1], Err(Denial::ApprovalWrongMailbox));

    let (checkpoint, records) = all_entries(&gw);
    let report = rt().block_on(gw.transparency(&current_period())).unwrap();
    let public_file = std::fs::read(w.custodian.audit_dir().join("entries.jsonl")).unwrap();
    let report_json = serde_json::to_string(&report).unwrap();
    for haystack in [
        String::from_utf8(public_file).unwrap(),
        String::from_utf8(records.concat()).unwrap(),
        checkpoint,
        report_json,
    ] {
        for needle in [MAILBOX_A, MAILBOX_B, "aoife", "brian"] {
            assert!(
                !haystack.contains(needle),
                "{needle} leaked into the public log"
            );
        }
    }

    assert!(matches!(
        rt().block_on(gw.details(0, 2)),
        Err(Error::Denied(Denial::RoleMissing))
    ));
    let auditor = w.client(&w.auditor_ie);
    let n = records.len() as u64;
    let details = rt().block_on(auditor.details(0, n)).unwrap();
    let key: [u8; 32] = hex::decode(&details.commitment_key)
        .unwrap()
        .try_into()
        .unwrap();
    let publics: Vec<PublicEntry> = records
        .iter()
        .map(|r| PublicEntry::from_record(r).unwrap())
        .collect();
    verify_details(&publics, &details.details, &key).unwrap();
    assert!(
        details
            .details
            .iter()
            .any(|d| d.mailbox.as_deref() == Some(MAILBOX_B))
    );
}

#[test]
fn the_transparency_report_recomputes_from_the_log() {
    let w = world();
    let gw = w.client(&w.gw_ie);
    for i in 0..12 {
        let o = w.seal(MAILBOX_A, &format!("aoife/{i}.eml"), b"a");
        unwrap_keep(&gw, &o).unwrap();
    }
    let b = w.seal(MAILBOX_B, "brian/1.eml", b"b");
    let us = w.client(&w.gw_us);
    assert_eq!(
        rt().block_on(us.unwrap(&[item(&b)], None)).unwrap().results[0],
        Err(Denial::ApprovalRequired)
    );

    let period = current_period();
    let served = rt().block_on(gw.transparency(&period)).unwrap();
    let o = origin(ORIGIN.0, ORIGIN.1);
    let cp = verify_checkpoint(&served.checkpoint, &o, &w.custodian.manifest_key).unwrap();
    assert_eq!(cp.size, served.log_size);
    let records = rt().block_on(gw.entries(0, served.log_size)).unwrap();
    let records: Vec<Vec<u8>> = records.into_iter().map(String::into_bytes).collect();
    verify_log(&records, &served.checkpoint, &o, &w.custodian.manifest_key).unwrap();
    let entries: Vec<PublicEntry> = records
        .iter()
        .map(|r| PublicEntry::from_record(r).unwrap())
        .collect();
    let recomputed = build_report(
        &entries,
        period.parse::<Period>().unwrap(),
        &served.checkpoint,
        served.log_size,
    );
    assert_eq!(recomputed, served);
    let text = serde_json::to_string(&served).unwrap();
    assert!(
        text.contains("\"12\""),
        "twelve in-region releases, exact: {text}"
    );
    assert!(text.contains("1-9"), "small counts are banded: {text}");
}
