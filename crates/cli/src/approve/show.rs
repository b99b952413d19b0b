//! `custodia approve show`: an approval's fields, each signature checked on its own, the M-of-N
//! count against the region's approver set, and the custodian's verdict now, all through
//! `ApproverSet::verify` (nothing of the format is re-implemented here).

use std::path::PathBuf;

use clap::Args;
use custodia_custodian::api::Denial;
use custodia_custodian::approval::{
    Action, Approval, ApprovalSignature, Approver, ApproverSet, Expected, SignedApproval,
};
use custodia_custodian::config::Config;
use custodia_envelope::{CustodianName, Region};

use crate::failure::{CliResult, Failure};
use crate::files::hex32;
use crate::keys::index::Index;
use crate::timefmt::{now, utc};

/// Flags of `approve show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The approval document.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// A keys directory: the approvers of the approval's region from its index.
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// A custodian config: its `[approvers]`.
    #[arg(long, value_name = "TOML")]
    config: Option<PathBuf>,
    /// An approver's Ed25519 public key (64 hex), `NAME=HEX` or `HEX`; repeat for each.
    #[arg(long = "approver", value_name = "[NAME=]HEX", requires = "threshold")]
    approvers: Vec<String>,
    /// M, with --approver.
    #[arg(long, value_name = "M")]
    threshold: Option<usize>,
    /// Exit with status 3 unless the approval would be accepted now.
    #[arg(long)]
    check: bool,
}

impl ShowArgs {
    /// `approve show FILE --keys KEYS [--check]`.
    pub(crate) fn with_keys(file: PathBuf, keys: PathBuf, check: bool) -> Self {
        Self {
            file,
            keys: Some(keys),
            config: None,
            approvers: Vec::new(),
            threshold: None,
            check,
        }
    }
}

/// The approver set to count against, and where it came from.
fn approver_set(args: &ShowArgs, approval: &Approval) -> CliResult<Option<(ApproverSet, String)>> {
    let (approvers, threshold, source) = if !args.approvers.is_empty() {
        let mut list = Vec::new();
        for (i, a) in args.approvers.iter().enumerate() {
            let (name, key) = a.split_once('=').map_or_else(
                || (format!("approver-{}", i + 1), a.as_str()),
                |(n, k)| (n.to_owned(), k),
            );
            list.push(Approver {
                name,
                public_key: hex32(key, &format!("--approver {a}"))?,
            });
        }
        (list, args.threshold.unwrap_or(0), "--approver".to_owned())
    } else if let Some(path) = &args.config {
        let config = Config::load(path)?;
        if config.region.as_str() != approval.region {
            return Err(Failure::failed(format!(
                "{}: region {} but the approval is for region {}",
                path.display(),
                config.region,
                crate::out::escape(&approval.region)
            )));
        }
        let list = config
            .approvers
            .iter()
            .map(|a| Approver {
                name: a.name.clone(),
                public_key: a.public_key,
            })
            .collect();
        (list, config.approval_threshold, path.display().to_string())
    } else if let Some(keys) = &args.keys {
        let index = Index::load(keys)?;
        let region = index.region(&approval.region)?;
        let mut list = Vec::new();
        for a in &region.approvers {
            list.push(Approver {
                name: a.name.clone(),
                public_key: hex32(&a.public_key, &format!("approver {}", a.name))?,
            });
        }
        (
            list,
            region.approver_threshold,
            format!("{} (region {})", keys.display(), region.name),
        )
    } else {
        return Ok(None);
    };
    let set = ApproverSet::new(approvers, threshold)
        .map_err(|e| Failure::failed(format!("{source}: {e}")))?;
    Ok(Some((set, source)))
}

/// What this document itself names, as a custodian would expect it (so that only the
/// signatures, the count and the time decide).
struct Own {
    region: Region,
    custodian: CustodianName,
    caller: [u8; 32],
}

impl Own {
    fn of(approval: &Approval) -> CliResult<Self> {
        let bad = |e: &dyn core::fmt::Display| Failure::failed(format!("approval: {e}"));
        Ok(Self {
            region: Region::new(&approval.region).map_err(|e| bad(&e))?,
            custodian: CustodianName::new(&approval.custodian).map_err(|e| bad(&e))?,
            caller: hex32(&approval.caller_key_hash, "approval: caller_key_hash")?,
        })
    }

    fn expected(&self) -> Expected<'_> {
        Expected {
            region: &self.region,
            custodian: &self.custodian,
            caller_key_hash: &self.caller,
        }
    }
}

/// Whether `sig` alone is a valid signature over `approval` (checked by the library with a
/// one-approver set of its own key, at a time inside the validity window).
fn signature_valid(approval: &Approval, sig: &ApprovalSignature, own: &Own) -> bool {
    let Ok(public_key) = hex32(&sig.public_key, "public_key") else {
        return false;
    };
    let Ok(set) = ApproverSet::new(
        vec![Approver {
            name: sig.approver.clone(),
            public_key,
        }],
        1,
    ) else {
        return false;
    };
    let doc = SignedApproval {
        approval: approval.clone(),
        signatures: vec![sig.clone()],
    };
    set.verify(&doc, &own.expected(), approval.not_before)
        .is_ok()
}

/// For a mailbox whose domain is an internationalised name (A-labels, `xn--`), how it reads
/// in Unicode, escaped, so that a reviewer sees which name the A-label spells.
fn idn_note(mailbox: &str) -> String {
    let Some((_, domain)) = mailbox.rsplit_once('@') else {
        return String::new();
    };
    if !domain.split('.').any(|l| l.starts_with("xn--")) {
        return String::new();
    }
    let (unicode, result) = idna::domain_to_unicode(domain);
    if result.is_err() {
        return "  (an invalid internationalised domain)".to_owned();
    }
    format!(
        "  (internationalised domain: reads {}; check it is the one meant)",
        crate::out::escape(&unicode)
    )
}

/// Prints every signed field of the approval, escaped (the format refuses control and
/// invisible characters; escaping keeps a hand-made document from repainting the screen even
/// so), the mailboxes one per line with their count.
pub(crate) fn print_fields(doc: &SignedApproval, now: u64) -> CliResult {
    let a = &doc.approval;
    let e = |s: &str| crate::out::escape(s);
    say!("approval {}", a.id()?);
    say!("  region/custodian  {}/{}", e(&a.region), e(&a.custodian));
    say!("  caller key hash   {}", e(&a.caller_key_hash));
    say!("  request id        {}", e(&a.request_id));
    say!("  purpose           {}", e(&a.purpose));
    match &a.action {
        Action::LawfulAccess {
            mailboxes,
            max_uses_per_mailbox,
        } => {
            say!("  action            lawful access");
            say!("  mailboxes         {} (one per line):", mailboxes.len());
            for m in mailboxes {
                say!("    {}{}", e(m), idn_note(m));
            }
            say!("  uses per mailbox  {max_uses_per_mailbox}");
        }
        Action::DestroyKey { key_version } => {
            say!("  action            destroy key version {key_version}");
        }
    }
    let window = if now < a.not_before {
        "not yet valid"
    } else if now >= a.not_after {
        "expired"
    } else {
        "valid now"
    };
    say!(
        "  valid             {} .. {} ({window})",
        utc(a.not_before),
        utc(a.not_after)
    );
    Ok(())
}

/// Runs `approve show`.
pub(crate) fn show(args: &ShowArgs) -> CliResult {
    let doc = super::load(&args.file)?;
    let now = now();
    print_fields(&doc, now)?;
    let own = Own::of(&doc.approval)?;
    let set = approver_set(args, &doc.approval)?;
    say!("signatures ({})", doc.signatures.len());
    let mut counted: Vec<[u8; 32]> = Vec::new();
    for sig in &doc.signatures {
        let valid = signature_valid(&doc.approval, sig, &own);
        let key = hex32(&sig.public_key, "public_key").ok();
        let configured = set.as_ref().and_then(|(s, _)| {
            s.approvers()
                .iter()
                .find(|a| Some(a.public_key) == key)
                .map(|a| a.name.clone())
        });
        let status = match (valid, &configured, &set) {
            (false, _, _) => {
                "INVALID signature (document changed after signing, or forged)".to_owned()
            }
            (true, Some(name), _) => {
                if let Some(k) = key.filter(|k| !counted.contains(k)) {
                    counted.push(k);
                }
                format!("valid, configured approver {name}")
            }
            (true, None, Some(_)) => {
                "valid, but not a configured approver (not counted)".to_owned()
            }
            (true, None, None) => "valid".to_owned(),
        };
        say!(
            "  {:<20} {}  {status}",
            crate::out::escape(&sig.approver),
            crate::out::escape(&sig.public_key)
        );
    }
    let Some((set, source)) = set else {
        say!("approvers: unknown (pass --keys, --config or --approver to count M of N)");
        return if args.check {
            Err(Failure::verification(
                "--check needs the approver set (--keys, --config or --approver)",
            ))
        } else {
            Ok(())
        };
    };
    let (m, n) = (set.threshold(), set.approvers().len());
    say!(
        "threshold {m}-of-{n} (approvers from {source}): {} signed: {}",
        counted.len(),
        if counted.len() >= m {
            "reached"
        } else {
            "NOT reached"
        }
    );
    let verdict: Result<(), Denial> = set.verify(&doc, &own.expected(), now).map(drop);
    match verdict {
        Ok(()) => {
            say!(
                "verdict now: accepted by {}/{}",
                doc.approval.region,
                doc.approval.custodian
            );
            Ok(())
        }
        Err(denial) => {
            say!("verdict now: refused: {denial}");
            if args.check {
                Err(Failure::verification(format!(
                    "{}: the approval would be refused now: {denial}",
                    args.file.display()
                )))
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::idn_note;

    #[test]
    fn an_internationalised_domain_is_shown_as_it_reads() {
        assert_eq!(idn_note("aoife@example.ie"), "");
        let a_label = idna::domain_to_ascii("éire.ie").unwrap();
        let note = idn_note(&format!("aoife@{a_label}"));
        assert!(note.contains("reads éire.ie"), "{note}");
        // A label that spells an invisible or reordering character is shown escaped.
        let bidi = idna::domain_to_ascii("ab\u{202e}c.ie");
        if let Ok(a) = bidi {
            assert!(!idn_note(&format!("x@{a}")).contains('\u{202e}'));
        }
    }
}
