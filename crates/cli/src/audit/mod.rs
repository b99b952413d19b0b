//! `custodia audit verify|show`: an auditor's view of a custodian's verifiable log.

mod policies;
mod show;
pub(crate) mod source;
pub(crate) mod verify;

use clap::Subcommand;

use crate::failure::CliResult;

/// `custodia audit …`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify a custodian's audit log: checkpoint signatures, the Merkle tree over every entry,
    /// consistency with checkpoints kept earlier, and (auditor role) the restricted details.
    #[command(after_help = "\
Examples:
  # Against a running custodian, as the region's auditor (from the keys index):
  custodia audit verify --keys keys --region ie --save-checkpoint ie-cp.txt
  # Later: the log must extend what was seen before.
  custodia audit verify --keys keys --region ie --checkpoint ie-cp.txt
  # Explicit connection flags instead of --keys:
  custodia audit verify --region ie --custodian ie-custodian --server 10.0.0.5:8443 \\
      --ca ie-ca.pem --cert auditor.pem --cert-key auditor.key --manifest-key 0c9f…
  # A copy of the log on disk, against checkpoints kept earlier:
  custodia audit verify --keys keys --region ie --log-dir /srv/ie/data/audit \\
      --checkpoint ie-cp-monday.txt --checkpoint ie-cp-friday.txt

Exit status 3 when anything does not verify (the message names the entry or checkpoint).")]
    Verify(verify::VerifyArgs),
    /// Print a custodian's audit entries as a table.
    #[command(after_help = "\
Examples:
  custodia audit show --keys keys --region ie --last 20
  custodia audit show --keys keys --region ie --details        # auditor: mailbox ids
  custodia audit show --log-dir keys/ie/data --details

Without --details the mailbox column shows the first 12 hex characters of the entry's
keyed mailbox commitment, salted per entry (equal values appear only in entries written
before salting); an allowed use of an approval shows its use tag instead (`use …`: equal
values, the same mailbox under that approval), a policy entry its policy hash (`policy …`).
Nothing is verified here: use `audit verify`.")]
    Show(show::ShowArgs),
}

/// Runs `audit …`.
pub(crate) fn run(command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::Verify(args) => verify::verify(&args),
        AuditCommand::Show(args) => show::show(&args),
    }
}
