//! What `audit verify` says about the policy entries of a verified log: every policy the
//! custodian served under, when it took effect (start or reload), and — with the restricted
//! details — who approves and which CAs and callers it names.

use custodia_custodian::audit::entry::{DetailEntry, PublicEntry};
use custodia_custodian::audit::policy::PolicyDoc;

use crate::failure::{CliResult, Failure};
use crate::out::escape;
use crate::timefmt::utc;

/// Prints the log's policy entries: each change (a hash unlike the one before) with its
/// policy summarised when `details` has it, and how many starts or reloads kept the policy.
///
/// # Errors
/// A verification failure if a detail's policy does not hash to its public entry's
/// `policy_hash` (the hash is unkeyed: anyone with the details can check it).
pub(crate) fn print(public: &[PublicEntry], details: Option<&[DetailEntry]>) -> CliResult {
    let mut previous: Option<&str> = None;
    let (mut entries, mut unchanged) = (0u64, 0u64);
    for (i, e) in public.iter().enumerate() {
        let Some(hash) = e.policy_hash.as_deref().filter(|_| e.operation == "policy") else {
            continue;
        };
        entries += 1;
        let doc = details
            .and_then(|d| d.get(i))
            .and_then(|d| d.policy.as_ref());
        if let Some(doc) = doc
            && doc.hash() != hash
        {
            return Err(Failure::verification(format!(
                "entry {}: the policy in the details does not match the public policy hash",
                e.seq
            )));
        }
        if previous == Some(hash) {
            unchanged += 1;
            continue;
        }
        let what = if previous.is_none() {
            "first policy"
        } else {
            "policy changed"
        };
        say!(
            "{what} at entry {} ({}, {}): {}",
            e.seq,
            utc(e.time),
            escape(&e.reason),
            escape(hash)
        );
        if let Some(doc) = doc {
            summarise(doc);
        }
        previous = Some(hash);
    }
    if entries == 0 {
        say!("note: the log has no policy entry (written before policy entries existed)");
    } else {
        say!(
            "policy entries: {entries}; {} changed the policy, {unchanged} kept it",
            entries - unchanged
        );
    }
    Ok(())
}

fn summarise(doc: &PolicyDoc) {
    let names: Vec<String> = doc.approvers.iter().map(|a| escape(&a.name)).collect();
    if doc.approvers.is_empty() {
        say!("  approvals: none configured (no lawful access)");
    } else {
        say!(
            "  approvals: {} of {} ({})",
            doc.approval_threshold,
            doc.approvers.len(),
            names.join(", ")
        );
    }
    for ca in &doc.client_cas {
        say!(
            "  client CA of region {}: {} root(s) {}, {} CRL(s)",
            escape(&ca.region),
            ca.roots.len(),
            ca.roots
                .iter()
                .map(|r| escape(&r.chars().take(16).collect::<String>()))
                .collect::<Vec<_>>()
                .join(" "),
            ca.crls.len()
        );
    }
    for c in &doc.callers {
        say!(
            "  caller {}/{} ({}): {}",
            escape(&c.region),
            escape(&c.identity),
            escape(&c.name),
            escape(&c.roles.join(", "))
        );
    }
}
