//! `custodia reseal` with every part its own process. Mail as a gateway sealed it before
//! mailbox ids were canonical: its exact rule `ceo@example.com = ie` missed `CEO@example.com`,
//! so the domain rule sealed that mail to `us`, under the spelling its key used (the objects
//! are built here as that gateway built them, from the US custodian's signed manifest: two
//! single-part messages and a multipart attachment with its layout record). Then the fix:
//! `verify --residency` names them, `reseal --to ie` run by the US region (whose custodian
//! opens them, on its audit log) moves them to Ireland in place; Ireland's gateway reads them
//! and the US gateway no longer can. Left alone, every time: mail sealed under its canonical
//! id (by the rules of its day), an object moved under another mailbox's key, anything a
//! region cannot open, and an Irish run told to send Irish mail to the US.
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
use custodia_envelope::{
    Binding, Context, Header, Metadata, Profile, RecipientPublicKey, Region, SealOptions,
    SystemRandomness, seal,
};
use custodia_tests::deployment::{TwoRegions, custodia, gateway_config, status};
use custodia_tests::gateway::{GatewayProc, files_under};
use custodia_tests::s3::{STORE_AK, STORE_SK, aws, leaks, ok};
use custodia_tests::world::rt;
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

/// The sealable keys of `region`'s custodians, from their manifests as `config`'s gateway
/// verifies them.
fn recipients(config: &Path, region: &str) -> Vec<RecipientPublicKey> {
    let config = custodia_gateway::Config::load(config).unwrap();
    let client = custodia_gateway::gateway::sdk_client(&config).unwrap();
    rt().block_on(client.directory().refresh()).unwrap();
    client
        .directory()
        .recipients(&Region::new(region).unwrap())
        .unwrap()
}

/// One envelope as the gateway of an earlier release sealed it: `mailbox` as the key spelled
/// it, `extra` context entries (a multipart record's upload and part).
fn old_envelope(
    to: &[RecipientPublicKey],
    region: &str,
    mailbox: &str,
    extra: &[(&str, &str)],
    bound_to: &str,
    metadata: &Metadata,
    body: &[u8],
) -> Vec<u8> {
    let mut context = Context::new(mailbox, &Region::new(region).unwrap()).unwrap();
    for (k, v) in extra {
        context = context.with(k, v).unwrap();
    }
    seal(
        &SealOptions {
            profile: Profile::DEFAULT,
            context: &context,
            binding: &Binding::new("mail", bound_to).unwrap(),
            recipients: to,
            metadata,
        },
        body,
        &mut SystemRandomness::new(),
    )
    .unwrap()
}

/// The store's own S3 API (the provider's credentials), answering JSON.
fn store_api(store: SocketAddr, args: &[&str]) -> Value {
    let out = aws(
        store,
        &[&["s3api"], args].concat(),
        Some((STORE_AK, STORE_SK)),
    );
    let text = ok(&out, args[0]);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn put_raw(store: SocketAddr, key: &str, bytes: &[u8], scratch: &Path) {
    let f = scratch.join("raw");
    std::fs::write(&f, bytes).unwrap();
    store_api(
        store,
        &[
            "put-object",
            "--bucket",
            "mail",
            "--key",
            key,
            "--body",
            f.to_str().unwrap(),
        ],
    );
}

/// A multipart object as the earlier gateway completed it: parts sealed with the upload id
/// and part number, the upload's metadata envelope inside a layout envelope under
/// `.custodia/layout/{key}/{parts}`, then the store's CompleteMultipartUpload.
fn put_old_multipart(
    store: SocketAddr,
    to: &[RecipientPublicKey],
    mailbox: &str,
    key: &str,
    parts: &[&[u8]],
    scratch: &Path,
) {
    let id = store_api(
        store,
        &["create-multipart-upload", "--bucket", "mail", "--key", key],
    )["UploadId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = (i + 1).to_string();
        let sealed = old_envelope(
            to,
            "us",
            mailbox,
            &[("upload", &id), ("part", &n)],
            key,
            &Metadata::new(),
            p,
        );
        let f = scratch.join(format!("part-{n}"));
        std::fs::write(&f, sealed).unwrap();
        let v = store_api(
            store,
            &[
                "upload-part",
                "--bucket",
                "mail",
                "--key",
                key,
                "--upload-id",
                &id,
                "--part-number",
                &n,
                "--body",
                f.to_str().unwrap(),
            ],
        );
        etags.push(serde_json::json!({"PartNumber": i + 1, "ETag": v["ETag"]}));
    }
    let meta_env = old_envelope(
        to,
        "us",
        mailbox,
        &[("upload", &id), ("part", "metadata")],
        key,
        &Metadata::new(),
        b"",
    );
    let mut layout_meta = Metadata::new();
    for (k, v) in [
        ("upload", id.clone()),
        ("parts", parts.len().to_string()),
        ("part-size", parts[0].len().to_string()),
        ("last-size", parts[parts.len() - 1].len().to_string()),
    ] {
        layout_meta.insert(k, &v).unwrap();
    }
    let lkey = format!(".custodia/layout/{key}/{}", parts.len());
    let layout = old_envelope(
        to,
        "us",
        mailbox,
        &[("upload", &id), ("part", "layout")],
        &lkey,
        &layout_meta,
        &meta_env,
    );
    put_raw(store, &lkey, &layout, scratch);
    let doc = scratch.join("complete.json");
    std::fs::write(&doc, serde_json::json!({ "Parts": etags }).to_string()).unwrap();
    store_api(
        store,
        &[
            "complete-multipart-upload",
            "--bucket",
            "mail",
            "--key",
            key,
            "--upload-id",
            &id,
            "--multipart-upload",
            &format!("file://{}", doc.display()),
        ],
    );
}

#[test]
fn reseal_moves_mail_sealed_to_the_wrong_region_home_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let deployed = TwoRegions::start(dir);
    let keys = deployed.keys.clone();
    let store = &deployed.store;
    let custodians = deployed.custodians;
    // The multipart object among the old ones has a version 1 layout, as every gateway wrote
    // before part binding: reading it (and so resealing it) needs `legacy_layouts` on its
    // route, as OPERATIONS.md §2.5 says.
    let config = |region: &str, rule: bool, name: &str| {
        let gdir = dir.join(name);
        let text = gateway_config(&keys, region, &custodians, store.addr, &gdir);
        let route = "[[route]]\nbucket = \"mail\"\nkey = '^(?P<mailbox>[^/]+@[^/]+)/'\n";
        assert!(text.contains(route), "{text}");
        let text = text.replacen(route, &format!("{route}legacy_layouts = true\n"), 1);
        let text = if rule {
            text.replacen("[residency]\n", &format!("[residency]\n{RULE}"), 1)
        } else {
            text
        };
        (gdir, text)
    };

    // Before the fix. The gateways of today write the mail whose placement is right (and one
    // CEO message sealed under the canonical id while no rule covered it yet: the rules of
    // its day); the CEO's mail under other spellings is built as the earlier gateway built it.
    let (gdir, text) = config("us", true, "gateway-us");
    std::fs::create_dir_all(&gdir).unwrap();
    std::fs::write(gdir.join("gateway.toml"), &text).unwrap();
    let us_keys = recipients(&gdir.join("gateway.toml"), "us");
    let part1: Vec<u8> = b"CONFIDENTIAL-ATTACHMENT-PART-ONE "
        .iter()
        .copied()
        .cycle()
        .take(5 * 1024 * 1024)
        .collect();
    let part2 = b"CONFIDENTIAL-ATTACHMENT-LAST-PART and its closing lines.\n".to_vec();
    let misplaced: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "CEO@example.com/INBOX/1.eml",
            "CEO@example.com",
            b"Subject: board minutes (reseal)\n\nThe merger closes on Friday.\n".to_vec(),
        ),
        (
            "ceo@EXAMPLE.COM/INBOX/2.eml",
            "ceo@EXAMPLE.COM",
            b"Subject: salaries (reseal)\n\nThe new salary bands apply from March.\n".to_vec(),
        ),
        (
            "CEO@example.com/Files/figures.bin",
            "CEO@example.com",
            [part1.clone(), part2.clone()].concat(),
        ),
    ];
    for (key, spelled, body) in &misplaced[..2] {
        let env = old_envelope(&us_keys, "us", spelled, &[], key, &Metadata::new(), body);
        put_raw(store.addr, key, &env, &files);
    }
    // Irish mail the earlier gateway sealed rightly, by the domain rule, under its key's
    // spelling: to be left alone when rules the US side writes claim the mailbox.
    let aoife_old_key = "Aoife@example.ie/INBOX/2.eml";
    let aoife_old = b"Subject: old Irish mail (reseal)\n\nSealed in Ireland, spelled Aoife.\n";
    let ie_keys = recipients(&gdir.join("gateway.toml"), "ie");
    let env = old_envelope(
        &ie_keys,
        "ie",
        "Aoife@example.ie",
        &[],
        aoife_old_key,
        &Metadata::new(),
        aoife_old,
    );
    put_raw(store.addr, aoife_old_key, &env, &files);
    put_old_multipart(
        store.addr,
        &us_keys,
        "CEO@example.com",
        misplaced[2].0,
        &[&part1, &part2],
        &files,
    );
    let current: Vec<(&str, Vec<u8>, &str)> = vec![
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
    let canonical_key = "ceo@example.com/INBOX/3.eml";
    let canonical_body = b"Subject: canonical (reseal)\n\nSealed under the canonical id.\n";
    {
        let (gdir, text) = config("us", false, "gateway-us-before");
        let us_before = GatewayProc::start(&gdir, &text);
        let (gdir, text) = config("ie", true, "gateway-ie");
        let ie = GatewayProc::start(&gdir, &text);
        let writes = current
            .iter()
            .map(|(k, b, via)| (*k, b.as_slice(), *via))
            .chain([(canonical_key, canonical_body.as_slice(), "us")]);
        for (i, (key, body, via)) in writes.enumerate() {
            let f = files.join(format!("in-{i}"));
            std::fs::write(&f, body).unwrap();
            let ep = if via == "us" { &us_before } else { &ie };
            ok(
                &aws(
                    ep.s3.unwrap(),
                    &["s3", "cp", f.to_str().unwrap(), &format!("s3://mail/{key}")],
                    None,
                ),
                key,
            );
        }
        // The old objects read as they always did, through the region they are sealed to.
        let out = files.join("out");
        for (key, _, body) in &misplaced {
            ok(&get(us_before.s3.unwrap(), key, &out), key);
            assert!(
                std::fs::read(&out).unwrap() == *body,
                "{key} does not read back"
            );
        }
    }
    for (key, _, _) in &misplaced {
        assert_eq!(
            sealed_header(&store.root, key).context().region().as_str(),
            "us"
        );
    }
    assert_eq!(
        files_under(&store.root.join("mail/.custodia/layout")).len(),
        1,
        "the attachment's layout record"
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
    let us_dir = dir.join("gateway-us");
    let us_config = us_dir.join("gateway.toml");
    let us_text = std::fs::read_to_string(&us_config).unwrap();
    let ie_config = dir.join("gateway-ie").join("gateway.toml");

    // verify --residency names the three, the canonical one and the moved object (the old
    // Irish spelling is where its mailbox lives).
    let (code, v, err) = job(dir, "verify", &us_config, &["--residency"]);
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "wrong_region"), 5, "{v}");

    // --dry-run, a run from Ireland (which cannot open `us` objects), a run to its own
    // region, one to a region the mailbox does not live in, and an Irish run told (by rules
    // the US side wrote) to send Aoife's mail to the US: none changes anything.
    let ceo = ["--mailbox", "ceo@example.com"];
    let before = snapshot(&store.root);
    let (code, v, err) = job(
        dir,
        "reseal",
        &us_config,
        &[&ceo[..], &["--to", "ie", "--dry-run"]].concat(),
    );
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "would_reseal"), 3, "{v}");
    assert_eq!(count(&v, "wrong_region"), 2, "{v}");
    assert_eq!(count(&v, "current"), 3, "{v}");
    let (code, v, err) = job(
        dir,
        "reseal",
        &ie_config,
        &[&ceo[..], &["--to", "us"]].concat(),
    );
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "wrong_region"), 5, "{v}");
    assert_eq!(count(&v, "resealed"), 0, "{v}");
    assert!(
        v.to_string().contains("not to this config's region ie"),
        "{v}"
    );
    for bad in [
        &["--to", "us", "--mailbox", "ceo@example.com"][..],
        &["--to", "ie"][..],
        &["--to", "ie", "--mailbox", "ceo @example.com"][..],
    ] {
        let out = custodia(
            dir,
            &[
                &[
                    "reseal",
                    "--config",
                    us_config.to_str().unwrap(),
                    "--bucket",
                    "mail",
                ][..],
                bad,
            ]
            .concat(),
        );
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
    }
    // The CEO moved to Germany meanwhile (a third region's custodian in the config): the
    // mail does not go to Ireland.
    let de = dir.join("gateway-us").join("gateway-de.toml");
    std::fs::write(
        &de,
        us_text.replacen(RULE, "mailboxes = { \"ceo@example.com\" = \"de\" }\n", 1)
            + &format!(
                "[[custodian]]\nregion = \"de\"\nname = \"de-custodian\"\n\
                 addr = \"127.0.0.1:9\"\nserver_name = \"localhost\"\nca = \"{}\"\n\
                 manifest_key = \"{}\"\n",
                keys.join("ie").join("ca.pem").display(),
                "11".repeat(32)
            ),
    )
    .unwrap();
    let (code, v, err) = job(
        dir,
        "reseal",
        &de,
        &[&ceo[..], &["--to", "ie", "--dry-run"]].concat(),
    );
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "would_reseal"), 0, "{v}");
    assert!(v.to_string().contains("lives in de, not in --to ie"), "{v}");
    let handed = dir.join("gateway-ie").join("gateway-handover.toml");
    std::fs::write(
        &handed,
        std::fs::read_to_string(&ie_config).unwrap().replacen(
            RULE,
            "mailboxes = { \"ceo@example.com\" = \"ie\", \"aoife@example.ie\" = \"us\" }\n",
            1,
        ),
    )
    .unwrap();
    let (code, v, err) = job(
        dir,
        "reseal",
        &handed,
        &[&ceo[..], &["--to", "us"]].concat(),
    );
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "resealed"), 0, "{v}");
    let text = v.to_string();
    assert!(text.contains("Aoife@example.ie/INBOX/2.eml"), "{v}");
    assert!(text.contains("not one of the --mailbox names"), "{v}");
    assert_eq!(
        before,
        snapshot(&store.root),
        "a reseal that must not run changed the store"
    );

    // The US region reseals: three moved home; the canonical one and the moved object are
    // left alone and named.
    let ck = dir.join("reseal.json");
    let ck_arg = [
        "--to",
        "ie",
        "--mailbox",
        "CEO@Example.com",
        "--checkpoint",
        ck.to_str().unwrap(),
    ];
    let (code, v, err) = job(dir, "reseal", &us_config, &ck_arg);
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "resealed"), 3, "{v}");
    assert_eq!(count(&v, "current"), 3, "{v}");
    assert_eq!(count(&v, "wrong_region"), 2, "{v}");
    let mut named: Vec<&str> = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    named.sort_unstable();
    assert_eq!(
        named,
        [canonical_key, "ceo@example.com/INBOX/moved.eml"],
        "{v}"
    );
    for (key, _, _) in &misplaced {
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
    // The multipart object is now one envelope; its layout record and the job's temporary
    // copies are gone, and no plaintext of any message is in the store.
    assert_eq!(
        files_under(&store.root.join("mail/.custodia/layout")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_under(&store.root.join("mail/.custodia/reseal")),
        Vec::<PathBuf>::new()
    );
    let needles: Vec<String> = misplaced
        .iter()
        .map(|(_, _, b)| b.clone())
        .chain(current.iter().map(|(_, b, _)| b.clone()))
        .flat_map(|b| {
            b.split(|c| *c == b'\n')
                .filter(|l| l.len() >= 10)
                .map(|l| String::from_utf8_lossy(&l[..l.len().min(64)]).into_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(leaks(&store.root, &needles), Vec::<String>::new());

    // Ireland reads the CEO's mail; the US gateway no longer can without an approval.
    let ie = GatewayProc::start(
        &dir.join("gateway-ie"),
        &std::fs::read_to_string(&ie_config).unwrap(),
    );
    let us = GatewayProc::start(&us_dir, &us_text);
    let out = files.join("out");
    for (key, _, body) in &misplaced {
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
    // What was left alone did not move.
    ok(&get(us.s3.unwrap(), current[0].0, &out), "jane");
    assert_eq!(std::fs::read(&out).unwrap(), current[0].1);
    ok(&get(us.s3.unwrap(), canonical_key, &out), "canonical");
    assert_eq!(std::fs::read(&out).unwrap(), canonical_body);

    // Every open was the US custodian's, on its log: in-region and allowed.
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
        .filter(|(_, d)| {
            d.mailbox
                .as_deref()
                .and_then(|m| custodia_envelope::canonical_mailbox(m).ok())
                == Some("ceo@example.com".to_owned())
        })
        .collect();
    assert!(opened.len() >= 6, "{log:#?}");
    assert!(
        opened
            .iter()
            .all(|(p, _)| p.outcome == Outcome::Allow && p.caller_region == "us"),
        "{opened:#?}"
    );

    // Run again on the finished checkpoint: a new run, nothing left to move. Without the
    // objects it leaves alone, everything is where it belongs: status 0, and verify agrees.
    let (code, v, err) = job(dir, "reseal", &us_config, &ck_arg);
    assert_eq!(code, 3, "{v} {err}");
    assert_eq!(count(&v, "resealed"), 0, "{v}");
    assert_eq!(count(&v, "current"), 6, "{v}");
    for k in [canonical_key, "ceo@example.com/INBOX/moved.eml"] {
        ok(
            &aws(
                store.addr,
                &["s3", "rm", &format!("s3://mail/{k}")],
                Some((STORE_AK, STORE_SK)),
            ),
            "rm",
        );
    }
    let (code, v, err) = job(
        dir,
        "reseal",
        &us_config,
        &[&ceo[..], &["--to", "ie"]].concat(),
    );
    assert_eq!(code, 0, "{v} {err}");
    let (code, v, err) = job(dir, "verify", &us_config, &["--residency"]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(count(&v, "sealed"), 6, "{v}");
}
