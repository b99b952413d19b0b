//! The public records held in memory, in immutable chunks: appending never copies what is
//! already stored, and a [`Snapshot`] of any prefix is taken in time independent of the log's
//! size (a clone of the chunk handles and of the short open tail). Readers that walk many
//! records — the transparency report — take a snapshot under the append lock and do their
//! work after releasing it, so they never hold up an append.

use std::sync::Arc;

/// Records per sealed chunk.
const CHUNK: usize = 1024;

/// How many records `sealed` chunks and a tail of `tail` records hold.
fn count(sealed: &[Arc<[Vec<u8>]>], tail: usize) -> u64 {
    (sealed.len() * CHUNK + tail) as u64
}

/// Every public record, in order.
#[derive(Debug, Default)]
pub struct Records {
    sealed: Vec<Arc<[Vec<u8>]>>,
    tail: Vec<Vec<u8>>,
}

/// A consistent view of the first [`Snapshot::len`] records.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    sealed: Vec<Arc<[Vec<u8>]>>,
    tail: Arc<[Vec<u8>]>,
}

impl Records {
    /// Records from `list`, in order.
    #[must_use]
    pub fn from_vec(list: Vec<Vec<u8>>) -> Self {
        let mut r = Self::default();
        for record in list {
            r.push(record);
        }
        r
    }

    /// Appends one record.
    pub fn push(&mut self, record: Vec<u8>) {
        self.tail.push(record);
        if self.tail.len() == CHUNK {
            let full = std::mem::take(&mut self.tail);
            self.sealed.push(full.into());
        }
    }

    /// How many records.
    #[must_use]
    pub fn len(&self) -> u64 {
        count(&self.sealed, self.tail.len())
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `i`.
    #[must_use]
    pub fn get(&self, i: u64) -> Option<&[u8]> {
        let i = usize::try_from(i).ok()?;
        let (chunk, at) = (i / CHUNK, i % CHUNK);
        match self.sealed.get(chunk) {
            Some(c) => c.get(at).map(Vec::as_slice),
            None if chunk == self.sealed.len() => self.tail.get(at).map(Vec::as_slice),
            None => None,
        }
    }

    /// Every record now stored, as a view that later appends do not change.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sealed: self.sealed.clone(),
            tail: self.tail.as_slice().into(),
        }
    }
}

impl Snapshot {
    /// How many records the view holds.
    #[must_use]
    pub fn len(&self) -> u64 {
        count(&self.sealed, self.tail.len())
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `start..` of the view, in order.
    pub fn iter_from(&self, start: u64) -> impl Iterator<Item = &[u8]> {
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        self.sealed
            .iter()
            .flat_map(|c| c.iter())
            .chain(self.tail.iter())
            .skip(start)
            .map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn snapshots_do_not_move_and_indexes_cross_chunks() {
        let n = CHUNK * 2 + 5;
        let mut r = Records::from_vec((0..n).map(|i| i.to_string().into_bytes()).collect());
        assert_eq!(r.len(), n as u64);
        let snap = r.snapshot();
        for i in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, n - 1] {
            assert_eq!(r.get(i as u64).unwrap(), i.to_string().as_bytes());
        }
        assert!(r.get(n as u64).is_none());
        for i in n..n + CHUNK {
            r.push(i.to_string().into_bytes());
        }
        assert_eq!(snap.len(), n as u64);
        let tail: Vec<_> = snap.iter_from(n as u64 - 2).collect();
        assert_eq!(
            tail,
            [
                (n - 2).to_string().as_bytes(),
                (n - 1).to_string().as_bytes()
            ]
        );
        assert_eq!(r.snapshot().iter_from(0).count(), n + CHUNK);
        assert_eq!(r.snapshot().iter_from(u64::MAX).count(), 0);
    }
}
