//! Times on the command line: Unix seconds shown as UTC dates, and the `--not-before`,
//! `--not-after` and `--valid-for` values parsed.

use crate::failure::{CliResult, Failure};

/// Seconds since the Unix epoch, now.
pub(crate) fn now() -> u64 {
    custodia_custodian::service::unix_now()
}

/// `2026-11-05 14:03:09 UTC` (or the raw number if out of range).
pub(crate) fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(
            || format!("{secs} (Unix seconds)"),
            |t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            },
        )
}

/// The current calendar month, `YYYY-MM` (UTC): the default report period.
pub(crate) fn current_month() -> String {
    utc(now()).get(..7).unwrap_or("1970-01").to_owned()
}

/// A point in time: `now`, or Unix seconds.
pub(crate) fn parse_instant(flag: &str, value: &str) -> CliResult<u64> {
    if value == "now" {
        return Ok(now());
    }
    value.parse().map_err(|_| {
        Failure::usage(format!(
            "{flag}: {value:?} is not `now` or a number of Unix seconds"
        ))
    })
}

/// A duration: a number followed by `s`, `m`, `h` or `d` (e.g. `90m`, `24h`, `7d`).
pub(crate) fn parse_duration(flag: &str, value: &str) -> CliResult<u64> {
    let bad = || {
        Failure::usage(format!(
            "{flag}: {value:?} is not a duration like 3600s, 90m, 24h or 7d"
        ))
    };
    let split = value.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| *n > 0)
        .ok_or_else(bad)
}
