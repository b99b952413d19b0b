//! The DEK cache for reads: re-reading a hot object does not call its custodians again.
//! Bounded in entries and time; entries are keyed by object id **and** key commitment, so
//! no other object can hit them; evicted keys are zeroized (`DataKey` zeroizes on drop).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custodia_envelope::{Commitment, DataKey, ObjectId};

/// How the DEK cache behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most data keys held at once; `0` disables the cache.
    pub capacity: usize,
    /// How long a data key may be reused after it was unwrapped.
    pub ttl: Duration,
}

impl CacheConfig {
    /// No caching: every open asks the custodians.
    pub const DISABLED: Self = Self {
        capacity: 0,
        ttl: Duration::ZERO,
    };
}

impl Default for CacheConfig {
    /// 1024 keys for 5 minutes.
    fn default() -> Self {
        Self {
            capacity: 1024,
            ttl: Duration::from_secs(300),
        }
    }
}

type Key = (ObjectId, Commitment);

/// A bounded, expiring map from (object id, key commitment) to data key.
#[derive(Debug)]
pub(crate) struct DekCache {
    config: CacheConfig,
    entries: Mutex<HashMap<Key, (DataKey, Instant)>>,
}

impl DekCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (DataKey, Instant)>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached key, if present and fresh (an expired entry is dropped).
    pub(crate) fn get(&self, id: &ObjectId, commitment: &Commitment) -> Option<DataKey> {
        if self.config.capacity == 0 {
            return None;
        }
        let mut map = self.lock();
        let key = (*id, *commitment);
        match map.get(&key) {
            Some((dek, at)) if at.elapsed() < self.config.ttl => Some(dek.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Caches `dek`; when full, drops expired entries and then the oldest.
    pub(crate) fn insert(&self, id: &ObjectId, commitment: &Commitment, dek: &DataKey) {
        if self.config.capacity == 0 || self.config.ttl.is_zero() {
            return;
        }
        let mut map = self.lock();
        let key = (*id, *commitment);
        if !map.contains_key(&key) && map.len() >= self.config.capacity {
            let ttl = self.config.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            while map.len() >= self.config.capacity {
                let Some(oldest) = map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k)
                else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        map.insert(key, (dek.clone(), Instant::now()));
    }

    /// Number of keys held (expired ones included until they are evicted).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Drops (and zeroizes) every key.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn k(i: u8) -> DataKey {
        DataKey::from_bytes([i; 32])
    }

    #[test]
    fn bounded_keyed_by_commitment_and_expiring() {
        let c = DekCache::new(CacheConfig {
            capacity: 2,
            ttl: Duration::from_secs(60),
        });
        let id = |i: u8| ObjectId([i; 32]);
        c.insert(&id(1), &[1; 32], &k(1));
        assert_eq!(c.get(&id(1), &[1; 32]), Some(k(1)));
        assert_eq!(c.get(&id(1), &[2; 32]), None, "other commitment never hits");
        c.insert(&id(2), &[2; 32], &k(2));
        c.insert(&id(3), &[3; 32], &k(3));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&id(1), &[1; 32]), None, "oldest evicted");
        c.clear();
        assert_eq!(c.len(), 0);

        let short = DekCache::new(CacheConfig {
            capacity: 2,
            ttl: Duration::from_millis(1),
        });
        short.insert(&id(1), &[1; 32], &k(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.get(&id(1), &[1; 32]), None);
        assert_eq!(short.len(), 0);

        let off = DekCache::new(CacheConfig::DISABLED);
        off.insert(&id(1), &[1; 32], &k(1));
        assert_eq!(off.get(&id(1), &[1; 32]), None);
    }
}
