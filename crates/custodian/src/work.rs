//! Who may hold the blocking threads, and for how long: every job the custodian runs off its
//! async workers (decisions with their fsync'd appends, log reads, reports) holds a place
//! here **until the job itself ends**, not until the request that started it goes away. A
//! caller that starts jobs and hangs up at once therefore cannot pile up work behind the
//! append lock: its jobs still count against the limits while they run.
//!
//! * Decisions (unwrap, rewrap, key and revocation operations) share [`WRITE_JOBS`] places,
//!   and the callers of one region may hold at most half of them, so another region's
//!   callers (the in-region gateways among them) always find places. A request waits for a
//!   place within its request timeout (a wait costs no thread).
//! * Transparency reports run one at a time and other audit reads four at a time; a read
//!   that finds no place is answered `503 busy` at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Decision jobs running or queued for a blocking thread at once, all regions together.
pub const WRITE_JOBS: usize = 64;
/// Of which the callers of one region may hold at most this many.
pub const WRITE_JOBS_PER_REGION: usize = WRITE_JOBS / 2;
/// Transparency reports at once.
pub const REPORT_JOBS: usize = 1;
/// Other audit reads at once.
pub const READ_JOBS: usize = 4;

/// A place held by one blocking job; dropped when the job ends.
#[derive(Debug)]
pub struct Place {
    _permits: Vec<OwnedSemaphorePermit>,
}

/// Which kind of log read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A transparency report (may count a whole period of the log).
    Report,
    /// Entries, proofs, details, checkpoints.
    Audit,
}

/// The limits of one custodian process.
#[derive(Debug)]
pub struct WorkLimits {
    writes: Arc<Semaphore>,
    per_region: Mutex<HashMap<String, Arc<Semaphore>>>,
    reports: Arc<Semaphore>,
    reads: Arc<Semaphore>,
}

impl Default for WorkLimits {
    fn default() -> Self {
        Self {
            writes: Arc::new(Semaphore::new(WRITE_JOBS)),
            per_region: Mutex::new(HashMap::new()),
            reports: Arc::new(Semaphore::new(REPORT_JOBS)),
            reads: Arc::new(Semaphore::new(READ_JOBS)),
        }
    }
}

impl WorkLimits {
    /// Waits for a decision place for a caller of `region` (its region's share first, then
    /// the shared pool). Cancel-safe: a request dropped while waiting holds nothing.
    ///
    /// Regions are the configured client CAs' (a bounded set), so the map stays small.
    pub async fn write(&self, region: &str) -> Place {
        let own = {
            let mut map = self
                .per_region
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(region.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(WRITE_JOBS_PER_REGION)))
                .clone()
        };
        // The semaphores are never closed, so acquiring cannot fail.
        let mut permits = Vec::with_capacity(2);
        if let Ok(p) = own.acquire_owned().await {
            permits.push(p);
        }
        if let Ok(p) = self.writes.clone().acquire_owned().await {
            permits.push(p);
        }
        Place { _permits: permits }
    }

    /// A read place now, or `None` when that kind of read is at its limit.
    #[must_use]
    pub fn read(&self, kind: Read) -> Option<Place> {
        let limit = match kind {
            Read::Report => &self.reports,
            Read::Audit => &self.reads,
        };
        limit
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| Place { _permits: vec![p] })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[tokio::test]
    async fn one_region_cannot_take_every_place_and_places_last_as_long_as_their_job() {
        let w = WorkLimits::default();
        let mut held = Vec::new();
        for _ in 0..WRITE_JOBS_PER_REGION {
            held.push(w.write("us").await);
        }
        // The US region is at its share: a further US job waits...
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), w.write("us"))
                .await
                .is_err()
        );
        // ...while Irish jobs still find places at once.
        let ie = tokio::time::timeout(std::time::Duration::from_millis(50), w.write("ie"))
            .await
            .unwrap();
        // A place moved into a job is held until the job drops it.
        let job = std::thread::spawn(move || drop(ie));
        job.join().unwrap();
        drop(held.pop());
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), w.write("us"))
                .await
                .is_ok()
        );
    }

    #[test]
    fn reads_beyond_their_limit_are_refused_at_once() {
        let w = WorkLimits::default();
        let r = w.read(Read::Report).unwrap();
        assert!(w.read(Read::Report).is_none());
        let audits: Vec<_> = (0..READ_JOBS)
            .map(|_| w.read(Read::Audit).unwrap())
            .collect();
        assert!(w.read(Read::Audit).is_none());
        drop(r);
        assert!(w.read(Read::Report).is_some());
        drop(audits);
    }
}
