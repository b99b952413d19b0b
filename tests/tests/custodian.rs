//! The custodian as a real process on 127.0.0.1 with real mTLS: policy, approvals, identity,
//! rewrap, destruction, durability of decisions, and bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "tests"
)]

use custodia_custodian::Error;
use custodia_custodian::api::Denial;
use custodia_custodian::approval::{Action, Approval, ApproverKey, SignedApproval};
use custodia_custodian::client::Item;
use custodia_custodian::decision_log::Outcome;
use custodia_custodian::kek::LocalKek;
use custodia_custodian::keystore::Keystore;
use custodia_custodian::manifest::ManifestPin;
use custodia_envelope::{Context, Region, SystemRandomness};
use custodia_tests::TestCa;
use custodia_tests::world::{MAILBOX_A, MAILBOX_B, item, opens, rt, unwrap_one, world, world_with};

#[test]
fn in_region_caller_unwraps_and_out_of_region_caller_is_denied() {
    let w = world();
    let body = b"Subject: Dublin mail\r\n\r\nstays in Ireland";
    let o = w.seal(MAILBOX_A, "aoife/1.eml", body);

    let share = unwrap_one(&w.client(&w.gw_ie), &o, None).unwrap();
    opens(&o, share, body);

    assert_eq!(
        unwrap_one(&w.client(&w.gw_us), &o, None),
        Err(Denial::ApprovalRequired)
    );
    // A US certificate claiming the Irish gateway's name is still a US caller.
    assert_eq!(
        unwrap_one(&w.client(&w.us_claims_ie), &o, None),
        Err(Denial::ApprovalRequired)
    );

    let log = w.custodian.log();
    let outcomes: Vec<(&str, Outcome, &str)> = log
        .iter()
        .map(|d| (d.caller_region.as_str(), d.outcome, d.reason.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("ie", Outcome::Allow, "in_region"),
            ("us", Outcome::Deny, "approval_required"),
            ("us", Outcome::Deny, "approval_required"),
        ]
    );
    assert!(log.iter().all(|d| d.mailbox.as_deref() == Some(MAILBOX_A)));
}

#[test]
fn a_two_of_three_approval_opens_exactly_the_named_mailbox() {
    let w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    let b = w.seal(MAILBOX_B, "brian/1.eml", b"B's mail");
    let us = w.client(&w.gw_us);
    let approval = w.approval(&[MAILBOX_A], &w.gw_us);
    let doc = w.sign(&approval, &[0, 2]);

    let share = unwrap_one(&us, &a, Some(&doc)).unwrap();
    opens(&a, share, b"A's mail");
    assert_eq!(
        unwrap_one(&us, &b, Some(&doc)),
        Err(Denial::ApprovalWrongMailbox)
    );

    let log = w.custodian.log();
    let allowed: Vec<_> = log.iter().filter(|d| d.outcome == Outcome::Allow).collect();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0].reason, "approval");
    assert_eq!(
        allowed[0].approval_id.as_deref(),
        Some(approval.id().unwrap().to_string().as_str())
    );
}

#[test]
fn bad_approvals_are_denied_with_the_right_reason() {
    let w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    let us = w.client(&w.gw_us);
    let now = custodia_custodian::service::unix_now();
    let base = w.approval(&[MAILBOX_A], &w.gw_us);

    let mut expired = base.clone();
    expired.not_before = now - 7200;
    expired.not_after = now - 3600;
    let mut future = base.clone();
    future.not_before = now + 3600;
    future.not_after = now + 7200;
    let mut other_custodian = base.clone();
    other_custodian.custodian = "cork".into();
    let other_caller = w.approval(&[MAILBOX_A], &w.gw_ie);
    let stranger = ApproverKey::generate(&mut SystemRandomness::new()).unwrap();
    let mut by_stranger = w.sign(&base, &[0]);
    by_stranger.add_signature(stranger.sign("stranger", &base).unwrap());
    let mut twice = w.sign(&base, &[1]);
    twice.add_signature(w.approvers[1].sign("approver-1", &base).unwrap());
    let mut tampered = w.sign(&base, &[0, 1]);
    tampered.approval.purpose.push_str(" (and everything else)");

    let cases: Vec<(&str, SignedApproval, Denial)> = vec![
        (
            "expired",
            w.sign(&expired, &[0, 1]),
            Denial::ApprovalExpired,
        ),
        (
            "not yet valid",
            w.sign(&future, &[0, 1]),
            Denial::ApprovalNotYetValid,
        ),
        (
            "1 of 3",
            w.sign(&base, &[2]),
            Denial::ApprovalInsufficientSignatures,
        ),
        (
            "same approver twice",
            twice,
            Denial::ApprovalInsufficientSignatures,
        ),
        (
            "non-approver",
            by_stranger,
            Denial::ApprovalInsufficientSignatures,
        ),
        (
            "other custodian",
            w.sign(&other_custodian, &[0, 1]),
            Denial::ApprovalWrongCustodian,
        ),
        (
            "other caller",
            w.sign(&other_caller, &[0, 1]),
            Denial::ApprovalWrongCaller,
        ),
        ("tampered", tampered, Denial::ApprovalInvalid),
    ];
    for (name, doc, want) in cases {
        assert_eq!(unwrap_one(&us, &a, Some(&doc)), Err(want), "{name}");
    }
}

/// The signed bytes of a lawful-access approval, encoded by hand from the layout documented in
/// `custodia_custodian::approval` (as an older or hostile tool would, without its checks).
fn hand_encoded(a: &Approval) -> Vec<u8> {
    let mut out = b"custodia lawful access v1".to_vec();
    for s in [&a.region, &a.custodian] {
        out.push(u8::try_from(s.len()).unwrap());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&hex::decode(&a.caller_key_hash).unwrap());
    let u16s = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    u16s(&mut out, &a.request_id);
    u16s(&mut out, &a.purpose);
    let Action::LawfulAccess {
        mailboxes,
        max_uses_per_mailbox,
    } = &a.action
    else {
        unreachable!()
    };
    out.extend_from_slice(&u16::try_from(mailboxes.len()).unwrap().to_be_bytes());
    for m in mailboxes {
        u16s(&mut out, m);
    }
    out.extend_from_slice(&a.not_before.to_be_bytes());
    out.extend_from_slice(&a.not_after.to_be_bytes());
    out.extend_from_slice(&max_uses_per_mailbox.to_be_bytes());
    out
}

#[test]
fn an_approval_whose_text_could_hide_what_it_names_is_refused_however_it_was_signed() {
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    let w = world();
    let b = w.seal(MAILBOX_B, "brian/1.eml", b"B's mail");
    let us = w.client(&w.gw_us);
    let spoof = "\r\u{1b}[2K  mailboxes         aoife@example.ie";
    let mut cases: Vec<(&str, Approval)> = Vec::new();
    let mut hidden = w.approval(&[MAILBOX_A, MAILBOX_B], &w.gw_us);
    if let Action::LawfulAccess { mailboxes, .. } = &mut hidden.action {
        mailboxes.push(spoof.into());
    }
    cases.push(("a mailbox that repaints the screen", hidden));
    let mut upper = w.approval(&["Brian@example.ie"], &w.gw_us);
    upper.request_id = "m-2".into();
    cases.push(("a mailbox not in canonical form", upper));
    let mut purpose = w.approval(&[MAILBOX_B], &w.gw_us);
    purpose.purpose = "routine check\u{202e}".into();
    cases.push(("a purpose with a bidi override", purpose));
    let mut id = w.approval(&[MAILBOX_B], &w.gw_us);
    id.request_id = "M-43\nM-44".into();
    cases.push(("a request id with a line break", id));
    for (what, approval) in cases {
        assert!(approval.validate().is_err(), "{what}");
        // Two real approvers sign the hand-encoded bytes (an approver who trusted a screen).
        let bytes = hand_encoded(&approval);
        let mut doc = SignedApproval::new(approval);
        for k in &w.approvers[..2] {
            let pair =
                Ed25519KeyPair::from_seed_unchecked(&hex::decode(&*k.seed_hex()).unwrap()).unwrap();
            doc.add_signature(custodia_custodian::approval::ApprovalSignature {
                approver: "approver".into(),
                public_key: hex::encode(pair.public_key().as_ref()),
                signature: hex::encode(pair.sign(&bytes).as_ref()),
            });
        }
        assert_eq!(
            unwrap_one(&us, &b, Some(&doc)),
            Err(Denial::ApprovalInvalid),
            "{what}"
        );
    }
    // A well-formed approval for the same mailbox still works: the refusals are the text's.
    let fine = w.sign(&w.approval(&[MAILBOX_B], &w.gw_us), &[0, 1]);
    let share = unwrap_one(&us, &b, Some(&fine)).unwrap();
    opens(&b, share, b"B's mail");
}

#[test]
fn approval_uses_run_out_and_stay_used_up_across_a_restart() {
    let mut w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    let approval = w.approval(&[MAILBOX_A], &w.gw_us);
    let doc = w.sign(&approval, &[0, 1]);
    for _ in 0..3 {
        unwrap_one(&w.client(&w.gw_us), &a, Some(&doc)).unwrap();
    }
    assert_eq!(
        unwrap_one(&w.client(&w.gw_us), &a, Some(&doc)),
        Err(Denial::ApprovalUsedUp)
    );
    w.custodian.spawn();
    assert_eq!(
        unwrap_one(&w.client(&w.gw_us), &a, Some(&doc)),
        Err(Denial::ApprovalUsedUp)
    );
}

#[test]
fn a_revoked_approval_is_denied() {
    let w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    let approval = w.approval(&[MAILBOX_A], &w.gw_us);
    let doc = w.sign(&approval, &[0, 1]);
    let us = w.client(&w.gw_us);
    unwrap_one(&us, &a, Some(&doc)).unwrap();
    let revocation = w.approvers[2].revoke(&approval.id().unwrap());
    rt().block_on(us.revoke(&revocation)).unwrap();
    assert_eq!(
        unwrap_one(&us, &a, Some(&doc)),
        Err(Denial::ApprovalRevoked)
    );
    // A revocation signed by someone else is refused.
    let stranger = ApproverKey::generate(&mut SystemRandomness::new()).unwrap();
    let forged = stranger.revoke(&approval.id().unwrap());
    assert!(matches!(
        rt().block_on(us.revoke(&forged)),
        Err(Error::Denied(_))
    ));
}

#[test]
fn untrusted_and_revoked_certificates_are_refused_at_tls() {
    // The ie CRL revokes serial 100: the first leaf the ie CA issued, the ie gateway's.
    let w = world_with(&[], &[100]);
    assert_eq!(w.gw_ie.serial, 100);
    let rogue = TestCa::new("rogue CA").leaf("gateway-ie", &["gateway-ie"]);
    for (name, leaf) in [("revoked", &w.gw_ie), ("untrusted CA", &rogue)] {
        let r = rt().block_on(w.client(leaf).with_retries(1).health());
        assert!(matches!(r, Err(Error::Transport(_))), "{name}: {r:?}");
    }
    // A certificate of the same CA that is not revoked still works.
    rt().block_on(w.client(&w.admin_ie).health()).unwrap();
    assert_eq!(w.cas.len(), 2);
}

#[test]
fn a_relabelled_stanza_does_not_unwrap() {
    let w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    let relabelled = Context::new(MAILBOX_B, &Region::new("ie").unwrap()).unwrap();
    let it = Item {
        object_id: a.header.object_id(),
        context: &relabelled,
        stanza: &a.header.stanzas()[0],
    };
    let r = rt()
        .block_on(w.client(&w.gw_ie).unwrap(&[it], None))
        .unwrap();
    assert_eq!(r.results, vec![Err(Denial::StanzaInvalid)]);
}

#[test]
fn rotation_then_rewrap_releases_nothing_and_the_new_stanza_opens() {
    let w = world();
    let body = b"rotate me";
    let mut o = w.seal(MAILBOX_A, "aoife/1.eml", body);
    let admin = w.client(&w.admin_ie);
    let manifest = rt().block_on(admin.rotate()).unwrap();
    let mut pin = ManifestPin::new(w.custodian.manifest_key);
    let keys = pin
        .accept(&manifest, custodia_custodian::service::unix_now())
        .unwrap();
    assert_eq!(keys[0].id.key_version.0, 2);

    let before = w.custodian.log().len();
    let gw = w.client(&w.gw_ie);
    let rewrapped = rt()
        .block_on(gw.rewrap(&[item(&o)]))
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(rewrapped.recipient.key_version.0, 2);
    let log = w.custodian.log();
    assert!(
        log[before..].iter().all(|d| d.operation == "rewrap"),
        "no unwrap during rewrap"
    );

    o.header.replace_stanza(rewrapped).unwrap();
    let share = unwrap_one(&gw, &o, None).unwrap();
    opens(&o, share, body);
    // Rewrap is in-region only.
    assert_eq!(
        rt().block_on(w.client(&w.gw_us).rewrap(&[item(&o)]))
            .unwrap(),
        vec![Err(Denial::RoleMissing)]
    );
}

#[test]
fn destroy_needs_an_approval_and_then_nothing_opens() {
    let w = world();
    let o = w.seal(MAILBOX_A, "aoife/1.eml", b"shred me");
    let admin = w.client(&w.admin_ie);
    rt().block_on(admin.rotate()).unwrap();
    let data = w.custodian.dir.join("data");
    let old_copy = w.custodian.dir.join("keystore-before.json");
    std::fs::copy(data.join("keystore.json"), &old_copy).unwrap();
    let old_kek = LocalKek::from_file(&w.custodian.dir.join("kek.hex")).unwrap();

    let now = custodia_custodian::service::unix_now();
    let destroy = Approval {
        region: "ie".into(),
        custodian: "dublin".into(),
        caller_key_hash: hex::encode(w.admin_ie.key_hash),
        request_id: "shred-v1".into(),
        purpose: "retire key version 1 permanently".into(),
        not_before: now - 60,
        not_after: now + 3600,
        action: Action::DestroyKey { key_version: 1 },
    };
    let unsigned = w.sign(&destroy, &[0]);
    assert!(matches!(
        rt().block_on(admin.destroy(1, &unsigned)),
        Err(Error::Denied(Denial::ApprovalInsufficientSignatures))
    ));
    let doc = w.sign(&destroy, &[0, 1]);
    rt().block_on(admin.destroy(1, &doc)).unwrap();

    assert_eq!(
        unwrap_one(&w.client(&w.gw_ie), &o, None),
        Err(Denial::KeyDestroyed)
    );
    let new_kek = LocalKek::from_file(&w.custodian.dir.join("kek.hex")).unwrap();
    assert!(Keystore::open(&data.join("keystore.json"), &old_kek, true).is_err());
    assert!(Keystore::open(&old_copy, &new_kek, true).is_err());
    assert!(Keystore::open(&data.join("keystore.json"), &new_kek, true).is_ok());
}

#[test]
fn a_full_disk_makes_the_custodian_refuse_and_keep_serving() {
    let mut w = world();
    let o = w.seal(MAILBOX_A, "aoife/1.eml", b"x");
    w.custodian.file_size_limit_kib = Some(64);
    w.custodian.spawn();
    let client = w.client(&w.gw_ie);
    let runtime = rt();
    let mut refused = None;
    for _ in 0..2000 {
        match runtime.block_on(client.unwrap(&[item(&o)], None)) {
            Ok(r) => assert!(r.results[0].is_ok()),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    match refused {
        Some(Error::Http {
            status: 503, code, ..
        }) => assert_eq!(code, "log_unavailable"),
        other => panic!("expected 503 log_unavailable, got {other:?}"),
    }
    // SIGXFSZ (the default action kills the process) was handled: still running.
    assert!(w.custodian.is_running());
    runtime.block_on(client.health()).unwrap();
    let metrics = runtime.block_on(client.metrics()).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("custodia_decision_log_failures_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // The limit lifted: the log it left opens whole, and releases resume.
    let logged = w.custodian.log().len();
    w.custodian.file_size_limit_kib = None;
    w.custodian.spawn();
    let client = w.client(&w.gw_ie);
    let r = runtime.block_on(client.unwrap(&[item(&o)], None)).unwrap();
    assert!(r.results[0].is_ok());
    assert_eq!(w.custodian.log().len(), logged + 1);
}

#[test]
fn bad_input_gets_clear_4xx_and_the_service_keeps_serving() {
    let w = world_with(&["max_body_bytes = 65536"], &[]);
    let client = w.client(&w.gw_ie);
    let runtime = rt();
    let post = |body: Vec<u8>| {
        runtime
            .block_on(client.raw(hyper::Method::POST, "/v1/unwrap", body))
            .unwrap()
            .0
    };
    assert_eq!(post(vec![b'x'; 100_000]), 413);
    assert_eq!(post(b"{not json".to_vec()), 400);
    assert_eq!(
        post(br#"{"caller_key":"00","items":[],"extra":1}"#.to_vec()),
        400
    );
    let item = r#"{"object_id":"00","context":"00","stanza":"00"}"#;
    let huge = format!(
        r#"{{"caller_key":"{}","items":[{}]}}"#,
        "11".repeat(32),
        vec![item; 1025].join(",")
    );
    assert_eq!(post(huge.into_bytes()), 400);
    let malformed = format!(r#"{{"caller_key":"{}","items":[{item}]}}"#, "11".repeat(32));
    let (status, body) = runtime
        .block_on(client.raw(hyper::Method::POST, "/v1/unwrap", malformed.into_bytes()))
        .unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("malformed"));
    let (status, _) = runtime
        .block_on(client.raw(hyper::Method::GET, "/v1/nothing", Vec::new()))
        .unwrap();
    assert_eq!(status, 404);
    runtime.block_on(client.health()).unwrap();
    let metrics = runtime.block_on(client.metrics()).unwrap();
    assert!(metrics.contains("custodia_requests_total{route=\"unwrap\",status=\"413\"} 1"));
}

#[test]
fn rate_limits_hold_under_a_bounded_burst() {
    let w = world_with(
        &["per_mailbox_per_minute = 60", "per_mailbox_burst = 5"],
        &[],
    );
    let o = w.seal(MAILBOX_A, "aoife/1.eml", b"x");
    let items: Vec<Item<'_>> = (0..12).map(|_| item(&o)).collect();
    let r = rt()
        .block_on(w.client(&w.gw_ie).unwrap(&items, None))
        .unwrap()
        .results;
    let allowed = r.iter().filter(|x| x.is_ok()).count();
    assert_eq!(allowed, 5);
    assert!(r[5..].iter().all(|x| *x == Err(Denial::RateLimited)));
    // Another mailbox has its own bucket.
    let b = w.seal(MAILBOX_B, "brian/1.eml", b"y");
    assert!(unwrap_one(&w.client(&w.gw_ie), &b, None).is_ok());
}

#[test]
fn manifest_is_signed_by_the_pinned_key_and_lists_the_active_key() {
    let w = world();
    let manifest = rt().block_on(w.client(&w.gw_us).manifest()).unwrap();
    let mut wrong = ManifestPin::new([7; 32]);
    assert!(
        wrong
            .accept(&manifest, custodia_custodian::service::unix_now())
            .is_err()
    );
    let keys = ManifestPin::new(w.custodian.manifest_key)
        .accept(&manifest, custodia_custodian::service::unix_now())
        .unwrap();
    assert_eq!(keys[0].id.region.as_str(), "ie");
    assert_eq!(keys[0].id.custodian.as_str(), "dublin");
}

#[test]
fn development_keys_are_refused_without_dev() {
    let mut w = world();
    w.custodian.kill9();
    let out = std::process::Command::new(custodia_tests::custodia_bin())
        .args(["custodian", "serve", "--config"])
        .arg(&w.custodian.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("insecure"), "{stderr}");
}
