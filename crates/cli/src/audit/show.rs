//! `custodia audit show`: a custodian's audit entries as a table, from the custodian or an
//! audit directory, optionally joined with the restricted details (auditor role or file
//! access).

use std::path::PathBuf;

use clap::Args;
use custodia_custodian::audit::entry::{DetailEntry, PublicEntry};
use custodia_custodian::decision_log::Outcome;

use super::source::{
    audit_dir, fetch_details, fetch_records, note_size, read_details, read_records,
};
use crate::failure::{CliResult, Failure};
use crate::target::{Target, runtime};
use crate::timefmt::utc;

/// Flags of `audit show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    target: Target,
    /// Read an audit directory on disk instead of asking the custodian.
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Show only the last N entries.
    #[arg(long, value_name = "N")]
    last: Option<u64>,
    /// Join the restricted details (mailbox, object id): auditor role, or details.jsonl.
    #[arg(long)]
    details: bool,
}

fn row(e: &PublicEntry, d: Option<&DetailEntry>) -> Vec<String> {
    let short = |s: &str| s.get(..12).unwrap_or(s).to_owned();
    let mailbox = match (d, &e.policy_hash, &e.use_tag) {
        (_, Some(hash), _) => format!("policy {}", short(hash)),
        (Some(d), _, _) => d.mailbox.clone().unwrap_or_default(),
        (None, None, Some(tag)) => format!("use {}", short(tag)),
        (None, None, None) => e
            .mailbox_commitment
            .as_deref()
            .map(short)
            .unwrap_or_default(),
    };
    vec![
        e.seq.to_string(),
        e.batch.to_string(),
        utc(e.time),
        e.operation.clone(),
        format!("{}/{}", e.caller_region, e.caller_name),
        match e.outcome {
            Outcome::Allow => "allow".into(),
            Outcome::Deny => "deny".into(),
        },
        e.reason.clone(),
        e.key_version.map(|v| v.to_string()).unwrap_or_default(),
        e.approval_id.as_deref().map(short).unwrap_or_default(),
        mailbox,
        e.flags.join(","),
    ]
}

/// Runs `audit show`.
pub(crate) fn show(args: &ShowArgs) -> CliResult {
    let (records, details, first) = match &args.log_dir {
        Some(dir) => {
            let dir = audit_dir(dir)?;
            let records = read_records(&dir)?;
            let first = args
                .last
                .map_or(0, |l| (records.len() as u64).saturating_sub(l));
            let details = if args.details {
                read_details(&dir)?
            } else {
                None
            };
            if args.details && details.is_none() {
                return Err(Failure::failed(format!(
                    "{}: no details.jsonl",
                    dir.display()
                )));
            }
            let skip = usize::try_from(first).unwrap_or(usize::MAX);
            let details = details.map(|d| d.into_iter().skip(skip).collect::<Vec<_>>());
            (
                records.into_iter().skip(skip).collect::<Vec<_>>(),
                details,
                first,
            )
        }
        None => {
            let target = args.target.resolve()?;
            let server = target.describe();
            let client = target.client()?;
            runtime()?.block_on(async {
                let note = client
                    .checkpoint()
                    .await
                    .map_err(|e| Failure::from(e).context(&server))?;
                let size = note_size(&note).map_err(|e| e.context(&server))?;
                let first = args.last.map_or(0, |l| size.saturating_sub(l));
                let records = fetch_records(&client, first, size, &server).await?;
                let details = if args.details {
                    let (d, _key) = fetch_details(&client, first, size, &server)
                        .await?
                        .ok_or_else(|| {
                            Failure::new(
                                crate::failure::Status::Denied,
                                format!(
                                    "{server}: --details needs a certificate with the auditor role"
                                ),
                            )
                        })?;
                    Some(d)
                } else {
                    None
                };
                Ok::<_, Failure>((records, details, first))
            })?
        }
    };
    let mut rows = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let e = PublicEntry::from_record(r)
            .map_err(|e| Failure::failed(format!("entry {}: {e}", first + i as u64)))?;
        rows.push(row(&e, details.as_ref().and_then(|d| d.get(i))));
    }
    let mailbox = if details.is_some() {
        "mailbox"
    } else {
        "mailbox (commitment)"
    };
    crate::table::print(
        &[
            "seq",
            "batch",
            "time",
            "operation",
            "caller",
            "outcome",
            "reason",
            "key",
            "approval",
            mailbox,
            "flags",
        ],
        &rows,
    );
    say!("{} entries", rows.len());
    Ok(())
}
