//! `custodia migrate | rewrap | verify | reseal | shred | clean`: the bulk jobs of
//! [`custodia_gateway::ops`] over a bucket of the store a gateway config names, with a
//! progress bar, Ctrl-C handling (checkpoint saved), a summary (`--json` for machines) and
//! an exit status that says whether anything failed.

mod clean;
mod progress;
mod shred;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use custodia_envelope::{CustodianName, Region};
use custodia_gateway::ops::rewrap::RewrapTarget;
use custodia_gateway::ops::{Kind, Options, Scope, Summary};
use custodia_gateway::routes::Routes;

use crate::failure::{CliResult, Failure, Status};
use progress::Shown;

pub(crate) use clean::{CleanArgs, clean};
pub(crate) use shred::{ShredArgs, shred};

/// Where a job runs: the gateway config (its store, custodians, identity and residency
/// rules) and the bucket.
#[derive(Debug, Args, Clone)]
pub(crate) struct Where {
    /// The gateway's TOML config: its [upstream] S3 store is the store walked, its
    /// [identity] and [[custodian]] entries are who seals and asks, its [residency] and
    /// [[route]] rules decide each object's mailbox (see docs/GATEWAY.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// The bucket.
    #[arg(long)]
    pub(crate) bucket: String,
    /// Only keys under this prefix.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
}

/// How a job runs.
#[derive(Debug, Args, Clone)]
pub(crate) struct How {
    /// Objects (batches, for rewrap) in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) jobs: u16,
    /// Records progress in FILE, and resumes from it if it exists (after a crash, SIGKILL
    /// or Ctrl-C). Default: no checkpoint (a stopped run starts over, safely).
    #[arg(long, value_name = "FILE")]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Print the summary as JSON on stdout (progress stays on stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress bar or progress lines.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// `custodia migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) how: How,
    /// Report what would be sealed; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `custodia rewrap`.
#[derive(Debug, Args)]
pub(crate) struct RewrapArgs {
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) how: How,
    /// The custodian whose stanzas move, as REGION/NAME (default: the only custodian the
    /// config names).
    #[arg(long, value_name = "REGION/NAME")]
    pub(crate) custodian: Option<String>,
    /// The key version to move to: the custodian's active version (checked against its
    /// signed manifest before anything is written).
    #[arg(long, value_name = "VERSION")]
    pub(crate) to_version: u32,
    /// Objects per custodian call.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) batch: u16,
    /// Report what would be rewrapped; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `custodia verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) how: How,
    /// Also open every sealed object end to end (in-region callers only; each unwrap is
    /// asked of the custodians and audited like any read).
    #[arg(long)]
    pub(crate) deep: bool,
    /// Also name every object sealed to another region than its mailbox's residency (or to
    /// another mailbox than its key names), under the config's [residency] rules and the
    /// canonical mailbox id. Such objects make the status 3.
    #[arg(long)]
    pub(crate) residency: bool,
}

/// `custodia reseal`.
#[derive(Debug, Args)]
pub(crate) struct ResealArgs {
    #[command(flatten)]
    pub(crate) at: Where,
    #[command(flatten)]
    pub(crate) how: How,
    /// The region the mail moves to: its mailboxes' home under the config's residency
    /// rules. Objects whose mailbox lives elsewhere are left alone.
    #[arg(long, value_name = "REGION")]
    pub(crate) to: String,
    /// A mailbox whose misplaced mail may move (repeatable; at least one): a reseal hands
    /// its mail to the --to region, so name only mailboxes known to live there.
    #[arg(long = "mailbox", value_name = "MAILBOX", required = true)]
    pub(crate) mailboxes: Vec<String>,
    /// Report what would be resealed; change nothing (asks no custodian).
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// The object layer of a gateway config.
pub(crate) fn scope(at: &Where) -> CliResult<Scope> {
    let (objects, routes) = object_layer(&at.config)?;
    if !routes.serves_bucket(&at.bucket) {
        return Err(Failure::usage(format!(
            "--bucket {}: no [[route]] of {} names this bucket, so no object in it has a \
             mailbox (add a route)",
            at.bucket,
            at.config.display()
        )));
    }
    Ok(Scope {
        objects,
        bucket: at.bucket.clone(),
        prefix: at.prefix.clone(),
    })
}

/// The object layer of the gateway config at `path`, and its routes.
fn object_layer(
    path: &std::path::Path,
) -> CliResult<(Arc<custodia_gateway::objects::Objects>, Routes)> {
    let config = custodia_gateway::Config::load(path)
        .map_err(|e| Failure::failed(e.to_string()).context(path.display()))?;
    let gw = |e: custodia_gateway::Error| Failure::failed(e.to_string()).context(path.display());
    let client = custodia_gateway::gateway::sdk_client(&config).map_err(gw)?;
    let store = custodia_gateway::gateway::store(&config).map_err(gw)?;
    let routes = Routes::new(&config.routes).map_err(gw)?;
    let objects = custodia_gateway::objects::Objects::new(
        client,
        store,
        routes.clone(),
        config.limits.max_object_bytes,
        Arc::new(custodia_gateway::metrics::Metrics::default()),
    );
    Ok((Arc::new(objects), routes))
}

/// One whole-bucket scope per bucket the config's routes name. A key version is global to a
/// custodian, so a job that destroys one must see every bucket that can hold objects sealed
/// to it: `buckets`, if given, must list every one of them.
pub(crate) fn every_routed_bucket(
    config: &std::path::Path,
    buckets: &[String],
) -> CliResult<Vec<Scope>> {
    let (objects, routes) = object_layer(config)?;
    let routed: Vec<String> = routes.buckets().into_iter().map(str::to_owned).collect();
    if !buckets.is_empty() {
        let missing: Vec<&str> = routed
            .iter()
            .filter(|b| !buckets.contains(b))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Failure::usage(format!(
                "a key version is global: objects sealed to it can be in every bucket the \
                 routes of {} name; add --bucket {} (or give no --bucket to scan them all)",
                config.display(),
                missing.join(" --bucket ")
            )));
        }
        if let Some(extra) = buckets.iter().find(|b| !routed.contains(b)) {
            return Err(Failure::usage(format!(
                "--bucket {extra}: no [[route]] of {} names this bucket",
                config.display()
            )));
        }
    }
    Ok(routed
        .into_iter()
        .map(|bucket| Scope {
            objects: objects.clone(),
            bucket,
            prefix: None,
        })
        .collect())
}

/// Options with a Ctrl-C handler that asks the job to stop (checkpoint saved).
fn options(how: &How, batch: usize, dry_run: bool) -> Options {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });
    Options {
        jobs: usize::from(how.jobs),
        batch,
        checkpoint: how.checkpoint.clone(),
        dry_run,
        stop: Some(rx),
    }
}

/// A multi-threaded runtime (jobs seal and hash on more than one core).
fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("tokio runtime: {e}")))
}

fn job_error(e: custodia_gateway::Error) -> Failure {
    let status = match e {
        custodia_gateway::Error::UpstreamUnavailable(_)
        | custodia_gateway::Error::CustodianUnavailable(_) => Status::Unavailable,
        custodia_gateway::Error::Config { .. } => Status::Usage,
        _ => Status::Failed,
    };
    Failure::new(status, e.to_string())
}

/// Prints `summary` (a table, or JSON) and turns it into the exit status.
pub(crate) fn report(summary: &Summary, json: bool, problems: &[Kind]) -> CliResult {
    if json {
        match serde_json::to_string_pretty(summary) {
            Ok(s) => say!("{s}"),
            Err(e) => return Err(Failure::failed(format!("summary: {e}"))),
        }
    } else {
        let scope = if summary.prefix.is_empty() {
            summary.bucket.clone()
        } else {
            format!("{}/{}", summary.bucket, summary.prefix)
        };
        say!(
            "{} of {scope}: {} objects, {} in {:.1} s ({:.1} objects/s){}",
            summary.command,
            summary.objects,
            progress::bytes(summary.bytes),
            summary.elapsed_secs,
            summary.objects_per_sec,
            if summary.resumed { ", resumed" } else { "" }
        );
        for (kind, n) in &summary.counts {
            let name = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            say!("  {name:<15} {n:>9}");
        }
        if !summary.key_versions.is_empty() {
            say!("key versions in use:");
            for (v, n) in &summary.key_versions {
                say!("  {v:<30} {n:>9} objects");
            }
        }
        for f in summary.failures.iter().take(20) {
            let kind = serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            say!(
                "  {kind}: {} — {}",
                crate::out::escape(&f.key),
                crate::out::escape(&f.error)
            );
        }
        if summary.failures.len() > 20 {
            say!("  … and {} more (see --json)", summary.failures.len() - 20);
        }
        for n in &summary.notes {
            say!("note: {}", crate::out::escape(n));
        }
    }
    if let Some(why) = &summary.stopped {
        let status = if why == "interrupted" {
            Status::Interrupted
        } else if why.contains("unavailable") {
            Status::Unavailable
        } else {
            Status::Failed
        };
        return Err(Failure::new(
            status,
            format!("{} stopped: {why}", summary.command),
        ));
    }
    let bad: u64 = problems.iter().map(|k| summary.count(*k)).sum();
    if bad > 0 {
        // verify: 3 for whatever it finds. Others: 1 if an object failed, else 3 for what
        // was found but left as it is (reseal: objects still in the wrong region).
        let found_only = summary.count(Kind::Failed) == 0 && problems.contains(&Kind::WrongRegion);
        let status = if problems.contains(&Kind::Plaintext) || found_only {
            Status::Verification
        } else {
            Status::Failed
        };
        let names: Vec<String> = problems
            .iter()
            .filter(|k| summary.count(**k) > 0)
            .map(|k| format!("{} {k:?}", summary.count(*k)).to_lowercase())
            .collect();
        return Err(Failure::new(
            status,
            format!("{}: {}", summary.command, names.join(", ")),
        ));
    }
    Ok(())
}

/// `custodia migrate`.
pub(crate) fn migrate(args: &MigrateArgs) -> CliResult {
    let scope = scope(&args.at)?;
    runtime()?.block_on(async {
        let opts = options(&args.how, 1, args.dry_run);
        let shown = Shown::new("migrate", args.how.quiet);
        let summary = custodia_gateway::ops::migrate::migrate(&scope, &opts, &shown).await;
        shown.finish();
        drop(shown);
        report(
            &summary.map_err(job_error)?,
            args.how.json,
            &[Kind::Failed, Kind::Damaged],
        )
    })
}

/// Parses `REGION/NAME`, or picks the config's only custodian.
pub(crate) fn custodian_of(
    scope: &Scope,
    flag: Option<&str>,
) -> CliResult<(Region, CustodianName)> {
    let text = match flag {
        Some(t) => t.to_owned(),
        None => {
            let dir = scope.objects.client().directory();
            let all: Vec<String> = dir
                .regions()
                .flat_map(|r| {
                    dir.custodians(r)
                        .into_iter()
                        .map(move |c| format!("{}/{}", r.as_str(), c.as_str()))
                })
                .collect();
            match all.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(Failure::usage(format!(
                        "--custodian: which one of {}?",
                        all.join(", ")
                    )));
                }
            }
        }
    };
    let (r, n) = text
        .split_once('/')
        .ok_or_else(|| Failure::usage("--custodian: REGION/NAME, e.g. ie/ie-custodian"))?;
    let region = Region::new(r).map_err(|e| Failure::usage(format!("--custodian: {e}")))?;
    let name = CustodianName::new(n).map_err(|e| Failure::usage(format!("--custodian: {e}")))?;
    Ok((region, name))
}

/// `custodia rewrap`.
pub(crate) fn rewrap(args: &RewrapArgs) -> CliResult {
    let scope = scope(&args.at)?;
    let (region, custodian) = custodian_of(&scope, args.custodian.as_deref())?;
    let target = RewrapTarget {
        region,
        custodian,
        to_version: args.to_version,
    };
    runtime()?.block_on(async {
        let opts = options(&args.how, usize::from(args.batch), args.dry_run);
        let shown = Shown::new("rewrap", args.how.quiet);
        let summary = custodia_gateway::ops::rewrap::rewrap(&scope, &opts, &target, &shown).await;
        shown.finish();
        drop(shown);
        report(
            &summary.map_err(job_error)?,
            args.how.json,
            &[Kind::Failed, Kind::Damaged],
        )
    })
}

/// `custodia verify`.
pub(crate) fn verify(args: &VerifyArgs) -> CliResult {
    let scope = scope(&args.at)?;
    runtime()?.block_on(async {
        let opts = options(&args.how, 1, false);
        let shown = Shown::new("verify", args.how.quiet);
        let checks = custodia_gateway::ops::verify::Checks {
            deep: args.deep,
            residency: args.residency,
        };
        let summary = custodia_gateway::ops::verify::verify(&scope, &opts, checks, &shown).await;
        shown.finish();
        drop(shown);
        report(
            &summary.map_err(job_error)?,
            args.how.json,
            &[
                Kind::Plaintext,
                Kind::Damaged,
                Kind::Unreadable,
                Kind::WrongRegion,
                Kind::LegacyLayout,
                Kind::Failed,
            ],
        )
    })
}

/// `custodia reseal`.
pub(crate) fn reseal(args: &ResealArgs) -> CliResult {
    let scope = scope(&args.at)?;
    // The region whose custodian opens the misplaced objects: the config's own.
    let own = custodia_gateway::Config::load(&args.at.config)
        .map_err(|e| Failure::failed(e.to_string()).context(args.at.config.display()))?
        .region;
    let mut mailboxes = std::collections::BTreeSet::new();
    for m in &args.mailboxes {
        let canonical = custodia_envelope::canonical_mailbox(m)
            .map_err(|e| Failure::usage(format!("--mailbox {}: {e}", crate::out::escape(m))))?;
        mailboxes.insert(canonical);
    }
    let target = custodia_gateway::ops::reseal::ResealTarget {
        from: Region::new(&own).map_err(|e| Failure::usage(format!("region: {e}")))?,
        to: Region::new(&args.to).map_err(|e| Failure::usage(format!("--to: {e}")))?,
        mailboxes,
    };
    let known = scope
        .objects
        .client()
        .directory()
        .regions()
        .any(|r| *r == target.to);
    if !known {
        return Err(Failure::usage(format!(
            "--to {}: no [[custodian]] of {} is in that region",
            target.to.as_str(),
            args.at.config.display()
        )));
    }
    runtime()?.block_on(async {
        let opts = options(&args.how, 1, args.dry_run);
        let shown = Shown::new("reseal", args.how.quiet);
        let summary = custodia_gateway::ops::reseal::reseal(&scope, &opts, &target, &shown).await;
        shown.finish();
        drop(shown);
        report(
            &summary.map_err(job_error)?,
            args.how.json,
            &[Kind::Failed, Kind::Damaged, Kind::WrongRegion],
        )
    })
}
