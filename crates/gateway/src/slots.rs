//! Request slots of one front: at most `limits.max_concurrent_requests` reads (GET, HEAD) and
//! as many writes (every other method) at once, counted apart. A read may wait on a custodian
//! (up to `limits.custodian_timeout_secs`); counting reads apart means a custodian that hangs
//! can fill only the read slots, and writes, which need no custodian, keep being served. A
//! read waits for a slot only so long (`read_wait`), then is answered 503: reads of a region
//! whose custodian hangs must not hold up reads of every other region for longer than that.
//! A write waits at most [`WRITE_WAIT`]: slow uploads hold write slots only until their body
//! goes idle (`limits.idle_timeout_secs`), and a write that finds none in that time is told
//! to retry (503) rather than left hanging.

use std::time::Duration;

use http::Method;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The longest a write waits for a slot before it is answered 503.
pub const WRITE_WAIT: Duration = Duration::from_secs(60);

/// The two pools of slots.
#[derive(Debug)]
pub struct Slots {
    reads: Semaphore,
    writes: Semaphore,
    read_wait: Duration,
}

/// Whether a request takes a read or a write slot.
#[must_use]
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

impl Slots {
    /// `per_kind` slots for reads and as many for writes; a read waits at most `read_wait`
    /// for one.
    #[must_use]
    pub fn new(per_kind: usize, read_wait: Duration) -> Self {
        Self {
            reads: Semaphore::new(per_kind.max(1)),
            writes: Semaphore::new(per_kind.max(1)),
            read_wait,
        }
    }

    /// Waits for a slot of the kind `method` takes; held until the permit is dropped.
    /// `None` if the slots were closed, or for a read that found none within `read_wait` (a
    /// write within [`WRITE_WAIT`]).
    pub async fn acquire(&self, method: &Method) -> Option<SemaphorePermit<'_>> {
        if is_read(method) {
            tokio::time::timeout(self.read_wait, self.reads.acquire())
                .await
                .ok()?
                .ok()
        } else {
            tokio::time::timeout(WRITE_WAIT, self.writes.acquire())
                .await
                .ok()?
                .ok()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[tokio::test]
    async fn reads_never_take_the_slots_of_writes() {
        let slots = Slots::new(2, Duration::from_millis(300));
        let r1 = slots.acquire(&Method::GET).await.unwrap();
        let r2 = slots.acquire(&Method::HEAD).await.unwrap();
        // Both read slots are held (by reads waiting on a custodian, say): a write still gets
        // one at once, and another read waits.
        let w = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            slots.acquire(&Method::PUT),
        )
        .await
        .unwrap();
        assert!(w.is_some());
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_millis(50),
                slots.acquire(&Method::GET)
            )
            .await
            .is_err()
        );
        // A read waits only so long for a slot.
        let t = std::time::Instant::now();
        assert!(slots.acquire(&Method::GET).await.is_none());
        assert!(t.elapsed() >= Duration::from_millis(250));
        drop((r1, r2));
        assert!(slots.acquire(&Method::GET).await.is_some());
    }
}
