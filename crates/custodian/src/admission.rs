//! Connection admission: how many connections the server holds, whose, and for how long.
//!
//! Every connection takes a permit of the overall cap when it is accepted and a handshake
//! permit (overall and per source address) until its TLS handshake ends. Once the caller's
//! certificate has fixed its identity, the connection needs a place under its region's cap and
//! under its own (region, certificate identity) cap; a caller over either is answered
//! `503 too_many_connections` and closed. So a flood from one certificate, or from every
//! certificate one region's CA can issue, fills only its own caps and never another caller's
//! (`docs/API.md` §1.1). [`Activity`] tells the connection loop when a connection has been idle
//! too long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ConnectionLimits;
use crate::tls::CallerIdentity;

/// Most handshakes in progress from one source address (an IPv6 /64 counts as one address,
/// since one host commonly holds a whole /64): an unauthenticated flood from one address
/// cannot take every handshake slot.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 32;

/// The source address as the per-address cap counts it.
fn source(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Why a connection was refused (the `reason` label of
/// `custodia_connections_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The overall connection cap is reached.
    Total,
    /// Too many handshakes in progress (overall or from the address).
    Handshakes,
    /// The caller's region holds its cap of connections.
    Region,
    /// The caller holds its cap of connections.
    Caller,
}

impl Refused {
    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Handshakes => "handshakes",
            Self::Region => "region",
            Self::Caller => "caller",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    handshakes_by_address: HashMap<IpAddr, usize>,
    by_region: HashMap<String, usize>,
    by_caller: HashMap<(String, String), usize>,
}

/// The server's connection caps and counts.
#[derive(Debug)]
pub struct Admission {
    limits: ConnectionLimits,
    total: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    counts: Mutex<Counts>,
}

/// Held while a connection is open (drop to release).
#[derive(Debug)]
pub struct ConnectionPermit {
    _permit: OwnedSemaphorePermit,
}

/// Held while a TLS handshake is in progress (drop to release).
#[derive(Debug)]
pub struct HandshakePermit {
    admission: Arc<Admission>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for HandshakePermit {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        decrement(&mut counts.handshakes_by_address, &self.address);
    }
}

/// Held while an identified caller's connection is open (drop to release).
#[derive(Debug)]
pub struct CallerPermit {
    admission: Arc<Admission>,
    region: String,
    caller: (String, String),
}

impl Drop for CallerPermit {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        decrement(&mut counts.by_region, &self.region);
        decrement(&mut counts.by_caller, &self.caller);
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Admission {
    /// Caps from the configuration.
    #[must_use]
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            total: Arc::new(Semaphore::new(limits.max_connections)),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The configured limits.
    #[must_use]
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    #[must_use]
    pub fn open(&self) -> usize {
        self.limits.max_connections - self.total.available_permits()
    }

    /// A place for a newly accepted connection from `address`, and for its handshake.
    ///
    /// # Errors
    /// The cap that is reached.
    pub fn accept(
        self: &Arc<Self>,
        address: IpAddr,
    ) -> Result<(ConnectionPermit, HandshakePermit), Refused> {
        let address = source(address);
        let connection = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Total)?;
        let handshake = self
            .handshakes
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Handshakes)?;
        {
            let mut counts = self.counts();
            let n = counts.handshakes_by_address.entry(address).or_default();
            if *n >= MAX_HANDSHAKES_PER_ADDRESS {
                return Err(Refused::Handshakes);
            }
            *n += 1;
        }
        Ok((
            ConnectionPermit {
                _permit: connection,
            },
            HandshakePermit {
                admission: self.clone(),
                address,
                _permit: handshake,
            },
        ))
    }

    /// A place for an identified caller's connection under its region's and its own cap.
    ///
    /// # Errors
    /// [`Refused::Region`] or [`Refused::Caller`].
    pub fn admit(self: &Arc<Self>, identity: &CallerIdentity) -> Result<CallerPermit, Refused> {
        let region = identity.region.to_string();
        let caller = (region.clone(), identity.name.clone());
        let mut counts = self.counts();
        if counts.by_caller.get(&caller).copied().unwrap_or(0)
            >= self.limits.max_connections_per_caller
        {
            return Err(Refused::Caller);
        }
        if counts.by_region.get(&region).copied().unwrap_or(0)
            >= self.limits.max_connections_per_region
        {
            return Err(Refused::Region);
        }
        *counts.by_caller.entry(caller.clone()).or_default() += 1;
        *counts.by_region.entry(region.clone()).or_default() += 1;
        Ok(CallerPermit {
            admission: self.clone(),
            region,
            caller,
        })
    }
}

/// What a connection is doing: requests in flight, and when it last finished one.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }
}

/// Marks a request in flight on its connection until dropped.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(ms, Ordering::Release);
    }

    /// A request started; it counts as in flight until the guard is dropped.
    #[must_use]
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// How long the connection has had no request in flight (`None` while one is).
    #[must_use]
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.started.elapsed().saturating_sub(since))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use custodia_envelope::Region;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 6,
            max_handshakes: 4,
            max_connections_per_region: 3,
            max_connections_per_caller: 2,
            handshake_timeout_secs: 5,
            idle_timeout_secs: 30,
        }
    }

    fn id(region: &str, name: &str) -> CallerIdentity {
        CallerIdentity {
            region: Region::new(region).unwrap(),
            name: name.into(),
            key_hash: [0; 32],
        }
    }

    #[test]
    fn caps_per_caller_then_region_then_total() {
        let a = Admission::new(limits());
        let us1 = id("us", "gw-1");
        let (p1, p2) = (a.admit(&us1).unwrap(), a.admit(&us1).unwrap());
        assert_eq!(a.admit(&us1).unwrap_err(), Refused::Caller);
        // Another US identity gets the region's last place, a third none.
        let p3 = a.admit(&id("us", "gw-2")).unwrap();
        assert_eq!(a.admit(&id("us", "gw-3")).unwrap_err(), Refused::Region);
        // The same name in another region is another caller, under another region's cap.
        let ie = a.admit(&id("ie", "gw-1")).unwrap();
        drop(p1);
        let again = a.admit(&us1).unwrap();
        drop((p2, p3, ie, again));
        assert!(a.counts().by_caller.is_empty() && a.counts().by_region.is_empty());
    }

    #[test]
    fn accept_caps_connections_and_handshakes() {
        let a = Admission::new(limits());
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(a.accept(local).unwrap());
        }
        assert_eq!(a.accept(other).unwrap_err(), Refused::Handshakes);
        // Handshakes done: their permits go, the connections stay.
        let conns: Vec<_> = held.into_iter().map(|(c, _h)| c).collect();
        assert_eq!(a.open(), 4);
        let more = (a.accept(other).unwrap(), a.accept(other).unwrap());
        assert_eq!(a.accept(other).unwrap_err(), Refused::Total);
        drop((conns, more));
        assert_eq!(a.open(), 0);
        assert!(a.counts().handshakes_by_address.is_empty());
    }

    #[test]
    fn handshakes_per_address_are_capped() {
        let mut l = limits();
        l.max_connections = 100;
        l.max_handshakes = 100;
        let a = Admission::new(l);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..MAX_HANDSHAKES_PER_ADDRESS)
            .map(|_| a.accept(local).unwrap())
            .collect();
        assert_eq!(a.accept(local).unwrap_err(), Refused::Handshakes);
        assert!(a.accept("127.0.0.2".parse().unwrap()).is_ok());
        drop(held);
        assert!(a.accept(local).is_ok());
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(source(mapped), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn activity_counts_idle_time_only_without_requests() {
        let act = Arc::new(Activity::default());
        assert!(act.idle_for().is_some());
        let busy = act.busy();
        assert_eq!(act.idle_for(), None);
        drop(busy);
        assert!(act.idle_for().unwrap() < Duration::from_secs(1));
    }
}
