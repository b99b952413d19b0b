//! The transparency report: what the custodian decided over a month or a quarter, counted
//! by operation, caller region, outcome and whether an approval was used, with small counts
//! banded, and every change of policy in the period. It names no mailbox and carries no
//! commitment or tag; it cites the checkpoint it was built from so that anyone can recount
//! from the public log.

use core::fmt;
use core::str::FromStr;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::entry::PublicEntry;
use crate::decision_log::Outcome;
use crate::{Error, Result};

/// Seconds per day.
const DAY: i64 = 86_400;

/// A reporting period, in UTC: a calendar month (`2026-11`) or quarter (`2026-Q4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// A calendar month.
    Month {
        /// The year (1970 to 9999 when parsed).
        year: i32,
        /// The month, 1 to 12.
        month: u8,
    },
    /// A calendar quarter: Q1 = January to March, ..., Q4 = October to December.
    Quarter {
        /// The year (1970 to 9999 when parsed).
        year: i32,
        /// The quarter, 1 to 4.
        quarter: u8,
    },
}

/// Days from 1970-01-01 to the civil date `y-m-d` (proleptic Gregorian; H. Hinnant's
/// `days_from_civil`). `m` is 1 to 12.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Unix seconds at 00:00 UTC on the first of the month `month0` months after January of
/// year 0 (months beyond December roll into later years), clamped to 0.
fn month_start(month0: i64) -> u64 {
    let days = days_from_civil(month0.div_euclid(12), month0.rem_euclid(12) + 1, 1);
    u64::try_from(days * DAY).unwrap_or(0)
}

impl Period {
    /// The period's first month (counted from January of year 0) and its length in months.
    fn months(&self) -> (i64, i64) {
        match *self {
            Self::Month { year, month } => (i64::from(year) * 12 + i64::from(month) - 1, 1),
            Self::Quarter { year, quarter } => {
                (i64::from(year) * 12 + (i64::from(quarter) - 1) * 3, 3)
            }
        }
    }

    /// The period as Unix seconds `[start, end)`, UTC. Periods before 1970 clamp to 0.
    #[must_use]
    pub fn bounds(&self) -> (u64, u64) {
        let (first, len) = self.months();
        (month_start(first), month_start(first + len))
    }

    /// Whether Unix time `t` falls in the period.
    #[must_use]
    pub fn contains(&self, t: u64) -> bool {
        let (start, end) = self.bounds();
        (start..end).contains(&t)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Self::Quarter { year, quarter } => write!(f, "{year:04}-Q{quarter}"),
        }
    }
}

fn digits(s: &str, len: usize) -> Option<u32> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

impl FromStr for Period {
    type Err = Error;

    /// Parses `YYYY-MM` (month 01 to 12) or `YYYY-QN` (quarter 1 to 4), year 1970 to 9999.
    fn from_str(s: &str) -> Result<Self> {
        let refuse = || {
            Error::Protocol(format!(
                "audit: period {s:?} is not YYYY-MM or YYYY-Q1..Q4 (from 1970)"
            ))
        };
        let (year, rest) = s.split_once('-').ok_or_else(refuse)?;
        let year = digits(year, 4)
            .filter(|y| *y >= 1970)
            .and_then(|y| i32::try_from(y).ok())
            .ok_or_else(refuse)?;
        if let Some(q) = rest.strip_prefix('Q') {
            let quarter = digits(q, 1)
                .filter(|q| (1..=4).contains(q))
                .and_then(|q| u8::try_from(q).ok())
                .ok_or_else(refuse)?;
            Ok(Self::Quarter { year, quarter })
        } else {
            let month = digits(rest, 2)
                .filter(|m| (1..=12).contains(m))
                .and_then(|m| u8::try_from(m).ok())
                .ok_or_else(refuse)?;
            Ok(Self::Month { year, month })
        }
    }
}

/// A count as published: exact when 0 or at least 10, otherwise the band `1-9`, so that
/// the report does not single out rare events (one mailbox, one approval).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Count(pub String);

impl Count {
    /// The published form of `n`.
    #[must_use]
    pub fn of(n: u64) -> Self {
        match n {
            1..=9 => Self("1-9".into()),
            _ => Self(n.to_string()),
        }
    }
}

/// One group of decisions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReportRow {
    /// The operation (`unwrap`, `rewrap`, ...).
    pub operation: String,
    /// The callers' region.
    pub caller_region: String,
    /// `allow` or `deny`.
    pub outcome: String,
    /// Whether an approval was used.
    pub with_approval: bool,
    /// How many (banded).
    pub count: Count,
}

/// A transparency report for one period.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The period (`2026-11`, `2026-Q4`).
    pub period: String,
    /// The signed checkpoint the report was built from (its log prefix is what was counted).
    pub checkpoint: String,
    /// The checkpoint's size: only entries with `seq < log_size` were counted.
    pub log_size: u64,
    /// Non-empty groups, sorted by operation, region, outcome, then approval (false first).
    pub rows: Vec<ReportRow>,
    /// How many distinct (approval, mailbox) pairs had keys released under the approval:
    /// distinct (`approval_id`, `use_tag`) among allowed `unwrap` entries (for entries written
    /// before use tags, their `mailbox_commitment` stands in for the tag). Denials do not
    /// count, so a caller cannot raise it by asking for candidate mailboxes. A mailbox
    /// released under two approvals counts twice: the public log cannot tell it is one.
    pub approval_mailbox_pairs: Count,
    /// The policy entries of the period whose policy differs from the one before it in the
    /// log (the first policy entry of the log is a change), in log order.
    pub policy_changes: Vec<PolicyChange>,
}

/// A change of policy, as the log records it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// The `policy` entry's position in the log.
    pub seq: u64,
    /// Its time, Unix seconds.
    pub time: u64,
    /// `start` or `reload`.
    pub reason: String,
    /// The hash of the policy now in force.
    pub policy_hash: String,
}

/// The outcome as in the JSON of entries.
fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
    }
}

/// The counts of one period, built up entry by entry: the log is counted once, and a report
/// at a later checkpoint only adds the entries appended since ([`Tally::add`]).
#[derive(Clone, Debug)]
pub struct Tally {
    period: Period,
    bounds: (u64, u64),
    /// How many leading entries of the log have been added.
    counted: u64,
    groups: BTreeMap<(String, String, &'static str, bool), u64>,
    approval_pairs: BTreeSet<(String, String)>,
    /// The hash of the last policy entry counted (in or before the period).
    policy: Option<String>,
    policy_changes: Vec<PolicyChange>,
}

impl Tally {
    /// Nothing counted yet.
    #[must_use]
    pub fn new(period: Period) -> Self {
        Self {
            period,
            bounds: period.bounds(),
            counted: 0,
            groups: BTreeMap::new(),
            approval_pairs: BTreeSet::new(),
            policy: None,
            policy_changes: Vec::new(),
        }
    }

    /// The period counted.
    #[must_use]
    pub fn period(&self) -> Period {
        self.period
    }

    /// How many leading entries of the log have been added.
    #[must_use]
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// Adds the log's next entry (entry number [`Tally::counted`]); it is counted if its time
    /// falls in the period (a policy entry before the period is remembered, to tell whether
    /// the first one in the period changes anything).
    pub fn add(&mut self, e: &PublicEntry) {
        self.counted += 1;
        let in_period = (self.bounds.0..self.bounds.1).contains(&e.time);
        if let (true, Some(hash)) = (e.operation == "policy", &e.policy_hash)
            && self.policy.as_ref() != Some(hash)
        {
            if in_period {
                self.policy_changes.push(PolicyChange {
                    seq: e.seq,
                    time: e.time,
                    reason: e.reason.clone(),
                    policy_hash: hash.clone(),
                });
            }
            self.policy = Some(hash.clone());
        }
        if !in_period {
            return;
        }
        let with_approval = e.approval_id.is_some();
        let key = (
            e.operation.clone(),
            e.caller_region.clone(),
            outcome_name(e.outcome),
            with_approval,
        );
        *self.groups.entry(key).or_default() += 1;
        if let (Some(id), Outcome::Allow, "unwrap") =
            (&e.approval_id, e.outcome, e.operation.as_str())
            && let Some(tag) = e.use_tag.as_ref().or(e.mailbox_commitment.as_ref())
        {
            self.approval_pairs.insert((id.clone(), tag.clone()));
        }
    }

    /// The report of what was counted, citing `checkpoint_note` (whose size should be
    /// [`Tally::counted`]).
    #[must_use]
    pub fn report(&self, checkpoint_note: &str) -> Report {
        Report {
            period: self.period.to_string(),
            checkpoint: checkpoint_note.to_owned(),
            log_size: self.counted,
            rows: self
                .groups
                .iter()
                .map(
                    |((operation, caller_region, outcome, with_approval), n)| ReportRow {
                        operation: operation.clone(),
                        caller_region: caller_region.clone(),
                        outcome: (*outcome).to_owned(),
                        with_approval: *with_approval,
                        count: Count::of(*n),
                    },
                )
                .collect(),
            approval_mailbox_pairs: Count::of(self.approval_pairs.len() as u64),
            policy_changes: self.policy_changes.clone(),
        }
    }
}

/// Builds the report of `period` from the public entries with `seq < log_size` (the prefix
/// `checkpoint_note` covers) and a time within the period. No mailbox id, commitment or tag
/// appears in the report.
#[must_use]
pub fn build_report(
    entries: &[PublicEntry],
    period: Period,
    checkpoint_note: &str,
    log_size: u64,
) -> Report {
    let mut tally = Tally::new(period);
    for e in entries.iter().filter(|e| e.seq < log_size) {
        tally.add(e);
    }
    let mut report = tally.report(checkpoint_note);
    report.log_size = log_size;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::{mailbox_commitment, use_tag};
    use crate::audit::testlog::{COMMITMENT_KEY, T0, build, mailbox_of};

    const NOV_2026: u64 = 1_793_491_200;
    const DEC_2026: u64 = 1_796_083_200;
    const OCT_2026: u64 = 1_790_812_800;
    const JAN_2027: u64 = 1_798_761_600;

    fn p(s: &str) -> Period {
        s.parse().unwrap()
    }

    fn is_leap(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    #[test]
    fn periods_parse_display_and_bound() {
        assert_eq!(
            p("2026-11"),
            Period::Month {
                year: 2026,
                month: 11
            }
        );
        assert_eq!(p("2026-11").bounds(), (NOV_2026, DEC_2026));
        assert_eq!(p("2026-Q4").bounds(), (OCT_2026, JAN_2027));
        assert_eq!(p("2026-12").bounds(), (DEC_2026, JAN_2027));
        assert_eq!(p("1970-01").bounds(), (0, 31 * 86_400));
        for s in [
            "2026-11", "2026-Q4", "1970-01", "2024-02", "9999-12", "2000-Q1",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        // Leap years.
        let days = |s: &str| {
            let (a, b) = p(s).bounds();
            (b - a) / 86_400
        };
        assert_eq!(days("2024-02"), 29);
        assert_eq!(days("2023-02"), 28);
        assert_eq!(days("2000-02"), 29);
        assert_eq!(days("2100-02"), 28);
        assert_eq!(days("2024-Q1"), 91);
        assert_eq!(days("2026-Q1"), 90);
        assert_eq!(days("2026-Q3"), 92);
        assert!(p("2026-11").contains(NOV_2026));
        assert!(!p("2026-11").contains(DEC_2026));
        assert!(!p("2026-11").contains(NOV_2026 - 1));
        for bad in [
            "",
            "2026",
            "2026-",
            "2026-1",
            "2026-13",
            "2026-00",
            "2026-011",
            "2026-Q0",
            "2026-Q5",
            "2026-q4",
            "2026-Q",
            "2026-Q14",
            "26-11",
            "+2026-11",
            " 2026-11",
            "2026-11 ",
            "2026/11",
            "1969-12",
            "2026-11-01",
            "20261-01",
            "2026-+1",
            "２０２６-11",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn civil_days_match_a_day_by_day_count() {
        const LEN: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut day = 0i64;
        for y in 1970..2200 {
            for m in 1..=12 {
                assert_eq!(days_from_civil(y, m, 1), day, "{y}-{m}");
                day += LEN[usize::try_from(m - 1).unwrap()] + i64::from(m == 2 && is_leap(y));
            }
        }
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // Out-of-range fields from a hand-built Period do not panic.
        let odd = Period::Month {
            year: 2026,
            month: 13,
        };
        assert_eq!(odd.bounds(), (JAN_2027, p("2027-01").bounds().1));
        let early = Period::Quarter {
            year: 1969,
            quarter: 0,
        };
        assert_eq!(early.bounds(), (0, 0));
    }

    #[test]
    fn counts_are_banded() {
        assert_eq!(Count::of(0).0, "0");
        for n in 1..=9 {
            assert_eq!(Count::of(n).0, "1-9");
        }
        assert_eq!(Count::of(10).0, "10");
        assert_eq!(Count::of(12_345).0, "12345");
        assert_eq!(serde_json::to_string(&Count::of(3)).unwrap(), "\"1-9\"");
    }

    fn entry(seq: u64, time: u64, op: &str, region: &str, deny: bool) -> PublicEntry {
        PublicEntry {
            seq,
            batch: seq,
            time,
            operation: op.into(),
            caller_region: region.into(),
            caller_name: "gw".into(),
            outcome: if deny { Outcome::Deny } else { Outcome::Allow },
            reason: "in_region".into(),
            approval_id: None,
            key_version: None,
            mailbox_commitment: None,
            use_tag: None,
            policy_hash: None,
            flags: vec![],
        }
    }

    #[test]
    fn denials_under_an_approval_do_not_count_as_mailboxes_with_an_approval() {
        let c = |m: &str| Some(use_tag(&COMMITMENT_KEY, "a", m));
        let mut es = Vec::new();
        // One release under an approval, then 25 denied candidates under the used-up approval.
        let mut e = entry(0, NOV_2026, "unwrap", "us", false);
        e.approval_id = Some("a".into());
        e.use_tag = c("aoife@example.ie");
        es.push(e);
        for i in 0..25u64 {
            let mut e = entry(0, NOV_2026 + 1 + i, "unwrap", "us", true);
            e.seq = i + 1;
            e.batch = i + 1;
            e.approval_id = Some("a".into());
            e.mailbox_commitment = Some(format!("{i:064x}"));
            es.push(e);
        }
        let r = build_report(&es, p("2026-11"), "cp\n", es.len() as u64);
        assert_eq!(r.approval_mailbox_pairs, Count("1-9".into()));
    }

    #[test]
    fn approval_pairs_count_tags_and_legacy_commitments() {
        let mut es = Vec::new();
        // 12 releases of 12 mailboxes under one approval, written with use tags; the same
        // tag again (a second batch) counts once; 3 older entries with commitments only.
        for i in 0..14u64 {
            let mut e = entry(i, NOV_2026 + i, "unwrap", "us", false);
            e.approval_id = Some("a".into());
            e.use_tag = Some(use_tag(&COMMITMENT_KEY, "a", &format!("m{}", i.min(11))));
            es.push(e);
        }
        for i in 0..3u64 {
            let mut e = entry(14 + i, NOV_2026 + 20 + i, "unwrap", "us", false);
            e.approval_id = Some("b".into());
            e.mailbox_commitment = Some(mailbox_commitment(&COMMITMENT_KEY, "m1"));
            es.push(e);
        }
        let r = build_report(&es, p("2026-11"), "cp\n", es.len() as u64);
        assert_eq!(r.approval_mailbox_pairs, Count("13".into()));
    }

    #[test]
    fn policy_changes_are_listed_when_the_hash_changes() {
        let policy = |seq: u64, time: u64, reason: &str, hash: u8| {
            let mut e = entry(seq, time, "policy", "ie", false);
            e.reason = reason.into();
            e.policy_hash = Some(hex::encode([hash; 32]));
            e
        };
        let es = vec![
            policy(0, OCT_2026, "start", 1),
            // The same policy at the start of the period: no change.
            policy(1, NOV_2026 + 1, "start", 1),
            policy(2, NOV_2026 + 2, "reload", 2),
            policy(3, NOV_2026 + 3, "reload", 2),
            policy(4, NOV_2026 + 4, "start", 1),
            policy(5, DEC_2026 + 4, "reload", 3),
        ];
        let r = build_report(&es, p("2026-11"), "cp\n", es.len() as u64);
        let got: Vec<(u64, &str)> = r
            .policy_changes
            .iter()
            .map(|c| (c.seq, c.reason.as_str()))
            .collect();
        assert_eq!(got, [(2, "reload"), (4, "start")]);
        assert_eq!(r.policy_changes[0].policy_hash, hex::encode([2u8; 32]));
        // The first policy entry of a log is a change.
        let oct = build_report(&es, p("2026-10"), "cp\n", es.len() as u64);
        assert_eq!(oct.policy_changes.len(), 1);
        // Counted incrementally, the same.
        let mut tally = Tally::new(p("2026-11"));
        for e in &es[..3] {
            tally.add(e);
        }
        for e in &es[3..] {
            tally.add(e);
        }
        assert_eq!(tally.report("cp\n").policy_changes, r.policy_changes);
    }

    #[test]
    fn groups_bands_and_distinct_mailboxes() {
        let c = |m: &str| Some(mailbox_commitment(&COMMITMENT_KEY, m));
        let mut es = Vec::new();
        let mut push = |mut e: PublicEntry| {
            e.seq = es.len() as u64;
            e.batch = e.seq;
            es.push(e);
        };
        // 12 eu unwrap allows over 12 mailboxes; 3 more with an approval over 2 mailboxes.
        for i in 0..12 {
            let mut e = entry(0, NOV_2026 + i, "unwrap", "eu", false);
            e.mailbox_commitment = c(&format!("m{i}"));
            push(e);
        }
        for i in 0..3 {
            let mut e = entry(0, NOV_2026 + 100 + i, "unwrap", "eu", false);
            e.approval_id = Some("a".into());
            e.use_tag = Some(use_tag(&COMMITMENT_KEY, "a", &format!("m{}", i % 2)));
            push(e);
        }
        // 2 us rewrap denials; 1 rotate (no mailbox); last second of the month.
        push(entry(0, NOV_2026 + 5, "rewrap", "us", true));
        push(entry(0, NOV_2026 + 6, "rewrap", "us", true));
        push(entry(0, DEC_2026 - 1, "rotate", "eu", false));
        // Outside the period (both sides) and beyond the log size: not counted.
        push(entry(0, NOV_2026 - 1, "unwrap", "eu", true));
        push(entry(0, DEC_2026, "unwrap", "eu", true));
        let in_period_late = entry(0, NOV_2026 + 7, "destroy", "eu", false);
        push(in_period_late);
        let log_size = es.len() as u64 - 1;

        let r = build_report(&es, p("2026-11"), "the checkpoint\n", log_size);
        assert_eq!(r.period, "2026-11");
        assert_eq!(r.checkpoint, "the checkpoint\n");
        assert_eq!(r.log_size, log_size);
        let rows: Vec<(&str, &str, &str, bool, &str)> = r
            .rows
            .iter()
            .map(|x| {
                let (o, g, c) = (&x.operation, &x.caller_region, &x.outcome);
                (
                    o.as_str(),
                    g.as_str(),
                    c.as_str(),
                    x.with_approval,
                    x.count.0.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("rewrap", "us", "deny", false, "1-9"),
                ("rotate", "eu", "allow", false, "1-9"),
                ("unwrap", "eu", "allow", false, "12"),
                ("unwrap", "eu", "allow", true, "1-9"),
            ]
        );
        assert_eq!(r.approval_mailbox_pairs, Count("1-9".into()));
        assert!(r.policy_changes.is_empty());

        // Nothing in another period.
        let empty = build_report(&es, p("2027-Q1"), "cp\n", log_size);
        assert!(empty.rows.is_empty());
        assert_eq!(empty.approval_mailbox_pairs, Count::of(0));
        // log_size 0 counts nothing.
        assert!(build_report(&es, p("2026-11"), "cp\n", 0).rows.is_empty());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), r);
    }

    #[test]
    fn report_names_no_mailbox_and_no_commitment() {
        let log = build(50);
        // The test log spans 2026-10-20 to 2026-11-13.
        assert!(log.entries.iter().any(|e| e.time >= NOV_2026));
        assert!(log.entries[0].time == T0 && T0 < NOV_2026);
        for period in ["2026-10", "2026-11", "2026-Q4"] {
            let r = build_report(&log.entries, p(period), &log.checkpoint, 50);
            assert!(!r.rows.is_empty());
            let json = serde_json::to_string_pretty(&r).unwrap();
            for i in 0..50 {
                if let Some(m) = mailbox_of(i) {
                    assert!(!json.contains(&m), "{period}: mailbox {m} in the report");
                    let c = mailbox_commitment(&COMMITMENT_KEY, &m);
                    assert!(!json.contains(&c), "{period}: a commitment in the report");
                    assert!(!json.contains(&c[..16]));
                }
            }
            for e in &log.entries {
                for tag in [&e.use_tag, &e.mailbox_commitment].into_iter().flatten() {
                    assert!(
                        !json.contains(tag.as_str()),
                        "{period}: a tag in the report"
                    );
                }
            }
            for e in &log.entries {
                if let Some(a) = &e.approval_id {
                    assert!(!json.contains(a.as_str()));
                }
            }
        }
        let q4 = build_report(&log.entries, p("2026-Q4"), &log.checkpoint, 50);
        let total: usize = q4.rows.len();
        assert!(total >= 4);
        assert!(!q4.policy_changes.is_empty());
    }
}
