#![no_main]
//! Everything a custodian parses from outside never panics: audit entries (which must
//! re-encode to the same bytes, one leaf per entry, and count into a report), restricted
//! details (salts, policies) checked against public entries, signed checkpoints, approval
//! documents (signed bytes and M-of-N verification), manifests, and the TOML config.
use std::path::Path;
use std::sync::OnceLock;

use custodia_custodian::approval::{Approver, ApproverSet, Expected, SignedApproval};
use custodia_custodian::audit::checkpoint::verify_checkpoint;
use custodia_custodian::audit::entry::{DetailEntry, PublicEntry};
use custodia_custodian::audit::report::{Period, Tally};
use custodia_custodian::audit::verify::verify_details;
use custodia_custodian::decision_log::Outcome;
use custodia_custodian::config::Config;
use custodia_custodian::manifest::SignedManifest;
use custodia_envelope::{CustodianName, Region};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [7; 32];

fn approvers() -> &'static ApproverSet {
    static SET: OnceLock<ApproverSet> = OnceLock::new();
    SET.get_or_init(|| {
        let keys = (1..=3u8).map(|i| Approver { name: format!("a{i}"), public_key: [i; 32] });
        ApproverSet::new(keys.collect(), 2).expect("valid approver set")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = PublicEntry::from_record(data) {
        assert_eq!(entry.record(), data, "audit entry did not round trip");
        let mut tally = Tally::new(Period::Month { year: 2026, month: 12 });
        tally.add(&entry);
        tally.add(&entry);
        let _ = tally.report("checkpoint\n");
    }
    if let Ok(detail) = serde_json::from_slice::<DetailEntry>(data) {
        let hex64 = || Some("ab".repeat(32));
        let full = PublicEntry {
            seq: detail.seq,
            batch: detail.seq,
            time: 0,
            operation: "unwrap".into(),
            caller_region: "us".into(),
            caller_name: "gw".into(),
            outcome: Outcome::Allow,
            reason: "approval".into(),
            approval_id: Some("cd".repeat(16)),
            key_version: Some(1),
            mailbox_commitment: hex64(),
            use_tag: hex64(),
            policy_hash: hex64(),
            flags: vec![],
        };
        let empty = PublicEntry {
            mailbox_commitment: None,
            use_tag: None,
            policy_hash: None,
            approval_id: None,
            ..full.clone()
        };
        for public in [full, empty] {
            let _ = verify_details(&[public], std::slice::from_ref(&detail), &KEY);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify_checkpoint(text, "custodia/ie/dublin", &KEY);
        let _ = Config::parse(text, Path::new("/"));
    }
    if let Ok(doc) = serde_json::from_slice::<SignedApproval>(data) {
        let _ = doc.approval.signed_bytes();
        let (region, custodian) = (Region::new("ie").unwrap(), CustodianName::new("dublin").unwrap());
        let expected = Expected { region: &region, custodian: &custodian, caller_key_hash: &KEY };
        let _ = approvers().verify(&doc, &expected, 1_800_000_000);
    }
    if let Ok(manifest) = serde_json::from_slice::<SignedManifest>(data) {
        let _ = manifest.verify(&KEY, 1_800_000_000);
    }
});
