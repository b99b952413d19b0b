//! Issue 16 §2 and §3 against a real custodian process: the public log is no mailbox oracle
//! (salted commitments, use tags on releases only, out-of-region denials rate-limited per
//! caller), and every policy the custodian serves under is on the log before it takes effect,
//! reloaded on SIGHUP (CRLs and approvers included), and listed by the transparency report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::time::Duration;

use custodia_custodian::Error;
use custodia_custodian::api::Denial;
use custodia_custodian::audit::entry::PublicEntry;
use custodia_custodian::audit::verify::verify_details;
use custodia_custodian::audit_store::AuditStore;
use custodia_custodian::decision_log::Outcome;
use custodia_tests::wait_until;
use custodia_tests::world::{MAILBOX_A, MAILBOX_B, item, rt, unwrap_one, world, world_with};

fn current_period() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{}-{:02}", now.year(), u8::from(now.month()))
}

fn public_entries(w: &custodia_tests::world::World) -> Vec<PublicEntry> {
    AuditStore::read_joined(&w.custodian.audit_dir())
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn the_public_log_links_no_entry_to_a_mailbox_and_probes_are_rate_limited() {
    let w = world_with(
        &[
            "out_of_region_denial_burst = 6",
            "out_of_region_denials_per_minute = 1",
        ],
        &[],
    );
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    let ie = w.client(&w.gw_ie);
    // Two in-region reads of one mailbox, in two batches.
    unwrap_one(&ie, &a, None).unwrap();
    unwrap_one(&ie, &a, None).unwrap();
    // Two lawful-access uses of one approval on that mailbox.
    let approval = w.approval(&[MAILBOX_A], &w.gw_us);
    let doc = w.sign(&approval, &[0, 1]);
    let us = w.client(&w.gw_us);
    unwrap_one(&us, &a, Some(&doc)).unwrap();
    unwrap_one(&us, &a, Some(&doc)).unwrap();

    // The oracle attack: the US side asks, without an approval, for objects it sealed under
    // candidate mailbox ids (the real one among them) and reads the denials' commitments.
    let candidates = [
        MAILBOX_A,
        MAILBOX_B,
        "c1@example.ie",
        "c2@example.ie",
        MAILBOX_A,
        "c3@example.ie",
        "c4@example.ie",
        MAILBOX_A,
        "c5@example.ie",
        "c6@example.ie",
    ];
    let probes: Vec<_> = candidates
        .iter()
        .enumerate()
        .map(|(i, m)| w.seal(m, &format!("probe/{i}"), b"x"))
        .collect();
    let items: Vec<_> = probes.iter().map(item).collect();
    // The burst: 6 out-of-region denials, each logged with its own commitment.
    let r = rt().block_on(us.unwrap(&items[..6], None)).unwrap();
    let denials: Vec<Denial> = r
        .results
        .iter()
        .map(|x| x.as_ref().err().copied().expect("denied"))
        .collect();
    assert_eq!(denials, [Denial::ApprovalRequired; 6]);
    // Then the caller is throttled: a request of more items than its denial budget holds is
    // refused whole, and only the region's first such refusal of the minute is logged (no
    // commitment). Even a valid approval gets nothing now. Another caller is not affected.
    let before_throttle = public_entries(&w).len();
    let refused = rt().block_on(us.unwrap(&items[6..], None));
    assert!(
        matches!(refused, Err(Error::Denied(Denial::RateLimited))),
        "{refused:?}"
    );
    let refused = rt().block_on(us.unwrap(&[item(&a)], Some(&doc)));
    assert!(
        matches!(refused, Err(Error::Denied(Denial::RateLimited))),
        "{refused:?}"
    );
    let noted = public_entries(&w);
    assert_eq!(noted.len() - before_throttle, 1);
    assert_eq!(
        noted
            .last()
            .map(|e| (e.reason.as_str(), e.mailbox_commitment.is_none())),
        Some(("rate_limited", true))
    );
    let other = w.client(&w.us_claims_ie);
    assert_eq!(unwrap_one(&other, &a, None), Err(Denial::ApprovalRequired));
    // Fresh certificates from the US CA do not escape: the region's bucket (4 × 6) runs out
    // too, then a new certificate's request is refused whole.
    let before = public_entries(&w).len();
    for i in 0..4 {
        let fresh = w.cas["us"].leaf(&format!("prober-{i}"), &[]);
        let client = w.client(&fresh);
        let _ = rt().block_on(client.unwrap(&items[..6], None));
    }
    let last = w.cas["us"].leaf("prober-last", &[]);
    let refused = rt().block_on(w.client(&last).unwrap(&items, None));
    assert!(
        matches!(refused, Err(Error::Denied(Denial::RateLimited))),
        "{refused:?}"
    );
    // The region had 24 - 7 = 17 denials left: the first two probers' 12 items are denied;
    // the third's 6 would overdraw the 5 left, so it, the fourth and the last are refused
    // whole, unlogged: the region's refusal of this minute is on the log already.
    let after = public_entries(&w);
    assert_eq!(after.len() - before, 6 + 6);
    assert!(
        after[before..]
            .iter()
            .all(|e| e.outcome == Outcome::Deny && e.reason != "rate_limited")
    );

    let log = public_entries(&w);
    let commitments: Vec<&str> = log
        .iter()
        .filter_map(|e| e.mailbox_commitment.as_deref())
        .collect();
    // Every commitment is different: same mailbox or not, allowed or denied.
    let distinct: BTreeSet<&str> = commitments.iter().copied().collect();
    assert_eq!(distinct.len(), commitments.len(), "{commitments:?}");
    // 2 in-region reads, 2 uses, 6 denied probes, 1 other caller, and the two probers'
    // items denied before their region ran out (a throttled refusal names no mailbox).
    assert_eq!(commitments.len(), 11 + 6 + 6);
    // Use tags: on the two releases under the approval only, and equal to each other.
    let tagged: Vec<&PublicEntry> = log.iter().filter(|e| e.use_tag.is_some()).collect();
    assert_eq!(tagged.len(), 2);
    assert!(tagged.iter().all(|e| e.outcome == Outcome::Allow
        && e.approval_id.as_deref() == Some(approval.id().unwrap().to_string().as_str())));
    assert_eq!(tagged[0].use_tag, tagged[1].use_tag);
    assert!(
        log.iter()
            .filter(|e| e.outcome == Outcome::Deny)
            .all(|e| e.use_tag.is_none())
    );
    // Nothing public names a candidate: no tag or commitment repeats across entries.
    let tag = tagged[0].use_tag.as_deref().unwrap();
    assert!(!commitments.contains(&tag));

    // The auditor, with the key and the salts, ties every entry to its detail.
    let auditor = w.client(&w.auditor_ie);
    let n = log.len() as u64;
    let details = rt().block_on(auditor.details(0, n)).unwrap();
    let key: [u8; 32] = hex::decode(&details.commitment_key)
        .unwrap()
        .try_into()
        .unwrap();
    verify_details(&log, &details.details, &key).unwrap();
    assert!(
        details
            .details
            .iter()
            .filter(|d| d.mailbox.is_some())
            .all(|d| d.salt.as_deref().is_some_and(|s| s.len() == 32))
    );
    // Uses still count after a restart (from the use tags): 2 of 3 used, one left. (The
    // restart also forgets the throttle, which lives in memory.)
    let mut w = w;
    w.custodian.spawn();
    let us = w.client(&w.gw_us);
    unwrap_one(&us, &a, Some(&doc)).unwrap();
    assert_eq!(unwrap_one(&us, &a, Some(&doc)), Err(Denial::ApprovalUsedUp));
}

#[test]
fn every_policy_is_logged_before_it_takes_effect_and_sighup_reloads_it() {
    let mut w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    // Started: one policy entry, first in the log, naming what the config says.
    let policies = w.custodian.policies();
    assert_eq!(policies.len(), 1);
    let (seq, reason, start_hash, doc) = &policies[0];
    assert_eq!((*seq, reason.as_str()), (0, "start"));
    assert_eq!(doc.hash(), *start_hash);
    assert_eq!(doc.approval_threshold, 2);
    assert_eq!(doc.approvers.len(), 3);
    assert_eq!(doc.client_cas.len(), 2);
    assert!(
        doc.callers
            .iter()
            .any(|c| c.identity == "gateway-us" && c.region == "us" && c.roles == ["unwrap"])
    );

    // A connection opened under the first policy (kept open: one runtime drives it).
    let runtime = rt();
    let ie = w.client(&w.gw_ie);
    let first = runtime.block_on(ie.unwrap(&[item(&a)], None)).unwrap();
    assert!(first.results[0].is_ok());

    // The key holder revokes the Irish gateway's certificate and raises M to 3, then
    // reloads.
    let dir = w.custodian.dir.clone();
    std::fs::write(dir.join("crl-ie.pem"), w.cas["ie"].crl(&[w.gw_ie.serial])).unwrap();
    let config = std::fs::read_to_string(&w.custodian.config).unwrap();
    let raised = config.replace("threshold = 2", "threshold = 3");
    assert_ne!(config, raised);
    std::fs::write(&w.custodian.config, &raised).unwrap();
    w.custodian.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || w.custodian.policies().len()
            == 2),
        "no policy entry after SIGHUP"
    );
    // The entry is written before the policy takes effect: give the swap a moment.
    std::thread::sleep(Duration::from_millis(300));
    let policies = w.custodian.policies();
    let (_, reason, reload_hash, doc) = &policies[1];
    assert_eq!(reason, "reload");
    assert_ne!(reload_hash, start_hash);
    assert_eq!(doc.approval_threshold, 3);
    assert_eq!(doc.client_cas[0].crls.len(), 1);
    assert_ne!(doc.client_cas[0].crls, policies[0].3.client_cas[0].crls);

    // The revoked certificate: refused on the connection already open, and on a new one.
    let again = runtime.block_on(ie.unwrap(&[item(&a)], None));
    assert!(
        matches!(
            &again,
            Err(Error::Http { status: 403, code, .. }) if code == "certificate_refused"
        ),
        "{again:?}"
    );
    let fresh = w.client(&w.gw_ie).with_retries(1);
    assert!(matches!(
        rt().block_on(fresh.health()),
        Err(Error::Transport(_))
    ));
    // Two approver signatures no longer make an approval.
    let approval = w.approval(&[MAILBOX_A], &w.gw_us);
    let us = w.client(&w.gw_us);
    assert_eq!(
        unwrap_one(&us, &a, Some(&w.sign(&approval, &[0, 1]))),
        Err(Denial::ApprovalInsufficientSignatures)
    );
    unwrap_one(&us, &a, Some(&w.sign(&approval, &[0, 1, 2]))).unwrap();

    // A config that does not load changes nothing, logs nothing, and the service goes on.
    std::fs::write(&w.custodian.config, "region = \"ie\"\nthis is not toml").unwrap();
    w.custodian.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.custodian.is_running());
    assert_eq!(w.custodian.policies().len(), 2);
    assert_eq!(
        unwrap_one(&us, &a, Some(&w.sign(&approval, &[0, 1]))),
        Err(Denial::ApprovalInsufficientSignatures)
    );

    // Restarted on the reloaded config: a start entry, the same policy, not a change.
    std::fs::write(&w.custodian.config, &raised).unwrap();
    w.custodian.spawn();
    let policies = w.custodian.policies();
    assert_eq!(policies.len(), 3);
    assert_eq!(
        (policies[2].1.as_str(), &policies[2].2),
        ("start", reload_hash)
    );

    // The transparency report lists the two changes (the first policy, the reload).
    let auditor = w.client(&w.auditor_ie);
    let report = rt()
        .block_on(auditor.transparency(&current_period()))
        .unwrap();
    let changes: Vec<(u64, &str, &str)> = report
        .policy_changes
        .iter()
        .map(|c| (c.seq, c.reason.as_str(), c.policy_hash.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            (0, "start", start_hash.as_str()),
            (policies[1].0, "reload", reload_hash.as_str())
        ]
    );
}

#[test]
fn a_request_decided_under_a_policy_reloaded_meanwhile_is_refused_and_not_logged() {
    use custodia_custodian::api::{StanzaItem, UnwrapRequest};
    use custodia_custodian::config::Config;
    use custodia_custodian::service::{Custodian, unix_now};
    use custodia_custodian::tls::CallerIdentity;
    use custodia_envelope::Region;

    let mut w = world();
    let a = w.seal(MAILBOX_A, "aoife/1.eml", b"A's mail");
    // The same custodian, in this process (the server's data directory lock is released).
    w.custodian.kill9();
    let config = Config::load(&w.custodian.config).unwrap();
    let c = Custodian::open(config.clone(), true).unwrap();
    c.log_start().unwrap();
    let caller = c.caller(CallerIdentity {
        region: Region::new("ie").unwrap(),
        name: "gateway-ie".into(),
        key_hash: w.gw_ie.key_hash,
    });
    let request = UnwrapRequest {
        caller_key: hex::encode([9u8; 32]),
        approval: None,
        items: vec![StanzaItem {
            object_id: hex::encode(a.header.object_id().0),
            context: hex::encode(a.header.context().to_bytes()),
            stanza: hex::encode(a.header.stanzas()[0].to_bytes()),
        }],
    };
    let logged = c.audit().stats().unwrap().0;
    assert!(c.unwrap(&caller, &request, unix_now()).is_ok());
    assert_eq!(c.audit().stats().unwrap().0, logged + 1);
    // A reload lands between this caller's resolution and its decision being logged.
    c.reload(&config).unwrap();
    let size = c.audit().stats().unwrap().0;
    assert!(matches!(
        c.unwrap(&caller, &request, unix_now()),
        Err(Error::PolicyChanged)
    ));
    assert_eq!(c.audit().stats().unwrap().0, size, "nothing logged");
    // Resolved again under the policy in force, it goes through.
    let caller = c.caller(caller.identity.clone());
    assert!(c.unwrap(&caller, &request, unix_now()).is_ok());
}
