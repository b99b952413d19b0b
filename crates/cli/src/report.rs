//! `custodia report`: a custodian's transparency report for a month or quarter, fetched and
//! recomputed from the verified log (or built from an audit directory), printed as a table and
//! optionally written as JSON and as an SVG bar chart.

use std::path::PathBuf;

use clap::Args;
use custodia_custodian::audit::checkpoint::verify_checkpoint;
use custodia_custodian::audit::entry::PublicEntry;
use custodia_custodian::audit::report::{Period, Report, build_report};
use custodia_custodian::audit::verify::verify_log;

use crate::audit::source::{audit_dir, fetch_records, read_records};
use crate::failure::{CliResult, Failure};
use crate::files::{read_text, replace};
use crate::target::{Target, runtime};
use crate::timefmt::current_month;

/// Flags of `report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    target: Target,
    /// A month (2026-11) or quarter (2026-Q4), UTC. Default: the current month.
    #[arg(long, value_name = "PERIOD")]
    period: Option<String>,
    /// Build the report from an audit directory on disk instead of asking the custodian.
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// With --log-dir: the signed checkpoint to build the report at (verified; its prefix of
    /// the log is counted). Without it the report covers every entry and cites no checkpoint.
    #[arg(long, value_name = "FILE", requires = "log_dir")]
    checkpoint: Option<PathBuf>,
    /// Do not recompute the custodian's report from its log (only print what it serves).
    #[arg(long, conflicts_with = "log_dir")]
    no_verify: bool,
    /// Also write the report as JSON (the custodian's format, docs/API.md 3.15).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write a bar chart of the report as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

impl ReportArgs {
    /// `report` of the current month from the custodian `target`, verified, table only.
    pub(crate) fn current(target: Target) -> Self {
        Self {
            target,
            period: None,
            log_dir: None,
            checkpoint: None,
            no_verify: false,
            json: None,
            svg: None,
        }
    }
}

fn parse_entries(records: &[Vec<u8>]) -> CliResult<Vec<PublicEntry>> {
    records
        .iter()
        .map(|r| PublicEntry::from_record(r).map_err(|e| Failure::verification(e.to_string())))
        .collect()
}

fn bad(what: impl core::fmt::Display, e: impl core::fmt::Display) -> Failure {
    Failure::verification(format!("{what}: {e}"))
}

/// Runs `report`.
pub(crate) fn report(args: &ReportArgs) -> CliResult {
    let period_text = args.period.clone().unwrap_or_else(current_month);
    let period: Period = period_text.parse().map_err(|_| {
        Failure::usage(format!(
            "--period: {period_text:?} is not a month (2026-11) or a quarter (2026-Q4)"
        ))
    })?;
    let target = args.target.resolve()?;
    let title = format!("{}/{}", target.region, target.custodian);
    let (report, status) = match &args.log_dir {
        Some(dir) => {
            let dir = audit_dir(dir)?;
            let records = read_records(&dir)?;
            match &args.checkpoint {
                Some(path) => {
                    let (origin, key) = target.origin_and_key()?;
                    let note = read_text(path)?;
                    let cp = verify_checkpoint(&note, &origin, &key)
                        .map_err(|e| bad(path.display(), e))?;
                    let prefix = usize::try_from(cp.size)
                        .ok()
                        .and_then(|n| records.get(..n))
                        .ok_or_else(|| {
                            bad(
                                path.display(),
                                format!(
                                    "covers {} entries; the log has {}",
                                    cp.size,
                                    records.len()
                                ),
                            )
                        })?;
                    verify_log(prefix, &note, &origin, &key).map_err(|e| bad(dir.display(), e))?;
                    let entries = parse_entries(prefix)?;
                    (
                        build_report(&entries, period, &note, cp.size),
                        format!(
                            "built from {}, verified against {}",
                            dir.display(),
                            path.display()
                        ),
                    )
                }
                None => {
                    let entries = parse_entries(&records)?;
                    (
                        build_report(&entries, period, "", records.len() as u64),
                        format!("built from {} (no checkpoint: unverified)", dir.display()),
                    )
                }
            }
        }
        None => runtime()?.block_on(fetch(args, &target, period, &period_text))?,
    };
    print(&report, &title, &status);
    if let Some(path) = &args.json {
        let mut text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::failed(format!("report: {e}")))?;
        text.push('\n');
        replace(path, text.as_bytes())?;
        say!("wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        replace(path, crate::svg::chart(&report, &title).as_bytes())?;
        say!("wrote {}", path.display());
    }
    Ok(())
}

/// The custodian's report, recomputed from its verified log unless `--no-verify`.
async fn fetch(
    args: &ReportArgs,
    target: &crate::target::Resolved,
    period: Period,
    period_text: &str,
) -> CliResult<(Report, String)> {
    let server = target.describe();
    let client = target.client()?;
    let served = client
        .transparency(period_text)
        .await
        .map_err(|e| Failure::from(e).context(&server))?;
    if args.no_verify {
        return Ok((served, format!("served by {server}, not verified")));
    }
    let (origin, key) = target.origin_and_key()?;
    let cp = verify_checkpoint(&served.checkpoint, &origin, &key).map_err(|e| bad(&server, e))?;
    if cp.size != served.log_size {
        return Err(bad(
            &server,
            format!(
                "log_size {} but the checkpoint's size is {}",
                served.log_size, cp.size
            ),
        ));
    }
    let records = fetch_records(&client, 0, cp.size, &server).await?;
    verify_log(&records, &served.checkpoint, &origin, &key).map_err(|e| bad(&server, e))?;
    let recomputed = build_report(
        &parse_entries(&records)?,
        period,
        &served.checkpoint,
        cp.size,
    );
    if recomputed != served {
        return Err(bad(
            &server,
            "the served report differs from the one recomputed from its own verified log",
        ));
    }
    Ok((
        served,
        format!("served by {server}; recomputed from its verified log: identical"),
    ))
}

fn print(report: &Report, title: &str, status: &str) {
    say!(
        "transparency report of {title}, period {} (log size {})",
        crate::out::escape(&report.period),
        report.log_size
    );
    say!("{}", crate::out::escape_controls(status));
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.operation.clone(),
                r.caller_region.clone(),
                r.outcome.clone(),
                if r.with_approval { "yes" } else { "no" }.into(),
                r.count.0.clone(),
            ]
        })
        .collect();
    crate::table::print(
        &["operation", "caller region", "outcome", "approval", "count"],
        &rows,
    );
    say!(
        "(approval, mailbox) pairs released under an approval: {} (counts 1-9 are banded)",
        crate::out::escape(&report.approval_mailbox_pairs.0)
    );
    if report.policy_changes.is_empty() {
        say!("policy changes in the period: none");
    } else {
        say!(
            "policy changes in the period: {}",
            report.policy_changes.len()
        );
        for c in &report.policy_changes {
            say!(
                "  entry {} at {} ({}): policy {}",
                c.seq,
                crate::timefmt::utc(c.time),
                crate::out::escape(&c.reason),
                crate::out::escape(&c.policy_hash)
            );
        }
    }
}
