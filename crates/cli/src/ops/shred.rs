//! `custodia shred`: crypto-shred one custodian key version. Lists the objects it would make
//! unreadable in every bucket the gateway config's routes name (a key version is global to
//! its custodian), asks for confirmation, has the custodian destroy the version (admin role,
//! with an M-of-N approval for exactly this destruction), then shows that those objects no
//! longer open. `--dry-run` stops after the list.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use clap::Args;
use custodia_gateway::ops::shred::{ShredTarget, check_unreadable, scan};
use custodia_gateway::ops::{Kind, Options};
use serde::Serialize;

use super::progress::Shown;
use super::{job_error, runtime};
use crate::failure::{CliResult, Context, Failure, Status};
use crate::target::Target;

/// `custodia shred`.
#[derive(Debug, Args)]
pub(crate) struct ShredArgs {
    /// The gateway's TOML config: its [upstream] S3 store is scanned, in every bucket its
    /// [[route]]s name (see docs/GATEWAY.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// The buckets to scan: if given, every bucket the routes name must be listed (a key
    /// version is global; objects sealed to it may be in any of them). Default: all of them.
    #[arg(long, value_name = "BUCKET")]
    pub(crate) bucket: Vec<String>,
    /// List what would stop opening, and destroy nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// The custodian (and the admin certificate to present: by default the region admin's
    /// from --keys).
    #[command(flatten)]
    pub(crate) target: Target,
    /// The key version to destroy.
    #[arg(long, value_name = "VERSION")]
    pub(crate) key_version: u32,
    /// The M-of-N approval of this destruction (`custodia approve new --destroy-key`).
    #[arg(long, value_name = "FILE")]
    pub(crate) approval: PathBuf,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub(crate) yes: bool,
    /// Objects read at once while scanning and checking.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) jobs: u16,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress bar or progress lines.
    #[arg(long)]
    pub(crate) quiet: bool,
}

#[derive(Serialize)]
struct Shredded<'a> {
    custodian: String,
    key_version: u32,
    buckets: Vec<&'a str>,
    affected: u64,
    affected_sample: Vec<String>,
    destroyed: bool,
    check: Option<custodia_gateway::ops::shred::Check>,
}

fn print_json(out: &Shredded<'_>) -> CliResult {
    let text =
        serde_json::to_string_pretty(out).map_err(|e| Failure::failed(format!("result: {e}")))?;
    say!("{text}");
    Ok(())
}

fn confirm(what: &str) -> CliResult {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::usage(
            "stdin is not a terminal: pass --yes to destroy without confirmation",
        ));
    }
    eprint!("type `{what}` to destroy it for good: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::failed(format!("reading the confirmation: {e}")))?;
    if line.trim() == what {
        Ok(())
    } else {
        Err(Failure::failed("not confirmed: nothing was destroyed"))
    }
}

/// `custodia shred`.
pub(crate) fn shred(args: &ShredArgs) -> CliResult {
    let resolved = args.target.resolve_admin()?;
    let approval = crate::approve::load(&args.approval)?;
    let scopes = super::every_routed_bucket(&args.config, &args.bucket)?;
    let region = custodia_envelope::Region::new(&resolved.region)
        .map_err(|e| Failure::usage(format!("--region: {e}")))?;
    let custodian = custodia_envelope::CustodianName::new(&resolved.custodian)
        .map_err(|e| Failure::usage(format!("--custodian: {e}")))?;
    let target = ShredTarget {
        region,
        custodian,
        key_version: args.key_version,
    };
    let what = format!(
        "destroy {}/{} v{}",
        resolved.region, resolved.custodian, args.key_version
    );
    let admin = resolved.client()?;
    let buckets: Vec<&str> = scopes.iter().map(|s| s.bucket.as_str()).collect();
    runtime()?.block_on(async {
        let opts = Options {
            jobs: usize::from(args.jobs),
            ..Options::default()
        };
        // Every bucket, whole: what is affected, per bucket.
        let mut found = Vec::new();
        let mut affected = 0;
        for scope in &scopes {
            let shown = Shown::new("shred", args.quiet || args.json);
            let scanned = scan(scope, &opts, &target, &shown).await;
            shown.finish();
            drop(shown);
            let scanned =
                scanned.map_err(|e| job_error(e).context(format!("bucket {}", scope.bucket)))?;
            if let Some(why) = &scanned.summary.stopped {
                return Err(Failure::new(
                    Status::Failed,
                    format!("the scan of bucket {} stopped: {why}", scope.bucket),
                ));
            }
            affected += scanned.summary.count(Kind::Affected);
            found.push((scope, scanned.affected));
        }
        let sample: Vec<String> = found
            .iter()
            .flat_map(|(scope, keys)| keys.iter().map(move |k| format!("{}/{k}", scope.bucket)))
            .collect();
        if !args.json {
            say!(
                "{affected} object(s) in bucket(s) {} are sealed to {}/{} v{} and will no longer \
                 open{}",
                buckets.join(", "),
                resolved.region,
                resolved.custodian,
                args.key_version,
                if affected == 0 { "." } else { ":" }
            );
            for k in sample.iter().take(20) {
                say!("  {}", crate::out::escape(k));
            }
            if sample.len() > 20 {
                say!("  … and {} more", affected - 20);
            }
        }
        let mut out = Shredded {
            custodian: format!("{}/{}", resolved.region, resolved.custodian),
            key_version: args.key_version,
            buckets,
            affected,
            affected_sample: sample,
            destroyed: false,
            check: None,
        };
        if args.dry_run {
            if args.json {
                print_json(&out)?;
            } else {
                say!("dry run: nothing was destroyed");
            }
            return Ok(());
        }
        if !args.yes {
            confirm(&what)?;
        }
        admin
            .destroy(args.key_version, &approval)
            .await
            .context(resolved.describe())?;
        let mut check = custodia_gateway::ops::shred::Check::default();
        for (scope, keys) in &found {
            scope.objects.client().clear_cache();
            let c = check_unreadable(scope, keys, usize::from(args.jobs)).await;
            check.unreadable += c.unreadable;
            check.gone += c.gone;
            for (why, n) in c.reasons {
                *check.reasons.entry(why).or_default() += n;
            }
            check.still_open.extend(
                c.still_open
                    .into_iter()
                    .map(|k| format!("{}/{k}", scope.bucket)),
            );
        }
        out.destroyed = true;
        out.check = Some(check);
        let check = out.check.as_ref();
        if args.json {
            print_json(&out)?;
        } else {
            say!(
                "destroyed key version {} of custodian {}",
                args.key_version,
                out.custodian
            );
            if let Some(c) = check {
                say!(
                    "checked {} affected object(s): {} no longer open, {} still open, {} gone",
                    out.affected_sample.len(),
                    c.unreadable,
                    c.still_open.len(),
                    c.gone
                );
                for (why, n) in &c.reasons {
                    say!("  {n} × {why}");
                }
            }
        }
        if let Some(c) = check
            && !c.still_open.is_empty()
        {
            return Err(Failure::verification(format!(
                "{} object(s) sealed to the destroyed version still open: {}",
                c.still_open.len(),
                c.still_open.join(", ")
            )));
        }
        Ok(())
    })
}
