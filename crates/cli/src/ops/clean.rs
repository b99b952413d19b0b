//! `custodia clean`: [`custodia_gateway::ops::clean`] over a bucket, with a summary (`--json`
//! for machines).

use std::time::Duration;

use clap::Args;

use super::{Where, job_error, runtime, scope};
use crate::failure::{CliResult, Failure};

/// `custodia clean`.
#[derive(Debug, Args)]
pub(crate) struct CleanArgs {
    #[command(flatten)]
    pub(crate) at: Where,
    /// Only what is older than this many days (uploads by their start, records by their last
    /// change): an upload or overwrite still in flight is never touched. 0 removes every
    /// orphan now (only when nothing writes to the bucket).
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub(crate) older_than: u32,
    /// Report what would be removed; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `custodia clean`.
pub(crate) fn clean(args: &CleanArgs) -> CliResult {
    let scope = scope(&args.at)?;
    let age = Duration::from_secs(u64::from(args.older_than) * 86_400);
    let summary = runtime()?
        .block_on(custodia_gateway::ops::clean::clean(
            &scope,
            age,
            args.dry_run,
        ))
        .map_err(job_error)?;
    if args.json {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| Failure::failed(format!("summary: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    say!(
        "clean of {} (older than {} day(s)){}",
        crate::out::escape(&args.at.bucket),
        args.older_than,
        if args.dry_run { ", dry run" } else { "" }
    );
    say!(
        "  uploads: {} {}, {} younger kept",
        if args.dry_run {
            "would abort"
        } else {
            "aborted"
        },
        summary.uploads_aborted,
        summary.uploads_young
    );
    say!(
        "  records: {verb} {} layout record(s) and {} upload record(s); {} younger kept",
        summary.layout_records,
        summary.upload_records,
        summary.records_young
    );
    for note in &summary.notes {
        say!("note: {}", crate::out::escape_controls(note));
    }
    Ok(())
}
