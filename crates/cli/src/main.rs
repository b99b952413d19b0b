//! `custodia`: one binary for the custodian service and the operators' tools.
#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod logging;
#[macro_use]
mod out;

mod approve;
mod audit;
mod custodian;
mod demo;
mod failure;
mod files;
mod gateway;
mod keys;
mod ops;
mod report;
mod seal;
mod svg;
mod table;
mod target;
mod timefmt;

/// Custodia: client-side encryption with per-region key custody.
#[derive(Debug, Parser)]
#[command(name = "custodia", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole story on this machine, narrated and checked: two custodians, an embedded S3
    /// store and a gateway per region; Irish mail refused to the US side until a 2-of-3
    /// approval, then released for that mailbox only, on the verified audit log.
    #[command(after_help = DEMO_HELP)]
    Demo(demo::DemoArgs),
    /// Run or set up a custodian (a region's key-custody service).
    #[command(subcommand)]
    Custodian(CustodianCommand),
    /// Run the encrypting gateway (S3 and HTTP/WebDAV fronts) in front of a blob store.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Make development keys: PKI, approver keys, custodian configs and keystores.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Lawful-access approvals: write a request, sign it offline, check M of N.
    #[command(subcommand)]
    Approve(approve::ApproveCommand),
    /// Verify or show a custodian's audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Print a custodian's transparency report (recomputed from its verified log).
    #[command(after_help = REPORT_HELP)]
    Report(report::ReportArgs),
    /// Seal a file or stdin for a mailbox, to its region's custodians (no custodian round trip
    /// beyond fetching their signed manifests).
    #[command(after_help = SEAL_HELP)]
    Seal(seal::SealArgs),
    /// Open a sealed object from a file or stdin (the object's custodians release the key).
    #[command(after_help = OPEN_HELP)]
    Open(seal::OpenArgs),
    /// Seal the plaintext objects already in a bucket, in place, by the residency rules
    /// (verified copy first, original replaced only if unchanged; resumable).
    #[command(after_help = MIGRATE_HELP)]
    Migrate(ops::MigrateArgs),
    /// After a custodian's key rotation, rewrap every object's stanzas to the new version
    /// through the custodian (batched; bodies unchanged; resumable).
    #[command(after_help = REWRAP_HELP)]
    Rewrap(ops::RewrapArgs),
    /// Count a bucket's plaintext, sealed and damaged objects and the key versions in use;
    /// --deep also opens every sealed object, --residency names mail sealed to the wrong region.
    #[command(after_help = VERIFY_HELP)]
    Verify(ops::VerifyArgs),
    /// Move mail sealed to this region under another spelling of its mailbox (before mailbox
    /// ids were canonical) to the mailbox's home region, in place (audited opens; resumable).
    #[command(after_help = RESEAL_HELP)]
    Reseal(ops::ResealArgs),
    /// Destroy a custodian key version (admin, M-of-N approval): lists what becomes
    /// unreadable, asks, destroys, then shows those objects no longer open.
    #[command(after_help = SHRED_HELP)]
    Shred(ops::ShredArgs),
    /// Remove what crashes and abandoned multipart uploads left in a bucket (uploads the
    /// store still holds, the gateway's orphaned .custodia/ records), older than an age limit.
    #[command(after_help = CLEAN_HELP)]
    Clean(ops::CleanArgs),
}

const CLEAN_HELP: &str = "\
Examples:
  custodia clean --config ie/gateway.toml --bucket mail --dry-run
  custodia clean --config ie/gateway.toml --bucket mail --older-than 7

Aborts the multipart uploads started more than --older-than days ago (on stores that list
uploads; s3s-fs does not, and keeps their parts in its own files), and removes the gateway's
records under .custodia/ that belong to nothing: layout records of keys that no longer hold
their multipart object, and metadata records of uploads that ended or were abandoned. Nothing
younger than the limit is touched. Safe to run while the gateway serves.";

const MIGRATE_HELP: &str = "\
Examples:
  custodia migrate --config ie/gateway.toml --bucket mail-ie --dry-run
  custodia migrate --config ie/gateway.toml --bucket mail-ie --jobs 16 --checkpoint mig.json

The store is the config's [upstream] (S3); each object's mailbox comes from its [[route]] and
region from [residency]. Run again with the same --checkpoint after a crash or Ctrl-C to
resume. While a bucket migrates, its routes may set legacy_plaintext = true; the summary says
when that can be turned off. Exit status 0 only if no object failed (docs/OPERATIONS.md).";

const REWRAP_HELP: &str = "\
Examples:
  custodia custodian rotate --keys keys --region ie        # the admin makes version 2 active
  custodia rewrap --config ie/gateway.toml --bucket mail-ie --custodian ie/ie-custodian \\
      --to-version 2 --batch 64 --checkpoint rewrap.json
  custodia custodian retire 1 --keys keys --region ie

Needs the gateway identity's rewrap role (in-region). Each object is replaced only if unchanged
since its header was read; its body bytes are rewritten as they were.";

const VERIFY_HELP: &str = "\
Examples:
  custodia verify --config ie/gateway.toml --bucket mail-ie
  custodia verify --config ie/gateway.toml --bucket mail-ie --deep --json > verify.json

Exit status 0 only if every object is sealed and sound; 3 if plaintext, damaged, (--deep)
unreadable or (--residency) misplaced objects were found.";

const RESEAL_HELP: &str = "\
Examples:
  custodia verify --config us/gateway.toml --bucket mail --residency     # what is misplaced
  custodia reseal --config us/gateway.toml --bucket mail --to ie \\
      --mailbox ceo@example.com --dry-run
  custodia reseal --config us/gateway.toml --bucket mail --to ie \\
      --mailbox ceo@example.com --checkpoint reseal.json

Fixes mail sealed before mailbox ids were canonical: an object sealed to this config's region
under another spelling of its key's mailbox (CEO@example.com for ceo@example.com), of a
mailbox named by --mailbox that lives in the --to region. Run by the region it was sealed
to: its custodian opens each one (an audited unwrap, as for a read), and the plaintext is
sealed again for the canonical mailbox, to --to; the original is replaced only by a verified
copy, and only if unchanged. This hands those mailboxes' mail to the --to region: name only
mailboxes you know live there (docs/OPERATIONS.md).
Everything else misplaced is reported as wrong_region and left alone. Exit status 0 only if
nothing is left misplaced; 3 if wrong_region objects remain; 1 if an object failed or is
damaged.";

const SHRED_HELP: &str = "\
Examples:
  custodia approve new --keys keys --region ie --caller-cert keys/ie/clients/admin-ie.pem \\
      --request-id kd-7
      --purpose 'retire 2025 key' --destroy-key 1 --out kd-7.json   # then 2 approvers sign
  custodia shred --config ie/gateway.toml --keys keys --region ie \\
      --key-version 1 --approval kd-7.json --dry-run       # lists, destroys nothing
  custodia shred --config ie/gateway.toml --keys keys --region ie \\
      --key-version 1 --approval kd-7.json

Scans every bucket the config's routes name: a key version is global to its custodian.
Irreversible: every object sealed to that version stops opening for everyone. Rewrap first
(`custodia rewrap`) for the objects that must stay readable.";

const DEMO_HELP: &str = "\
Examples:
  custodia demo
  custodia demo --keep      # then try the printed `aws` and `curl` commands; Ctrl-C ends it

Needs nothing but this binary: the keys are made fresh in a temporary directory, the servers
listen on free ports of 127.0.0.1, and everything is stopped and removed at the end (also on
Ctrl-C). Colour only on a terminal, never with NO_COLOR set. Exit status 0 only if every step
behaved as expected; otherwise the status of the first step that did not (docs/CLI.md).";

const REPORT_HELP: &str = "\
Examples:
  custodia report --keys keys --region ie --period 2026-Q4
  custodia report --keys keys --region ie --period 2026-11 --json ie-2026-11.json --svg ie.svg
  custodia report --keys keys --region ie --log-dir /srv/ie/data --checkpoint ie-cp.txt

The custodian's report is checked: its checkpoint must be signed by the pinned manifest key, and
the report must equal the one recomputed from the log entries it covers (exit status 3 if not).
Counts from 1 to 9 are published as the band 1-9.";

const SEAL_HELP: &str = "\
Examples:
  custodia seal --keys keys --mailbox aoife@example.ie --region ie --object aoife/1.eml \\
      --in 1.eml --out 1.eml.sealed
  cat 1.eml | custodia seal --keys keys --mailbox aoife@example.ie --domain example.ie=ie \\
      --bucket mail-ie --object aoife/1.eml > 1.eml.sealed

The object is bound to --bucket/--object (its final name): open it with the same names.
Connects as the mailbox region's gateway unless --caller or --cert/--cert-key say otherwise.";

const OPEN_HELP: &str = "\
Examples:
  custodia open --keys keys --object aoife/1.eml --in 1.eml.sealed --out 1.eml
  # From another region, with an M-of-N approval signed by the object's region's approvers:
  custodia open --keys keys --caller us --approval mlat-0042.json --object aoife/1.eml \\
      < 1.eml.sealed > 1.eml

Connects as the gateway of the object's region unless --caller or --cert/--cert-key say
otherwise. Every chunk is verified before it is written; on any error the exit status is
non-zero and --out is not created (on stdout, discard what was written).";

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Serve the gateway's fronts until SIGINT or SIGTERM (then drain in-flight requests).
    #[command(
        after_help = "Example:\n  custodia gateway serve --config keys-example/ie/gateway.toml\n\nThe config (every field in docs/GATEWAY.md) names the fronts, the upstream store,\nthe custodians, the residency rules and the routes."
    )]
    Serve {
        /// The gateway's TOML config (see docs/GATEWAY.md).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CustodianCommand {
    /// Create the custodian's sealed keystore (and its KEK file if missing) from its config.
    Init {
        /// The custodian's TOML config (see docs/API.md, "Configuration").
        #[arg(long)]
        config: PathBuf,
        /// Mark the keys insecure (development only): servers refuse them without --dev.
        #[arg(long)]
        dev: bool,
    },
    /// Serve the custodian API (HTTPS with mandatory mTLS) until SIGINT or SIGTERM; SIGHUP
    /// reloads the policy.
    #[command(
        after_help = "Example:\n  custodia custodian serve --config ie/custodian.toml\n  kill -HUP $(pidof custodia)   # after editing approvers, CAs, CRLs or callers\n\nEvery start and every reload puts the policy in force (approvers and M, client CAs and\nCRLs, callers and roles) on the audit log before it takes effect (docs/API.md §8.1); a\nconfig that does not load leaves the policy in force unchanged, and says so in the log."
    )]
    Serve {
        /// The custodian's TOML config.
        #[arg(long)]
        config: PathBuf,
        /// Accept keys marked insecure (development only).
        #[arg(long)]
        dev: bool,
    },
    /// Rotate a running custodian's key (admin): a new version becomes active for sealing;
    /// older ones still open existing objects until retired or destroyed.
    Rotate {
        #[command(flatten)]
        target: target::Target,
    },
    /// Retire a key version (admin): no longer offered for sealing, still opens.
    Retire {
        /// The key version.
        version: u32,
        #[command(flatten)]
        target: target::Target,
    },
}

fn main() -> ExitCode {
    logging::init();
    let cli = Cli::parse();
    let result: failure::CliResult = match cli.command {
        Command::Custodian(CustodianCommand::Init { config, dev }) => {
            custodian::init(&config, dev).map_err(Into::into)
        }
        Command::Custodian(CustodianCommand::Rotate { target }) => {
            custodian::key_change(&target, None)
        }
        Command::Custodian(CustodianCommand::Retire { version, target }) => {
            custodian::key_change(&target, Some(version))
        }
        Command::Custodian(CustodianCommand::Serve { config, dev }) => {
            custodian::serve(&config, dev).map_err(Into::into)
        }
        Command::Gateway(GatewayCommand::Serve { config }) => gateway::serve(&config),
        Command::Demo(args) => demo::run(&args),
        Command::Keys(command) => keys::run(command),
        Command::Approve(command) => approve::run(command),
        Command::Audit(command) => audit::run(command),
        Command::Report(args) => report::report(&args),
        Command::Seal(args) => seal::seal(&args),
        Command::Open(args) => seal::open(&args),
        Command::Migrate(args) => ops::migrate(&args),
        Command::Rewrap(args) => ops::rewrap(&args),
        Command::Verify(args) => ops::verify(&args),
        Command::Reseal(args) => ops::reseal(&args),
        Command::Shred(args) => ops::shred(&args),
        Command::Clean(args) => ops::clean(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors can quote what others chose (a custodian's answer, a file's field):
            // escaped line by line.
            let text = e.to_string();
            let lines: Vec<String> = text.lines().map(out::escape_controls).collect();
            eprintln!("custodia: {}", lines.join("\n"));
            ExitCode::from(e.code())
        }
    }
}
