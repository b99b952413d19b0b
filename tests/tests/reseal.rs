//! `custodia reseal` with every part its own process: mail written through the US gateway
//! before mailbox ids were canonical (its exact rule `ceo@example.com = ie` missed
//! `CEO@example.com`, so the domain rule sealed that mail to `us`; here: the US gateway's
//! config as it was before the rule applied to them), then the fix: `verify --residency`
//! names it, `reseal` run by the US region (whose custodian opens it, on its audit log) moves
//! it to Ireland in place, a multipart object included; Ireland's gateway reads it and the US
//! gateway no longer can. A reseal run from Ireland, `--dry-run`, and an object moved under
//! another mailbox's key change nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    missing_docs,
    reason = "tests"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use custodia_custodian::decision_log::Outcome;
use custodia_envelope::Header;
use custodia_tests::deployment::{custodia, gateway_config, serve_custodian, status};
use custodia_tests::gateway::{GatewayProc, files_under};
use custodia_tests::s3::{S3sFs, STORE_AK, STORE_SK, aws, leaks, ok};
use serde_json::Value;

const RULE: &str = "mailboxes = { \"ceo@example.com\" = \"ie\" }\n";

/// The contents of every file of the store, by path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let b = std::fs::read(&f).unwrap();
            (f, b)
        })
        .collect()
}

fn count(v: &Value, kind: &str) -> u64 {
    v["counts"][kind].as_u64().unwrap_or(0)
}

/// `custodia <job> --config <config> --bucket mail --json --quiet <extra>`: status, summary.
fn job(dir: &Path, job: &str, config: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec![
        job,
        "--config",
        config.to_str().unwrap(),
        "--bucket",
        "mail",
        "--json",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let out = custodia(dir, &args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{job} {extra:?}: {e}: {err}"));
    (out.status.code().unwrap(), v, err)
}

fn get(ep: SocketAddr, key: &str, out: &Path) -> std::process::Output {
    let _ = std::fs::remove_file(out);
    aws(
        ep,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "mail",
            "--key",
            key,
            out.to_str().unwrap(),
        ],
        None,
    )
}

fn sealed_header(store: &Path, key: &str) -> Header {
    let raw = std::fs::read(store.join("mail").join(key)).unwrap();
    Header::parse(&raw).unwrap()
}

#[test]
fn reseal_moves_mail_sealed_to_the_wrong_region_home_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    status(
        &custodia(
            dir,
            &["keys", "init", "--regions", "ie,us", "--out", "keys"],
        ),
        0,
        "keys init",
    );
    let keys = dir.join("keys");
    let (_ie_custodian, ie_addr) = serve_custodian(&keys, "ie", 0);
    let (_us_custodian, us_addr) = serve_custodian(&keys, "us", 1);
    let store = S3sFs::start(&dir.join("s3"));
    ok(
        &aws(
            store.addr,
            &["s3", "mb", "s3://mail"],
            Some((STORE_AK, STORE_SK)),
        ),
        "mb",
    );
    let custodians = [("ie", ie_addr), ("us", us_addr)];
    let config = |region: &str, rule: bool, name: &str| {
        let gdir = dir.join(name);
        let text = gateway_config(&keys, region, &custodians, store.addr, &gdir);
        let text = if rule {
            text.replacen("[residency]\n", &format!("[residency]\n{RULE}"), 1)
        } else {
            text
        };
        (gdir, text)
    };

    // Before the fix: the US gateway seals the CEO's mail by the domain rule, to `us`.
    let mut big = b"Subject: quarterly figures (reseal)\n\n".to_vec();
    big.extend(
        b"CONFIDENTIAL-ATTACHMENT-LINE "
            .iter()
            .cycle()
            .take(9 * 1024 * 1024),
    );
    let mail: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "CEO@example.com/INBOX/1.eml",
            b"Subject: board minutes (reseal)\n\nThe merger closes on Friday.\n".to_vec(),
            "us",
        ),
        (
            "ceo@example.com/INBOX/2.eml",
            b"Subject: salaries (reseal)\n\nThe new salary bands apply from March.\n".to_vec(),
            "us",
        ),
        ("ceo@example.com/Files/figures.bin", big, "us"),
        (
            "jane@example.com/INBOX/1.eml",
            b"Subject: payslip (reseal)\n\nYour payslip for November is ready.\n".to_vec(),
            "us",
        ),
        (
            "aoife@example.ie/INBOX/1.eml",
            b"Subject: lunch (reseal)\n\nAre you free for lunch on Friday?\n".to_vec(),
            "ie",
        ),
    ];
    let misplaced = &mail[..3];
    {
        let (gdir, text) = config("us", false, "gateway-us-before");
        let us_before = GatewayProc::start(&gdir, &text);
        let (gdir, text) = config("ie", true, "gateway-ie");
        let ie = GatewayProc::start(&gdir, &text);
        for (i, (key, body, via)) in mail.iter().enumerate() {
            let f = files.join(format!("in-{i}"));
            std::fs::write(&f, body).unwrap();
            let ep = if *via == "us" { &us_before } else { &ie };
            ok(
                &aws(
                    ep.s3.unwrap(),
                    &["s3", "cp", f.to_str().unwrap(), &format!("s3://mail/{key}")],
                    None,
                ),
                key,
            );
        }
    }
    for (key, _, _) in misplaced {
        assert_eq!(
            sealed_header(&store.root, key).context().region().as_str(),
            "us"
        );
    }
    let multipart_key = misplaced[2].0;
    assert!(
        !files_under(&store.root.join("mail/.custodia/layout")).is_empty(),
        "the attachment was not written as a multipart object"
    );
    // An object moved under another mailbox's key (by the store's side): not the reseal's.
    ok(
        &aws(
            store.addr,
            &[
                "s3",
                "cp",
                "s3://mail/jane@example.com/INBOX/1.eml",
                "s3://mail/ceo@example.com/INBOX/moved.eml",
            ],
            Some((STORE_AK, STORE_SK)),
        ),
        "move",
    );

    // The fix: both regions' configs carry the rule, compared in canonical form.
    let (us_dir, us_text) = config("us", true, "gateway-us");
    let us_config = us_dir.join("gateway.toml");
    let ie_config = dir.join("gateway-ie").join("gateway.toml");

    // verify --residency names the three and the moved object.
    std::fs::create_dir_all(&us_dir).unwrap();
    std::fs::write(&us_config, &us_text).unwrap();
    let (code, v, err) = job(dir, "verify", &us_config, &["--residency"]);
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "wrong_region"), 4, "{v}");

    // --dry-run and a run from Ireland (which cannot open `us` objects) change nothing.
    let before = snapshot(&store.root);
    let (code, v, err) = job(dir, "reseal", &us_config, &["--dry-run"]);
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "would_reseal"), 3, "{v}");
    assert_eq!(count(&v, "wrong_region"), 1, "{v}");
    assert_eq!(count(&v, "current"), 2, "{v}");
    let (code, v, err) = job(dir, "reseal", &ie_config, &[]);
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "wrong_region"), 4, "{v}");
    assert_eq!(count(&v, "resealed"), 0, "{v}");
    assert!(v.to_string().contains("run reseal there"), "{v}");
    assert_eq!(
        before,
        snapshot(&store.root),
        "a reseal that could not run changed the store"
    );

    // The US region reseals: three moved home, the moved object left alone and named.
    let ck = dir.join("reseal.json");
    let (code, v, err) = job(
        dir,
        "reseal",
        &us_config,
        &["--checkpoint", ck.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "resealed"), 3, "{v}");
    assert_eq!(count(&v, "current"), 2, "{v}");
    assert_eq!(count(&v, "wrong_region"), 1, "{v}");
    let named: Vec<&str> = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["ceo@example.com/INBOX/moved.eml"], "{v}");
    for (key, _, _) in misplaced {
        let h = sealed_header(&store.root, key);
        assert_eq!(h.context().region().as_str(), "ie", "{key}");
        assert_eq!(h.context().mailbox(), "ceo@example.com", "{key}");
        assert!(
            h.stanzas()
                .iter()
                .all(|s| s.recipient.region.as_str() == "ie"),
            "{key}"
        );
    }
    // The multipart object is now one envelope; its layout records and the job's temporary
    // copies are gone, and no plaintext of any message is in the store.
    assert!(
        files_under(&store.root.join("mail/.custodia/layout"))
            .iter()
            .all(|f| !f.to_string_lossy().contains(multipart_key)),
        "{:?}",
        files_under(&store.root.join("mail/.custodia"))
    );
    assert!(files_under(&store.root.join("mail/.custodia/reseal")).is_empty());
    let needles: Vec<String> = mail
        .iter()
        .flat_map(|(_, b, _)| b.split(|c| *c == b'\n'))
        .filter(|l| l.len() >= 10)
        .map(|l| String::from_utf8_lossy(&l[..l.len().min(64)]).into_owned())
        .collect();
    assert_eq!(leaks(&store.root, &needles), Vec::<String>::new());

    // Ireland reads the CEO's mail; the US gateway no longer can without an approval.
    let ie = GatewayProc::start(
        &dir.join("gateway-ie"),
        &std::fs::read_to_string(&ie_config).unwrap(),
    );
    let us = GatewayProc::start(&us_dir, &us_text);
    let out = files.join("out");
    for (key, body, _) in misplaced {
        ok(&get(ie.s3.unwrap(), key, &out), key);
        assert!(
            std::fs::read(&out).unwrap() == *body,
            "{key} reads back other bytes"
        );
        let refused = get(us.s3.unwrap(), key, &out);
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success()
                && err.contains("AccessDenied")
                && err.contains("approval_required"),
            "{key} through the US gateway: {refused:?}"
        );
    }
    // Jane's and Aoife's mail did not move.
    ok(&get(us.s3.unwrap(), mail[3].0, &out), "jane");
    assert_eq!(std::fs::read(&out).unwrap(), mail[3].1);

    // Every open was the US custodian's, on its log: in-region, allowed, for the CEO's mailbox.
    status(
        &custodia(
            dir,
            &["audit", "verify", "--keys", "keys", "--region", "us"],
        ),
        0,
        "audit verify us",
    );
    let log = custodia_custodian::audit_store::AuditStore::read_joined(
        &keys.join("us").join("data").join("audit"),
    )
    .unwrap();
    let opened: Vec<_> = log
        .iter()
        .filter(|(_, d)| d.mailbox.as_deref() == Some("ceo@example.com"))
        .collect();
    assert!(opened.len() >= 3, "{log:#?}");
    assert!(
        opened
            .iter()
            .all(|(p, _)| p.outcome == Outcome::Allow && p.caller_region == "us"),
        "{opened:#?}"
    );

    // Run again on the finished checkpoint: a new run, nothing left to move. Without the
    // moved object, everything this region can fix is fixed: status 0, and verify agrees.
    let (code, v, err) = job(
        dir,
        "reseal",
        &us_config,
        &["--checkpoint", ck.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "resealed"), 0, "{v}");
    assert_eq!(count(&v, "current"), 5, "{v}");
    ok(
        &aws(
            store.addr,
            &["s3", "rm", "s3://mail/ceo@example.com/INBOX/moved.eml"],
            Some((STORE_AK, STORE_SK)),
        ),
        "rm moved",
    );
    let (code, v, err) = job(dir, "reseal", &us_config, &[]);
    assert_eq!(code, 0, "{v} {err}");
    let (code, v, err) = job(dir, "verify", &us_config, &["--residency"]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(count(&v, "sealed"), 5, "{v}");
}
