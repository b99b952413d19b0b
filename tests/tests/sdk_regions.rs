//! The SDK (`custodia` crate) with several regions and custodians, against real custodian
//! processes on 127.0.0.1: a region with two custodians needs both (n-of-n), and a
//! rolled-back (older) manifest is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use custodia::{CacheConfig, Client, Directory, Error, Policy};
use custodia_custodian::manifest::ManifestPin;
use custodia_envelope::{Binding, CustodianName, Header, Metadata, Region};
use custodia_tests::world::{MAILBOX_A, caller, rt, two_region_pki, world};
use custodia_tests::{CustodianProc, CustodianSpec, Leaf, TestCa};

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

fn name(custodian: &str) -> CustodianName {
    CustodianName::new(custodian).unwrap()
}

/// Three custodians, `ie/dublin`, `ie/cork` and `us/virginia`, sharing one server CA and
/// the same Irish and US client CAs.
struct Regions {
    _tmp: tempfile::TempDir,
    server_ca: TestCa,
    gw_ie: Leaf,
    gw_us: Leaf,
    dublin: CustodianProc,
    cork: CustodianProc,
    virginia: CustodianProc,
}

fn regions() -> Regions {
    let tmp = tempfile::tempdir().unwrap();
    let (server_ca, cas) = two_region_pki();
    let gw_ie = cas["ie"].leaf("gateway-ie", &["gateway-ie"]);
    let gw_us = cas["us"].leaf("gateway-us", &["gateway-us"]);
    let start = |region: &str, custodian: &str, gateway: &str| {
        let spec = CustodianSpec {
            region: region.into(),
            custodian: custodian.into(),
            callers: vec![caller(region, gateway, &["unwrap", "rewrap"])],
            approvers: Vec::new(),
            threshold: 0,
            limits: Vec::new(),
            revoked: BTreeMap::new(),
        };
        CustodianProc::start(
            &tmp.path().join(format!("{region}-{custodian}")),
            &server_ca,
            &cas,
            &spec,
        )
    };
    let dublin = start("ie", "dublin", "gateway-ie");
    let cork = start("ie", "cork", "gateway-ie");
    let virginia = start("us", "virginia", "gateway-us");
    Regions {
        _tmp: tmp,
        server_ca,
        gw_ie,
        gw_us,
        dublin,
        cork,
        virginia,
    }
}

/// One directory with all three custodians. The application holds an Irish and a US client
/// certificate and presents, to each custodian, the one of that custodian's region.
fn directory(r: &Regions) -> Arc<Directory> {
    Arc::new(
        Directory::builder()
            .custodian(
                &region("ie"),
                &name("dublin"),
                r.dublin.sdk_endpoint(&r.server_ca, &r.gw_ie),
            )
            .unwrap()
            .custodian(
                &region("ie"),
                &name("cork"),
                r.cork.sdk_endpoint(&r.server_ca, &r.gw_ie),
            )
            .unwrap()
            .custodian(
                &region("us"),
                &name("virginia"),
                r.virginia.sdk_endpoint(&r.server_ca, &r.gw_us),
            )
            .unwrap()
            .build(),
    )
}

fn policy() -> Policy {
    Policy::builder()
        .domain("example.ie", &region("ie"))
        .domain("example.com", &region("us"))
        .build()
}

/// `(region, custodian)` of every stanza of a stored object, in header order.
fn stanzas(stored: &[u8]) -> Vec<(String, String)> {
    Header::parse(stored)
        .unwrap()
        .stanzas()
        .iter()
        .map(|s| {
            (
                s.recipient.region.as_str().to_owned(),
                s.recipient.custodian.as_str().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_region_with_two_custodians_needs_both() {
    let mut r = regions();
    let runtime = rt();
    let dir = directory(&r);
    assert_eq!(
        dir.regions().cloned().collect::<Vec<_>>(),
        [region("ie"), region("us")]
    );
    runtime.block_on(dir.refresh()).unwrap();
    let c = Client::builder(dir, policy())
        .cache(CacheConfig::DISABLED)
        .build();

    let b = Binding::new("mail-ie", "aoife/1.eml").unwrap();
    let stored = c
        .seal(MAILBOX_A, &b, b"sealed to two", &Metadata::new())
        .unwrap();
    let mut got = stanzas(&stored);
    got.sort();
    assert_eq!(
        got,
        [
            ("ie".to_owned(), "cork".to_owned()),
            ("ie".to_owned(), "dublin".to_owned())
        ]
    );
    assert_eq!(
        runtime.block_on(c.open(&b, &stored)).unwrap().plaintext,
        b"sealed to two"
    );

    // One of the two Irish custodians down: its share is missing, so nothing opens, and the
    // error names it and says to retry.
    r.cork.kill9();
    let e = runtime.block_on(c.open(&b, &stored)).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Unavailable { region: reg, custodian, .. }
                if *reg == region("ie") && custodian.as_str() == "cork"
        ),
        "{e:?}"
    );
    assert!(e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("cork"), "{e}");

    // Sealing needs no custodian: it still works from the cached manifests, still to both.
    let during = c
        .seal(MAILBOX_A, &b, b"while cork is down", &Metadata::new())
        .unwrap();
    assert_eq!(stanzas(&during).len(), 2);

    // A US mailbox is sealed to the US custodian only, and opens (cork is not involved).
    let us_b = Binding::new("mail-us", "joe/1.eml").unwrap();
    let us_stored = c
        .seal(
            "joe@example.com",
            &us_b,
            b"stays in the us",
            &Metadata::new(),
        )
        .unwrap();
    assert_eq!(
        stanzas(&us_stored),
        [("us".to_owned(), "virginia".to_owned())]
    );
    assert_eq!(
        Header::parse(&us_stored).unwrap().context().region(),
        &region("us")
    );
    assert_eq!(
        runtime
            .block_on(c.open(&us_b, &us_stored))
            .unwrap()
            .plaintext,
        b"stays in the us"
    );
    // Only the US custodian was asked for the US object.
    let us_unwraps = |p: &CustodianProc| {
        p.log()
            .iter()
            .filter(|row| {
                row.operation == "unwrap" && row.mailbox.as_deref() == Some("joe@example.com")
            })
            .count()
    };
    assert_eq!(us_unwraps(&r.virginia), 1);
    assert_eq!(us_unwraps(&r.dublin), 0);

    // Cork back: what was sealed while it was down opens.
    r.cork.spawn();
    let dir = directory(&r);
    runtime.block_on(dir.refresh()).unwrap();
    let c = Client::builder(dir, policy())
        .cache(CacheConfig::DISABLED)
        .build();
    assert_eq!(
        runtime.block_on(c.open(&b, &during)).unwrap().plaintext,
        b"while cork is down"
    );
}

/// Copies directory `from` to `to` (files only, recursively).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_rolled_back_manifest_is_refused() {
    let mut w = world();
    let runtime = rt();
    let ie = region("ie");
    let dir = w.sdk_directory(&w.gw_ie);
    runtime.block_on(dir.refresh()).unwrap();
    let c = Client::builder(
        Arc::clone(&dir),
        Policy::builder().domain("example.ie", &ie).build(),
    )
    .build();
    let b = Binding::new("mail-ie", "aoife/1.eml").unwrap();
    let version = |stored: &[u8]| {
        Header::parse(stored).unwrap().stanzas()[0]
            .recipient
            .key_version
            .0
    };
    assert_eq!(
        version(&c.seal(MAILBOX_A, &b, b"v1", &Metadata::new()).unwrap()),
        1
    );

    // The manifest before the rotation, and the custodian's state as it was then.
    let old = runtime.block_on(w.client(&w.gw_ie).manifest()).unwrap();
    let snapshot = w.custodian.dir.with_file_name("dublin-before-rotate");
    copy_dir(&w.custodian.dir.join("data"), &snapshot);

    let rotated = runtime.block_on(w.client(&w.admin_ie).rotate()).unwrap();
    assert!(rotated.manifest.serial > old.manifest.serial);
    runtime.block_on(dir.refresh()).unwrap();
    assert_eq!(
        version(&c.seal(MAILBOX_A, &b, b"v2", &Metadata::new()).unwrap()),
        2,
        "after rotate and refresh, new objects are sealed to version 2"
    );

    // The pin, as the directory uses it: once the new manifest is accepted, the older one
    // (validly signed, unexpired) is a rollback and changes nothing.
    let now = custodia_custodian::service::unix_now();
    let mut pin = ManifestPin::new(w.custodian.manifest_key);
    assert_eq!(pin.accept(&rotated, now).unwrap()[0].id.key_version.0, 2);
    let e = pin.accept(&old, now).unwrap_err();
    assert!(e.to_string().contains("rollback"), "{e}");
    assert_eq!(pin.current().unwrap().serial, rotated.manifest.serial);
    // The same old manifest is fine for a fresh pin: it is refused only as a rollback.
    assert!(
        ManifestPin::new(w.custodian.manifest_key)
            .accept(&old, now)
            .is_ok()
    );
    // Retiring version 1 changes nothing here: the rotation already retired it.

    // At the SDK level: the custodian is restored to its state before the rotation (on the
    // same port) and so serves the older manifest. The directory, which already accepted the
    // rotated one, refuses it and keeps sealing to version 2.
    let config = std::fs::read_to_string(&w.custodian.config).unwrap();
    let pinned_port = config.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{}\"", w.custodian.addr),
    );
    assert_ne!(config, pinned_port);
    std::fs::write(&w.custodian.config, pinned_port).unwrap();
    w.custodian.kill9();
    let data = w.custodian.dir.join("data");
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&snapshot, &data);
    let addr = w.custodian.addr;
    w.custodian.spawn();
    assert_eq!(w.custodian.addr, addr);
    // On start the restored custodian signs its old key state (only version 1, active) with
    // the next serial of that state, which is the serial the directory already accepted
    // for the rotated state: a rollback dressed as a reused serial.
    let served = runtime.block_on(w.client(&w.gw_ie).manifest()).unwrap();
    assert!(served.manifest.serial <= rotated.manifest.serial);
    assert_ne!(served.manifest, rotated.manifest);
    assert!(served.manifest.keys.iter().all(|k| k.version == 1));
    let e = runtime.block_on(dir.refresh()).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::ManifestUnavailable { reason, .. }
                if reason.contains("rollback") || reason.contains("already accepted")
        ),
        "{e:?}"
    );
    assert_eq!(
        version(
            &c.seal(MAILBOX_A, &b, b"still v2", &Metadata::new())
                .unwrap()
        ),
        2
    );
}
