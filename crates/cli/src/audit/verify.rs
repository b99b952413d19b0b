//! `custodia audit verify`: checks a custodian's log with `custodia_custodian::audit::verify`,
//! either fetched over mTLS (latest checkpoint, every entry, consistency with checkpoints kept
//! from earlier runs, and the restricted details for auditors) or read from an audit
//! directory (each given checkpoint's signature and prefix, and their mutual consistency).

use std::path::{Path, PathBuf};

use clap::Args;
use custodia_custodian::audit::checkpoint::verify_checkpoint;
use custodia_custodian::audit::entry::PublicEntry;
use custodia_custodian::audit::tree::{Hash, MerkleTree};
use custodia_custodian::audit::verify::{
    verify_checkpoints_consistent, verify_details, verify_log,
};

use super::source::{audit_dir, fetch_details, fetch_records, read_details, read_records};
use crate::failure::{CliResult, Failure};
use crate::files::{read_text, replace};
use crate::target::{Resolved, Target, runtime};

/// Flags of `audit verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    target: Target,
    /// Verify an audit directory on disk (`entries.jsonl`; a data dir or custodian dir works
    /// too) instead of asking the custodian, against at least one --checkpoint.
    #[arg(
        long,
        value_name = "DIR",
        requires = "checkpoints",
        conflicts_with = "save_checkpoint"
    )]
    log_dir: Option<PathBuf>,
    /// A checkpoint kept earlier (e.g. by --save-checkpoint or from a receipt): it must be
    /// signed by the custodian, and the log must extend it. Repeat for several.
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// Write the custodian's latest checkpoint here once everything verified (to check the
    /// next run against it).
    #[arg(long, value_name = "FILE")]
    save_checkpoint: Option<PathBuf>,
    /// Do not fetch and check the restricted details (they need the auditor role).
    #[arg(long)]
    no_details: bool,
}

impl VerifyArgs {
    /// `audit verify` online against `target`, details included, no kept checkpoints.
    pub(crate) fn online(target: Target) -> Self {
        Self {
            target,
            log_dir: None,
            checkpoints: Vec::new(),
            save_checkpoint: None,
            no_details: false,
        }
    }
}

fn fail(what: impl core::fmt::Display, e: impl core::fmt::Display) -> Failure {
    Failure::verification(format!("{what}: {e}"))
}

/// Reads the kept checkpoints: (file, note, size).
fn kept(paths: &[PathBuf], origin: &str, key: &[u8; 32]) -> CliResult<Vec<(PathBuf, String, u64)>> {
    let mut out = Vec::new();
    for path in paths {
        let note = read_text(path)?;
        let cp = verify_checkpoint(&note, origin, key).map_err(|e| fail(path.display(), e))?;
        say!(
            "ok: {}: checkpoint of size {} signed by {origin}",
            path.display(),
            cp.size
        );
        out.push((path.clone(), note, cp.size));
    }
    out.sort_by_key(|(_, _, size)| *size);
    Ok(out)
}

fn hashes(hex_hashes: &[String], server: &str) -> CliResult<Vec<Hash>> {
    hex_hashes
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out)
                .map(|()| out)
                .map_err(|_| fail(server, "a proof hash is not 64 hex"))
        })
        .collect()
}

/// Runs `audit verify`.
pub(crate) fn verify(args: &VerifyArgs) -> CliResult {
    let target = args.target.resolve()?;
    let (origin, key) = target.origin_and_key()?;
    let kept = kept(&args.checkpoints, &origin, &key)?;
    match &args.log_dir {
        Some(dir) => verify_dir(dir, &origin, &key, &kept),
        None => runtime()?.block_on(verify_online(args, &target, &origin, &key, &kept)),
    }
}

/// Checks seq and batch numbering without a checkpoint (what `verify_log` also checks).
fn check_sequence(records: &[Vec<u8>], dir: &Path) -> CliResult<MerkleTree> {
    let mut tree = MerkleTree::new();
    let mut previous_batch = None;
    for (i, record) in (0u64..).zip(records) {
        let e = PublicEntry::from_record(record).map_err(|e| fail(dir.display(), e))?;
        let continues = previous_batch == Some(e.batch);
        if e.seq != i || (e.batch != e.seq && !continues) {
            return Err(fail(
                dir.display(),
                format!(
                    "entry {i} has seq {} and batch {}: out of sequence",
                    e.seq, e.batch
                ),
            ));
        }
        previous_batch = Some(e.batch);
        tree.append(record).map_err(|e| fail(dir.display(), e))?;
    }
    Ok(tree)
}

fn verify_dir(
    dir: &Path,
    origin: &str,
    key: &[u8; 32],
    kept: &[(PathBuf, String, u64)],
) -> CliResult {
    let dir = audit_dir(dir)?;
    let records = read_records(&dir)?;
    let n = records.len() as u64;
    let tree = check_sequence(&records, &dir)?;
    say!(
        "ok: {}: {n} entries, canonical and in sequence",
        dir.display()
    );
    for (path, note, size) in kept {
        let prefix = usize::try_from(*size)
            .ok()
            .and_then(|s| records.get(..s))
            .ok_or_else(|| {
                fail(
                    path.display(),
                    format!("the checkpoint covers {size} entries but the log has only {n}: entries were removed"),
                )
            })?;
        verify_log(prefix, note, origin, key)
            .map_err(|e| fail(format!("{} against {}", dir.display(), path.display()), e))?;
        say!(
            "ok: the first {size} entries are exactly those {} signed",
            path.display()
        );
    }
    for pair in kept.windows(2) {
        let ((old_path, old, m), (new_path, new, size)) = (&pair[0], &pair[1]);
        let proof = tree
            .consistency_proof(*m, *size)
            .map_err(|e| fail(new_path.display(), e))?;
        verify_checkpoints_consistent(old, new, &proof, origin, key).map_err(|e| {
            fail(
                format!("{} and {}", old_path.display(), new_path.display()),
                e,
            )
        })?;
        say!("ok: {} extends {}", new_path.display(), old_path.display());
    }
    if let Some(details) = read_details(&dir)? {
        let aligned =
            details.len() == records.len() && (0u64..).zip(&details).all(|(i, d)| d.seq == i);
        if !aligned {
            return Err(fail(
                dir.display(),
                format!(
                    "details.jsonl does not match entries.jsonl ({} details for {n} entries, or out of sequence)",
                    details.len()
                ),
            ));
        }
        say!("ok: details.jsonl has one detail per entry, in sequence");
    }
    let public = records
        .iter()
        .map(|r| PublicEntry::from_record(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(dir.display(), e))?;
    let details = read_details(&dir)?;
    super::policies::print(&public, details.as_deref())?;
    say!("audit log {} verified ({n} entries)", dir.display());
    Ok(())
}

async fn verify_online(
    args: &VerifyArgs,
    target: &Resolved,
    origin: &str,
    key: &[u8; 32],
    kept: &[(PathBuf, String, u64)],
) -> CliResult {
    let server = target.describe();
    let client = target.client()?;
    let latest = client
        .checkpoint()
        .await
        .map_err(|e| Failure::from(e).context(&server))?;
    let cp = verify_checkpoint(&latest, origin, key).map_err(|e| fail(&server, e))?;
    say!(
        "ok: latest checkpoint of {server}: size {}, signed by {origin}",
        cp.size
    );
    let records = fetch_records(&client, 0, cp.size, &server).await?;
    verify_log(&records, &latest, origin, key).map_err(|e| fail(&server, e))?;
    say!("ok: all {} entries match the checkpoint's tree", cp.size);
    for (path, note, size) in kept {
        if *size > cp.size {
            // A log shorter than a checkpoint it signed: it lost entries (the custodian would
            // refuse the proof request as malformed).
            return Err(Failure::verification(format!(
                "{server}: {} covers {size} entries but the log now has only {}: entries were \
                 removed, or the log was replaced",
                path.display(),
                cp.size
            )));
        }
        let proof = client
            .consistency_proof(*size, cp.size)
            .await
            .map_err(|e| Failure::from(e).context(&server))?;
        verify_checkpoints_consistent(note, &latest, &hashes(&proof, &server)?, origin, key)
            .map_err(|e| fail(format!("{server} against {}", path.display()), e))?;
        say!("ok: the log extends {} (size {size})", path.display());
    }
    let public = records
        .iter()
        .map(|r| PublicEntry::from_record(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&server, e))?;
    let mut checked_details = None;
    if !args.no_details {
        match fetch_details(&client, 0, cp.size, &server).await? {
            None => say!("note: details not checked: this certificate has no auditor role"),
            Some((details, commitment_key)) => {
                verify_details(&public, &details, &commitment_key)
                    .map_err(|e| fail(format!("{server}: details"), e))?;
                say!(
                    "ok: every mailbox commitment, use tag and policy hash matches its \
                     restricted detail"
                );
                checked_details = Some(details);
            }
        }
    }
    super::policies::print(&public, checked_details.as_deref())?;
    if let Some(path) = &args.save_checkpoint {
        replace(path, latest.as_bytes())?;
        say!("saved the checkpoint to {}", path.display());
    }
    say!(
        "audit log of {}/{} verified ({} entries)",
        target.region,
        target.custodian,
        cp.size
    );
    Ok(())
}
