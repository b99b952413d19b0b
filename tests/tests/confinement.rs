//! Gateway confinement with real processes (s3s-fs, a custodian, the gateway, awscli, curl):
//! no key a client names reaches outside its route's bucket and prefix or into the
//! gateway's own records, on either front, for any operation; and no authorisation header or
//! presigned signature reaches the gateway's log, even at trace level.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

use custodia_tests::gateway::{GatewayProc, curl, files_under};
use custodia_tests::s3::{
    CLIENT_SK, S3Setup, Store, StoreKind, aws, make_bucket, ok, store_gateway_config,
};
use custodia_tests::world::world;

const IRISH: &str = "aoife@example.ie/INBOX/1.eml";

/// Every path of a file under `dir` that is not inside `dir/bucket/` (s3s-fs keeps a bucket
/// as a directory).
fn outside_bucket(dir: &Path, bucket: &str) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| !f.starts_with(dir.join(bucket)))
        .map(|f| f.display().to_string())
        .collect()
}

/// A gateway over s3s-fs with a `mail` bucket holding `IRISH` (written through the gateway
/// from the file returned, which holds `text`).
fn with_irish_object(text: &[u8]) -> (S3Setup, std::path::PathBuf) {
    let s = S3Setup::start(StoreKind::S3sFs);
    make_bucket(s.ep(), &s.store, "mail");
    let body = s.files.join("body");
    std::fs::write(&body, text).unwrap();
    let dest = format!("s3://mail/{IRISH}");
    ok(
        &aws(s.ep(), &["s3", "cp", body.to_str().unwrap(), &dest], None),
        "cp",
    );
    (s, body)
}

#[test]
fn dot_and_empty_segments_are_refused_on_both_fronts_for_every_operation() {
    let (s, body) = with_irish_object(b"Irish mail");
    let ep = s.ep();
    let before_outside = outside_bucket(s.store.disk(), "mail");
    let api = |args: &[&str]| aws(ep, &[&["s3api"], args].concat(), None);
    let refused = |out: &std::process::Output, what: &str| {
        assert!(
            !out.status.success(),
            "{what} was accepted: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    let escape = "jane@example.com/../aoife@example.ie/INBOX/1.eml";
    for key in [
        escape,
        "a@example.ie/../.custodia/x",
        "a@example.ie/../../../../x",
        "a@example.ie/./x",
        "a@example.ie//x",
        "a@example.ie/%2e%2e/x",
    ] {
        refused(
            &api(&["delete-object", "--bucket", "mail", "--key", key]),
            &format!("delete-object {key}"),
        );
        refused(
            &api(&[
                "put-object",
                "--bucket",
                "mail",
                "--key",
                key,
                "--body",
                body.to_str().unwrap(),
            ]),
            &format!("put-object {key}"),
        );
        refused(
            &api(&["head-object", "--bucket", "mail", "--key", key]),
            &format!("head-object {key}"),
        );
        refused(
            &api(&["create-multipart-upload", "--bucket", "mail", "--key", key]),
            &format!("create-multipart-upload {key}"),
        );
        // A copy whose source escapes, to a good destination.
        refused(
            &api(&[
                "copy-object",
                "--bucket",
                "mail",
                "--key",
                "jane@example.com/copy.eml",
                "--copy-source",
                &format!("mail/{key}"),
            ]),
            &format!("copy-object from {key}"),
        );
    }
    // DeleteObjects: the escaping entry is an error, the object stays.
    let out = ok(
        &api(&[
            "delete-objects",
            "--bucket",
            "mail",
            "--delete",
            &format!("{{\"Objects\":[{{\"Key\":\"{escape}\"}}]}}"),
        ]),
        "delete-objects",
    );
    assert!(out.contains("Errors"), "{out}");
    // The HTTP front, with the path sent as is (curl would otherwise resolve the dots).
    for path in [
        "/mail/jane@example.com/../aoife@example.ie/INBOX/1.eml",
        "/mail/jane@example.com/%2e%2e/aoife@example.ie/INBOX/1.eml",
        "/mail/a@example.ie/%2e%2e/.custodia/x",
        "/mail/a@example.ie//x",
    ] {
        let url = s.gw.url(path);
        for method in ["DELETE", "GET"] {
            let r = curl(&["--path-as-is", "-X", method, &url]);
            assert!(
                r.status == 400 || r.status == 403,
                "{method} {path}: {}",
                r.status
            );
        }
        let r = curl(&["--path-as-is", "-T", body.to_str().unwrap(), &url]);
        assert!(
            r.status == 400 || r.status == 403,
            "PUT {path}: {}",
            r.status
        );
    }

    // The Irish object is intact, nothing was written into .custodia/ or outside the bucket.
    let back = s.files.join("back");
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                &format!("s3://mail/{IRISH}"),
                back.to_str().unwrap(),
            ],
            None,
        ),
        "cp back",
    );
    assert_eq!(std::fs::read(&back).unwrap(), b"Irish mail");
    assert_eq!(outside_bucket(s.store.disk(), "mail"), before_outside);
    assert!(
        !files_under(&s.store.disk().join("mail"))
            .iter()
            .any(|f| f.to_string_lossy().contains(".custodia/x")),
        "a record was planted under .custodia/"
    );
}

/// `text` with its `%XX` escapes decoded.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn authorisation_headers_and_presigned_signatures_never_reach_the_log() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::start(StoreKind::S3sFs, &tmp.path().join("s3"));
    let gw_dir = tmp.path().join("gw");
    let cfg = store_gateway_config(&w, &w.gw_ie, &store, &gw_dir);
    let log = tmp.path().join("gateway.log");
    let gw = GatewayProc::start_logging(&gw_dir, &cfg, "trace", Some(&log));
    let ep = gw.s3.unwrap();
    make_bucket(ep, &store, "mail");
    let body = tmp.path().join("body");
    std::fs::write(&body, b"logged?").unwrap();
    let dest = format!("s3://mail/{IRISH}");
    ok(
        &aws(ep, &["s3", "cp", body.to_str().unwrap(), &dest], None),
        "cp",
    );
    let url = ok(
        &aws(ep, &["s3", "presign", &dest, "--expires-in", "60"], None),
        "presign",
    );
    // SigV4 (`X-Amz-Signature=`) or, awscli's default for presigning, SigV2 (`Signature=`).
    let signature = url
        .trim()
        .split_once("Signature=")
        .map(|(_, rest)| rest.split('&').next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no signature in {url}"));
    assert!(signature.len() >= 16, "{url}");
    let decoded = percent_decoded(&signature);
    let got = curl(&["-H", "Authorization-Unused: x", url.trim()]);
    assert_eq!(got.status, 200);
    // The HTTP front's bearer token too.
    let r = curl(&[&gw.url(&format!("/mail/{IRISH}"))]);
    assert_eq!(r.status, 200);
    drop(gw);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.is_empty(), "the gateway logged nothing at trace");
    for secret in [
        signature.as_str(),
        decoded.as_str(),
        "X-Amz-Signature",
        "Signature=",
        "AWS4-HMAC-SHA256 Credential",
        CLIENT_SK,
        custodia_tests::gateway::TOKEN,
    ] {
        assert!(!text.contains(secret), "the log holds {secret:?}");
    }
}

/// A gateway over s3s-fs whose residency also has an exact rule for `ceo@example.com`.
fn with_exact_rule() -> (S3Setup, GatewayProc) {
    let s = S3Setup::start(StoreKind::S3sFs);
    let dir = s.tmp.path().join("gw-exact");
    let cfg = store_gateway_config(&s.world, &s.world.gw_ie, &s.store, &dir).replacen(
        "[residency]\n",
        "[residency]\nmailboxes = { \"ceo@example.com\" = \"ie\" }\n",
        1,
    );
    let gw = GatewayProc::start(&dir, &cfg);
    (s, gw)
}

#[test]
fn every_spelling_of_a_mailbox_is_sealed_under_its_canonical_id_and_its_region() {
    let (s, gw) = with_exact_rule();
    let ep = gw.s3.unwrap();
    make_bucket(ep, &s.store, "mail");
    let body = s.files.join("body");
    std::fs::write(&body, b"board minutes").unwrap();
    for (i, mailbox) in ["CEO@example.com", "ceo@EXAMPLE.COM", "Ceo@Example.Com"]
        .iter()
        .enumerate()
    {
        let key = format!("{mailbox}/INBOX/{i}.eml");
        ok(
            &aws(
                ep,
                &[
                    "s3",
                    "cp",
                    body.to_str().unwrap(),
                    &format!("s3://mail/{key}"),
                ],
                None,
            ),
            &format!("cp {key}"),
        );
        // Sealed to the Irish custodian, under the canonical id.
        let stored = s.store.fetch_raw("mail", &key);
        let header = custodia_envelope::Header::parse(&stored).unwrap();
        assert_eq!(header.context().mailbox(), "ceo@example.com", "{key}");
        assert_eq!(header.context().region().as_str(), "ie", "{key}");
        assert_eq!(
            custodia_tests::s3::open_with_sdk(&s.world, "mail", &key, &stored),
            b"board minutes"
        );
    }
    // Whitespace, control or invisible characters in the mailbox: 403, nothing written.
    for mailbox in [
        " ceo@example.com",
        "ceo@example.com ",
        "ceo\u{200b}@example.com",
    ] {
        let key = format!("{mailbox}/INBOX/x.eml");
        let out = aws(
            ep,
            &[
                "s3api",
                "put-object",
                "--bucket",
                "mail",
                "--key",
                &key,
                "--body",
                body.to_str().unwrap(),
            ],
            None,
        );
        assert!(!out.status.success(), "{key:?} was written");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("AccessDenied"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !files_under(&s.store.disk().join("mail"))
            .iter()
            .any(|f| f.to_string_lossy().contains("x.eml")),
        "an invalid mailbox's object reached the store"
    );
}

#[test]
fn an_object_moved_under_another_mailbox_is_refused_before_any_unwrap() {
    let (s, _) = with_irish_object(b"for aoife only");
    let ep = s.ep();
    // The store's holder copies Aoife's sealed object under Brian's key.
    let moved = "brian@example.ie/INBOX/1.eml";
    let raw = s.files.join("raw");
    std::fs::write(&raw, s.store.fetch_raw("mail", IRISH)).unwrap();
    ok(
        &aws(
            s.store.addr(),
            &[
                "s3api",
                "put-object",
                "--bucket",
                "mail",
                "--key",
                moved,
                "--body",
                raw.to_str().unwrap(),
            ],
            Some(s.store.keys()),
        ),
        "plant",
    );
    let logged = s.world.custodian.log().len();
    let out = s.files.join("out");
    let got = aws(
        ep,
        &[
            "s3",
            "cp",
            &format!("s3://mail/{moved}"),
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(!got.status.success(), "the moved object was served");
    let head = aws(
        ep,
        &["s3api", "head-object", "--bucket", "mail", "--key", moved],
        None,
    );
    assert!(!head.status.success());
    // No unwrap was asked for it: the custodian's log did not grow.
    assert_eq!(s.world.custodian.log().len(), logged);
}
