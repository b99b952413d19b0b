//! Per-caller, per-mailbox rate limits (token buckets), bulk-read flagging, and per-caller
//! limits on out-of-region denials.
//!
//! An in-region caller may unwrap without an approval, so a quiet bulk export through an
//! in-region gateway is slowed by the buckets and made visible by the `bulk` flag (raised when
//! one caller touches more distinct mailboxes within a minute than the configured threshold).
//!
//! An out-of-region caller gets nothing without an approval, but each item it sends is a
//! decision on the log: a caller whose out-of-region items keep being denied (probing
//! candidate mailboxes, approvals or stanzas) empties its denial bucket, and then every
//! out-of-region item it sends is denied `rate_limited`, approved or not, until the bucket
//! refills. A region whose CA can mint certificates at will could sidestep a per-certificate
//! bucket, so each calling region also has one, four times as large and as fast, shared by
//! all its callers.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Limits, from the config's `[limits]` table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Sustained unwraps per minute per (caller, mailbox).
    pub per_mailbox_per_minute: u32,
    /// Burst size per (caller, mailbox).
    pub per_mailbox_burst: u32,
    /// Distinct mailboxes per caller per minute above which reads are flagged `bulk`.
    pub bulk_mailboxes_per_minute: u32,
    /// Sustained out-of-region denials per minute per caller.
    pub out_of_region_denials_per_minute: u32,
    /// Burst of out-of-region denials per caller.
    pub out_of_region_denial_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_mailbox_per_minute: 6000,
            per_mailbox_burst: 2000,
            bulk_mailboxes_per_minute: 500,
            out_of_region_denials_per_minute: 120,
            out_of_region_denial_burst: 2048,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: f64,
}

impl Bucket {
    /// Refills at `rate` per second up to `burst`, as of `now`.
    fn refill(&mut self, now: f64, rate: f64, burst: f64) {
        self.tokens = (self.tokens + (now - self.at).max(0.0) * rate).min(burst);
        // Never back in time: requests read the clock before they take the lock, so an
        // earlier `now` may arrive after a later one, and the next refill must not count the
        // same seconds twice.
        self.at = self.at.max(now);
    }
}

/// Most buckets of one kind kept before full ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Default)]
struct Window {
    minute: u64,
    mailboxes: HashSet<String>,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<([u8; 32], String), Bucket>,
    windows: HashMap<[u8; 32], Window>,
    denials: HashMap<[u8; 32], Bucket>,
    region_denials: HashMap<String, Bucket>,
    /// When each calling region's last throttled refusal was logged.
    notes: HashMap<String, f64>,
}

/// How often a throttled region's refusals are logged (seconds).
const NOTE_EVERY: f64 = 60.0;

/// How much larger (capacity and refill) a region's denial bucket is than a caller's.
const REGION_FACTOR: f64 = 4.0;

/// The limiter. Time is passed in (seconds, fractional) so tests control it.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    state: Mutex<State>,
}

/// Result of asking the limiter about one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether the item is within its bucket.
    pub allowed: bool,
    /// Whether the caller is reading many mailboxes (flag the decision).
    pub bulk: bool,
}

impl RateLimiter {
    /// A limiter with `limits`.
    #[must_use]
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes one token for (`caller`, `mailbox`) at time `now` (seconds).
    pub fn admit(&self, caller: &[u8; 32], mailbox: &str, now: f64) -> Admission {
        let Ok(mut st) = self.state.lock() else {
            return Admission {
                allowed: false,
                bulk: true,
            };
        };
        let rate = f64::from(self.limits.per_mailbox_per_minute) / 60.0;
        let burst = f64::from(self.limits.per_mailbox_burst.max(1));
        if st.buckets.len() > MAX_BUCKETS {
            // Forget full buckets: they are indistinguishable from new ones.
            st.buckets
                .retain(|_, b| b.tokens + (now - b.at) * rate < burst);
        }
        let b = st
            .buckets
            .entry((*caller, mailbox.to_owned()))
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        b.refill(now, rate, burst);
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a finite, positive number of minutes since 1970"
        )]
        let minute = if now.is_finite() && now > 0.0 {
            (now / 60.0) as u64
        } else {
            0
        };
        let w = st.windows.entry(*caller).or_default();
        if w.minute != minute {
            w.minute = minute;
            w.mailboxes.clear();
        }
        if w.mailboxes.len() <= self.limits.bulk_mailboxes_per_minute as usize {
            w.mailboxes.insert(mailbox.to_owned());
        }
        let bulk = w.mailboxes.len() > self.limits.bulk_mailboxes_per_minute as usize;
        Admission { allowed, bulk }
    }

    fn denial_rates(&self) -> (f64, f64) {
        (
            f64::from(self.limits.out_of_region_denials_per_minute.max(1)) / 60.0,
            f64::from(self.limits.out_of_region_denial_burst.max(1)),
        )
    }

    /// Whether `caller` of `region` may have an out-of-region item decided at `now`: false
    /// while its out-of-region denials, or its region's, have emptied their bucket.
    pub fn out_of_region_open(&self, caller: &[u8; 32], region: &str, now: f64) -> bool {
        self.denials_left(caller, region, now) >= 1
    }

    /// How many more denials `caller` of `region` may have at `now`: the smaller of its own
    /// bucket and its region's, whole tokens only. A request of more items than this from a
    /// caller not entitled to its route is refused whole, so no request logs more denials
    /// than the buckets hold.
    pub fn denials_left(&self, caller: &[u8; 32], region: &str, now: f64) -> usize {
        let Ok(mut st) = self.state.lock() else {
            return 0;
        };
        let (rate, burst) = self.denial_rates();
        let own = st.denials.get_mut(caller).map_or(burst, |b| {
            b.refill(now, rate, burst);
            b.tokens
        });
        let shared = st
            .region_denials
            .get_mut(region)
            .map_or(burst * REGION_FACTOR, |b| {
                b.refill(now, rate * REGION_FACTOR, burst * REGION_FACTOR);
                b.tokens
            });
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "tokens are between 0 and the burst, which fits"
        )]
        let left = own.min(shared).floor().max(0.0) as usize;
        left
    }

    /// Whether a refusal of `region`'s caller for being throttled should go on the log at
    /// `now`: at most once a minute per calling region (regions are the configured CAs', a
    /// bounded set), so throttled callers cannot grow the log; the rest are counted only.
    pub fn throttle_note_due(&self, region: &str, now: f64) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return true;
        };
        match st.notes.get_mut(region) {
            Some(at) if now - *at < NOTE_EVERY => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                st.notes.insert(region.to_owned(), now);
                true
            }
        }
    }

    /// Charges `caller` of `region`, and the region, one out-of-region denial at `now`.
    pub fn charge_denial(&self, caller: &[u8; 32], region: &str, now: f64) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let (rate, burst) = self.denial_rates();
        if st.denials.len() > MAX_BUCKETS {
            // Forget full buckets (rate >= 1/min, so every bucket fills in time).
            st.denials
                .retain(|_, b| b.tokens + (now - b.at) * rate < burst);
        }
        let take = |b: &mut Bucket, rate: f64, burst: f64| {
            b.refill(now, rate, burst);
            b.tokens = (b.tokens - 1.0).max(0.0);
        };
        let b = st.denials.entry(*caller).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        take(b, rate, burst);
        let r = st
            .region_denials
            .entry(region.to_owned())
            .or_insert(Bucket {
                tokens: burst * REGION_FACTOR,
                at: now,
            });
        take(r, rate * REGION_FACTOR, burst * REGION_FACTOR);
    }

    /// Takes `n` denials from `caller`'s bucket and its region's at once, if both hold them
    /// now; else takes nothing. Checked and taken under one lock, so concurrent requests
    /// cannot each pass a check against the same tokens: no request logs more denials than
    /// the buckets held when it was admitted.
    pub fn reserve_denials(&self, caller: &[u8; 32], region: &str, n: usize, now: f64) -> bool {
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let (rate, burst) = self.denial_rates();
        if st.denials.len() > MAX_BUCKETS {
            st.denials
                .retain(|_, b| b.tokens + (now - b.at) * rate < burst);
        }
        #[allow(clippy::cast_precision_loss, reason = "n is at most a batch (1024)")]
        let want = n as f64;
        let own = st.denials.entry(*caller).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        own.refill(now, rate, burst);
        let own_ok = own.tokens >= want;
        let shared = st
            .region_denials
            .entry(region.to_owned())
            .or_insert(Bucket {
                tokens: burst * REGION_FACTOR,
                at: now,
            });
        shared.refill(now, rate * REGION_FACTOR, burst * REGION_FACTOR);
        if !own_ok || shared.tokens < want {
            return false;
        }
        shared.tokens -= want;
        if let Some(own) = st.denials.get_mut(caller) {
            own.tokens -= want;
        }
        true
    }

    /// Gives back `n` reserved denials that were not needed (items that were allowed).
    pub fn refund_denials(&self, caller: &[u8; 32], region: &str, n: usize) {
        if n == 0 {
            return;
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let (_, burst) = self.denial_rates();
        #[allow(clippy::cast_precision_loss, reason = "n is at most a batch (1024)")]
        let back = n as f64;
        if let Some(b) = st.denials.get_mut(caller) {
            b.tokens = (b.tokens + back).min(burst);
        }
        if let Some(b) = st.region_denials.get_mut(region) {
            b.tokens = (b.tokens + back).min(burst * REGION_FACTOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let rl = RateLimiter::new(RateLimits {
            per_mailbox_per_minute: 60,
            per_mailbox_burst: 3,
            bulk_mailboxes_per_minute: 100,
            ..RateLimits::default()
        });
        let c = [1; 32];
        for _ in 0..3 {
            assert!(rl.admit(&c, "m", 100.0).allowed);
        }
        assert!(!rl.admit(&c, "m", 100.0).allowed);
        assert!(rl.admit(&c, "other", 100.0).allowed, "per mailbox");
        assert!(rl.admit(&[2; 32], "m", 100.0).allowed, "per caller");
        assert!(rl.admit(&c, "m", 101.5).allowed, "refills at 1/s");
    }

    #[test]
    fn many_mailboxes_are_flagged_bulk() {
        let rl = RateLimiter::new(RateLimits {
            per_mailbox_per_minute: 60,
            per_mailbox_burst: 3,
            bulk_mailboxes_per_minute: 5,
            ..RateLimits::default()
        });
        let c = [1; 32];
        let flags: Vec<bool> = (0..7)
            .map(|i| rl.admit(&c, &format!("m{i}"), 120.0).bulk)
            .collect();
        assert_eq!(flags, [false, false, false, false, false, true, true]);
        assert!(!rl.admit(&c, "m0", 180.0).bulk, "new minute");
    }

    #[test]
    fn out_of_region_denials_close_the_caller_until_they_refill() {
        let rl = RateLimiter::new(RateLimits {
            out_of_region_denials_per_minute: 60,
            out_of_region_denial_burst: 3,
            ..RateLimits::default()
        });
        let (c, other) = ([1; 32], [2; 32]);
        for _ in 0..3 {
            assert!(rl.out_of_region_open(&c, "us", 100.0));
            rl.charge_denial(&c, "us", 100.0);
        }
        assert!(!rl.out_of_region_open(&c, "us", 100.0));
        assert!(!rl.out_of_region_open(&c, "us", 100.5));
        assert!(rl.out_of_region_open(&other, "us", 100.0), "per caller");
        assert!(rl.out_of_region_open(&c, "us", 101.0), "refills at 1/s");
        rl.charge_denial(&c, "us", 101.0);
        assert!(!rl.out_of_region_open(&c, "us", 101.0));
        // Denials while closed keep it closed (no debt below zero, no overflow).
        for _ in 0..10 {
            rl.charge_denial(&c, "us", 101.0);
        }
        assert!(rl.out_of_region_open(&c, "us", 102.0));
    }

    #[test]
    fn fresh_certificates_of_one_region_share_its_bucket() {
        let rl = RateLimiter::new(RateLimits {
            out_of_region_denials_per_minute: 60,
            out_of_region_denial_burst: 2,
            ..RateLimits::default()
        });
        // Each fresh certificate spends its own 2, all of them the region's 8.
        for i in 0..4u8 {
            let c = [i; 32];
            for _ in 0..2 {
                assert!(rl.out_of_region_open(&c, "us", 100.0));
                rl.charge_denial(&c, "us", 100.0);
            }
        }
        assert!(
            !rl.out_of_region_open(&[9; 32], "us", 100.0),
            "region empty"
        );
        assert!(
            rl.out_of_region_open(&[9; 32], "fr", 100.0),
            "another region"
        );
        // The region refills at 4/s.
        assert!(rl.out_of_region_open(&[9; 32], "us", 100.25));
    }

    #[test]
    fn throttled_refusals_are_noted_once_a_minute_per_region() {
        let l = RateLimiter::new(RateLimits::default());
        assert!(l.throttle_note_due("us", 0.0));
        assert!(!l.throttle_note_due("us", 59.0));
        assert!(l.throttle_note_due("eu", 59.0));
        assert!(l.throttle_note_due("us", 60.5));
        assert!(!l.throttle_note_due("us", 61.0));
    }

    #[test]
    fn reservations_are_all_or_nothing_and_refunds_give_back() {
        let rl = RateLimiter::new(RateLimits {
            out_of_region_denial_burst: 6,
            out_of_region_denials_per_minute: 1,
            ..RateLimits::default()
        });
        let c = [3; 32];
        assert!(!rl.reserve_denials(&c, "us", 7, 0.0), "more than the burst");
        assert!(rl.reserve_denials(&c, "us", 4, 0.0));
        assert!(!rl.reserve_denials(&c, "us", 3, 0.0), "only 2 left");
        assert_eq!(rl.denials_left(&c, "us", 0.0), 2);
        rl.refund_denials(&c, "us", 3);
        assert_eq!(rl.denials_left(&c, "us", 0.0), 5);
        // The region's bucket (4 x 6 = 24, 23 after the 4 - 3 above) binds fresh callers too.
        for i in 0..3u8 {
            assert!(rl.reserve_denials(&[10 + i; 32], "us", 6, 0.0));
        }
        assert!(
            !rl.reserve_denials(&[20; 32], "us", 6, 0.0),
            "the region holds 5"
        );
        assert!(rl.reserve_denials(&[20; 32], "us", 5, 0.0));
        assert!(!rl.reserve_denials(&[21; 32], "us", 1, 0.0), "region spent");
        // A request that read the clock earlier but took the lock later refills nothing twice.
        // (The region refills at 4 a minute.)
        assert_eq!(rl.denials_left(&[22; 32], "us", 60.0), 4);
        assert_eq!(rl.denials_left(&[22; 32], "us", 30.0), 4);
        assert_eq!(rl.denials_left(&[22; 32], "us", 60.0), 4);
    }
}
