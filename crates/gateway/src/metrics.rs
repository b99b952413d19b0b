//! Prometheus text metrics: requests by front, operation and status, bytes in and out,
//! latency histograms, custodian calls and DEK cache hits. Never labelled by key, mailbox
//! or anything a client sent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
}

/// The gateway's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Plaintext bytes received from clients.
    pub bytes_in: Arc<AtomicU64>,
    /// Plaintext bytes sent to clients.
    pub bytes_out: Arc<AtomicU64>,
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), Series>>,
    in_flight: AtomicU64,
}

impl Metrics {
    /// Records one finished request.
    pub fn request(&self, front: &'static str, op: &'static str, status: u16, seconds: f64) {
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = map.entry((front, op, status)).or_default();
        s.count += 1;
        s.sum += seconds;
        for (b, c) in BUCKETS.iter().zip(s.buckets.iter_mut()) {
            if seconds <= *b {
                *c += 1;
            }
        }
    }

    /// A request started (returns a guard that ends it).
    #[must_use]
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The Prometheus text exposition, with the SDK client's counters.
    #[must_use]
    pub fn render(&self, client: custodia::ClientStats) -> String {
        let mut out = String::new();
        let map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        out.push_str(
            "# HELP custodia_gateway_requests_total Requests by front, operation and status.\n",
        );
        out.push_str("# TYPE custodia_gateway_requests_total counter\n");
        for ((front, op, status), s) in &map {
            let _ = writeln!(
                out,
                "custodia_gateway_requests_total{{front=\"{front}\",op=\"{op}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP custodia_gateway_request_seconds Time to response headers (bodies stream after).\n");
        out.push_str("# TYPE custodia_gateway_request_seconds histogram\n");
        let mut by_op: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for ((front, op, _), s) in &map {
            let e = by_op.entry((front, op)).or_default();
            e.count += s.count;
            e.sum += s.sum;
            for (a, b) in e.buckets.iter_mut().zip(s.buckets) {
                *a += b;
            }
        }
        for ((front, op), s) in &by_op {
            for (b, c) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "custodia_gateway_request_seconds_bucket{{front=\"{front}\",op=\"{op}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "custodia_gateway_request_seconds_bucket{{front=\"{front}\",op=\"{op}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "custodia_gateway_request_seconds_sum{{front=\"{front}\",op=\"{op}\"}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "custodia_gateway_request_seconds_count{{front=\"{front}\",op=\"{op}\"}} {}",
                s.count
            );
        }
        let counters = [
            (
                "custodia_gateway_bytes_in_total",
                "Plaintext bytes received from clients.",
                self.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "custodia_gateway_bytes_out_total",
                "Plaintext bytes sent to clients.",
                self.bytes_out.load(Ordering::Relaxed),
            ),
            (
                "custodia_gateway_custodian_calls_total",
                "Unwrap calls to custodians.",
                client.custodian_calls,
            ),
            (
                "custodia_gateway_custodian_failures_total",
                "Unwrap calls that failed or were denied.",
                client.custodian_failures,
            ),
            (
                "custodia_gateway_dek_cache_hits_total",
                "Objects opened with a cached data key.",
                client.cache_hits,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP custodia_gateway_in_flight Requests being served.\n# TYPE custodia_gateway_in_flight gauge\ncustodia_gateway_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

/// Ends an in-flight request when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
