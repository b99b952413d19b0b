//! The story `custodia demo` tells, with every part its own process, as an operator would
//! run it: `custodia keys init`, a `custodia custodian serve` for `ie` and for `us`, the
//! `s3s-fs` binary as the provider's store, a `custodia gateway serve` per region with both
//! custodians and the S3 front, awscli as the mail servers' S3 client, and the approvers',
//! users' and auditors' `custodia` commands. Every step is asserted, and the store's files
//! are scanned for every plaintext, at the end as well as after delivery.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    missing_docs,
    reason = "tests"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use custodia_custodian::decision_log::Outcome;
use custodia_tests::deployment::{TwoRegions, custodia, gateway_config, status};
use custodia_tests::gateway::{GatewayProc, files_under};
use custodia_tests::s3::{STORE_AK, STORE_SK, aws, ok};

/// One message: its key, body, and the gateway region that delivers it.
struct Mail {
    key: &'static str,
    via: usize,
    text: String,
}

impl Mail {
    fn new(key: &'static str, via: usize, subject: &str, lines: &[&str]) -> Self {
        let mailbox = key.split('/').next().unwrap();
        let mut text =
            format!("From: Sender <sender@example.net>\nTo: {mailbox}\nSubject: {subject}\n\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        Self { key, via, text }
    }

    /// Strings the store must never hold: the whole message and every line of ten or more
    /// bytes.
    fn needles(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .text
            .lines()
            .filter(|l| l.len() >= 10)
            .map(str::to_owned)
            .collect();
        out.push(self.text.clone());
        out
    }
}

/// Each of `needles` found in a file under `dir`, as `needle in file`.
fn leaks(dir: &Path, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files_under(dir) {
        let bytes = std::fs::read(&file).unwrap();
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                found.push(format!("{n:?} in {}", file.display()));
            }
        }
    }
    found
}

/// `aws s3api get-object` of `key` through `ep` (client keys unless `keys`) into `out`.
fn get_object(ep: SocketAddr, key: &str, out: &Path, keys: Option<(&str, &str)>) -> Output {
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
        keys,
    )
}

/// Asserts that the gateway at `ep` refuses to read `key` with the custodian's reason.
#[track_caller]
fn assert_refused(ep: SocketAddr, key: &str, reason: &str, scratch: &Path) {
    let out = get_object(ep, key, &scratch.join("refused"), None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("AccessDenied")
            && err.contains("custodian ie/ie-custodian refused")
            && err.contains(reason),
        "{key} through {ep}: expected AccessDenied ({reason}): {out:?}"
    );
}

#[test]
fn us_court_order_for_an_irish_mailbox_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();

    // Keys, the two custodians, the store, the two gateways: each its own process.
    let deployed = TwoRegions::start(dir);
    let keys = deployed.keys.clone();
    let store = &deployed.store;
    let custodians = deployed.custodians;
    let gateways: Vec<GatewayProc> = ["ie", "us"]
        .iter()
        .map(|r| {
            let gdir = dir.join(format!("gateway-{r}"));
            let config = gateway_config(&keys, r, &custodians, store.addr, &gdir);
            GatewayProc::start(&gdir, &config)
        })
        .collect();
    let ep = |i: usize| gateways[i].s3.unwrap();
    let (ie, us) = (0, 1);

    let aoife_1 = Mail::new(
        "aoife@example.ie/INBOX/0001.eml",
        ie,
        "Board minutes, Thursday (scenario)",
        &["The acquisition figures stay confidential until the announcement."],
    );
    let aoife_2 = Mail::new(
        "aoife@example.ie/INBOX/0002.eml",
        us,
        "Re: shipping schedule (scenario)",
        &["The first containers leave Savannah on January 9th."],
    );
    let brian_1 = Mail::new(
        "brian@example.ie/INBOX/0001.eml",
        ie,
        "Lunch on Friday? (scenario)",
        &["Are you free for lunch at the Winding Stair on Friday?"],
    );
    let jane_1 = Mail::new(
        "jane@example.com/INBOX/0001.eml",
        us,
        "Your November payslip (scenario)",
        &["Your payslip for November is ready: net pay $4,812.33."],
    );
    let all = [&aoife_1, &aoife_2, &brian_1, &jane_1];
    let needles: Vec<String> = all.iter().flat_map(|m| m.needles()).collect();

    // 1. Delivery: Irish mail through both gateways (the US one too), US mail in the US.
    for (i, m) in all.iter().enumerate() {
        let file = files.join(format!("in-{i}.eml"));
        std::fs::write(&file, &m.text).unwrap();
        ok(
            &aws(
                ep(m.via),
                &[
                    "s3",
                    "cp",
                    file.to_str().unwrap(),
                    &format!("s3://mail/{}", m.key),
                ],
                None,
            ),
            &format!("deliver {} via gateway {}", m.key, m.via),
        );
        let stored = std::fs::read(store.root.join("mail").join(m.key)).unwrap();
        assert!(stored.starts_with(b"CUSTODIA"), "{} is not sealed", m.key);
    }

    // 2. Each region reads its own mail; the US gateway cannot read back the Irish mail it
    //    delivered.
    for (via, m) in [(ie, &aoife_1), (ie, &aoife_2), (us, &jane_1)] {
        let out = files.join("read.eml");
        ok(&get_object(ep(via), m.key, &out, None), m.key);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), m.text, "{}", m.key);
    }
    assert_refused(ep(us), aoife_2.key, "approval_required", &files);

    // 3. The store's files hold no plaintext (and the scan does find it where it is: in the
    //    files the mail servers delivered).
    let found = leaks(&store.root, &needles);
    assert!(found.is_empty(), "plaintext in the store: {found:#?}");
    for n in &needles {
        assert!(
            !leaks(&files, std::slice::from_ref(n)).is_empty(),
            "the scan misses {n:?}"
        );
    }

    // 4. The court order: the US gateway is refused; the ciphertext copied from the store
    //    does not open for the US side either.
    assert_refused(ep(us), aoife_1.key, "approval_required", &files);
    let raw = |m: &Mail| -> PathBuf {
        let out = files.join(format!("raw-{}", m.key.replace(['/', '@'], "_")));
        ok(
            &get_object(store.addr, m.key, &out, Some((STORE_AK, STORE_SK))),
            "raw get from the store",
        );
        out
    };
    let raw_aoife_1 = raw(&aoife_1);
    let open = |m: &Mail, raw: &Path, approval: Option<&str>| -> Output {
        let mut args = vec![
            "open",
            "--keys",
            "keys",
            "--caller",
            "us",
            "--object",
            m.key,
            "--in",
            raw.to_str().unwrap(),
            "--out",
            "files/opened.eml",
        ];
        if let Some(a) = approval {
            args.extend(["--approval", a]);
        }
        custodia(dir, &args)
    };
    let t = status(
        &open(&aoife_1, &raw_aoife_1, None),
        4,
        "open without approval",
    );
    assert!(t.contains("approval_required"), "{t}");
    assert!(!dir.join("files/opened.eml").exists());

    // 5. The treaty channel: an approval for aoife@example.ie only, for the gateway-us
    //    certificate; one signature is refused, two of three are accepted.
    status(
        &custodia(
            dir,
            &[
                "approve",
                "new",
                "--keys",
                "keys",
                "--region",
                "ie",
                "--caller-cert",
                "keys/us/clients/gateway-us.pem",
                "--request-id",
                "MLAT-2026-0042",
                "--purpose",
                "US court order, via the Irish central authority",
                "--mailbox",
                "aoife@example.ie",
                "--max-uses",
                "2",
                "--out",
                "mlat.json",
            ],
        ),
        0,
        "approve new",
    );
    let sign = |n: usize| {
        status(
            &custodia(
                dir,
                &[
                    "approve",
                    "sign",
                    "--yes",
                    "--key",
                    &format!("keys/ie/approvers/ie-approver-{n}.key"),
                    "mlat.json",
                ],
            ),
            0,
            "approve sign",
        )
    };
    sign(1);
    let t = status(
        &open(&aoife_1, &raw_aoife_1, Some("mlat.json")),
        4,
        "open with one signature",
    );
    assert!(t.contains("approval_insufficient_signatures"), "{t}");
    status(
        &custodia(
            dir,
            &["approve", "show", "mlat.json", "--keys", "keys", "--check"],
        ),
        3,
        "approve show --check with one signature",
    );
    sign(3);
    let t = status(
        &custodia(
            dir,
            &["approve", "show", "mlat.json", "--keys", "keys", "--check"],
        ),
        0,
        "approve show --check with two signatures",
    );
    assert!(t.contains("2 signed: reached"), "{t}");

    // 6. The lawful read: both of Aoife's messages open for the US side, nothing else does.
    for m in [&aoife_1, &aoife_2] {
        let r = raw(m);
        status(&open(m, &r, Some("mlat.json")), 0, "open with the approval");
        assert_eq!(
            std::fs::read_to_string(dir.join("files/opened.eml")).unwrap(),
            m.text
        );
    }
    let t = status(
        &open(&aoife_1, &raw_aoife_1, Some("mlat.json")),
        4,
        "a third use of a 2-use approval",
    );
    assert!(t.contains("approval_used_up"), "{t}");
    let raw_brian = raw(&brian_1);
    let t = status(
        &open(&brian_1, &raw_brian, Some("mlat.json")),
        4,
        "the approval for another mailbox",
    );
    assert!(t.contains("approval_wrong_mailbox"), "{t}");
    assert_refused(ep(us), brian_1.key, "approval_required", &files);

    // 7. The records: the Irish log verifies and shows every refusal and both releases.
    let t = status(
        &custodia(
            dir,
            &["audit", "verify", "--keys", "keys", "--region", "ie"],
        ),
        0,
        "audit verify ie",
    );
    assert!(t.contains("audit log of ie/ie-custodian verified"), "{t}");
    status(
        &custodia(
            dir,
            &["audit", "verify", "--keys", "keys", "--region", "us"],
        ),
        0,
        "audit verify us",
    );
    let log = custodia_custodian::audit_store::AuditStore::read_joined(
        &keys.join("ie").join("data").join("audit"),
    )
    .unwrap();
    let from_us: Vec<_> = log
        .iter()
        .filter(|(p, _)| p.caller_region == "us")
        .collect();
    let released: Vec<_> = from_us
        .iter()
        .filter(|(p, _)| p.outcome == Outcome::Allow)
        .collect();
    assert_eq!(released.len(), 2, "releases to the US side: {from_us:#?}");
    for (p, d) in &released {
        assert_eq!(p.reason, "approval");
        assert!(p.approval_id.is_some());
        assert_eq!(d.mailbox.as_deref(), Some("aoife@example.ie"));
    }
    let denied = |reason: &str| {
        from_us
            .iter()
            .filter(|(p, _)| p.outcome == Outcome::Deny && p.reason == reason)
            .count()
    };
    assert_eq!(denied("approval_required"), 4, "{from_us:#?}");
    assert_eq!(denied("approval_insufficient_signatures"), 1);
    assert_eq!(denied("approval_used_up"), 1);
    assert_eq!(denied("approval_wrong_mailbox"), 1);
    assert!(
        log.iter()
            .filter(|(_, d)| d.mailbox.as_deref() == Some("brian@example.ie"))
            .all(|(p, _)| p.outcome == Outcome::Deny),
        "brian@example.ie was released: {log:#?}"
    );
    let t = status(
        &custodia(
            dir,
            &[
                "audit",
                "show",
                "--keys",
                "keys",
                "--region",
                "ie",
                "--details",
            ],
        ),
        0,
        "audit show",
    );
    assert!(
        t.contains("approval_wrong_mailbox") && t.contains("brian@example.ie"),
        "{t}"
    );
    let t = status(
        &custodia(dir, &["report", "--keys", "keys", "--region", "ie"]),
        0,
        "report ie",
    );
    assert!(
        t.contains("recomputed from its verified log: identical"),
        "{t}"
    );
    let row = |cells: &[&str]| {
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().starts_with(cells))
    };
    assert!(row(&["unwrap", "us", "allow", "yes"]), "{t}");
    assert!(row(&["unwrap", "us", "deny", "no"]), "{t}");
    assert!(row(&["unwrap", "ie", "allow", "no"]), "{t}");

    // 8. After everything, still no plaintext anywhere in the store.
    let found = leaks(&store.root, &needles);
    assert!(found.is_empty(), "plaintext in the store: {found:#?}");
    drop(gateways);
}
