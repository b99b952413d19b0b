//! Prometheus text metrics: requests, decisions by outcome and reason, latency and batch-size
//! histograms, rate-limit hits and bulk flags. Never labelled by mailbox or key material.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use crate::admission::Admission;
use std::sync::atomic::{AtomicU64, Ordering};

const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];
const BATCH_BUCKETS: [f64; 8] = [1.0, 4.0, 16.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "metric precision"
        )]
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        #[allow(clippy::cast_precision_loss, reason = "metric precision")]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    decisions: Mutex<BTreeMap<(String, String, String), u64>>,
    latency: Histogram,
    batch: Histogram,
    fsync: Histogram,
    rate_limited: AtomicU64,
    bulk: AtomicU64,
    log_failures: AtomicU64,
    connections_refused: Mutex<BTreeMap<&'static str, u64>>,
    admission: OnceLock<Arc<Admission>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            decisions: Mutex::new(BTreeMap::new()),
            latency: Histogram::new(&LATENCY_BUCKETS),
            batch: Histogram::new(&BATCH_BUCKETS),
            fsync: Histogram::new(&LATENCY_BUCKETS),
            rate_limited: AtomicU64::new(0),
            bulk: AtomicU64::new(0),
            log_failures: AtomicU64::new(0),
            connections_refused: Mutex::new(BTreeMap::new()),
            admission: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Counts a request to `route` answered with `status` after `seconds`.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_owned(), status)).or_default() += 1;
        }
        self.latency.observe(seconds);
    }

    /// Counts one decision.
    pub fn decision(&self, operation: &str, outcome: &str, reason: &str) {
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((operation.to_owned(), outcome.to_owned(), reason.to_owned()))
                .or_default() += 1;
        }
    }

    /// Records a batch size.
    #[allow(clippy::cast_precision_loss, reason = "batch sizes are small")]
    pub fn batch_size(&self, n: usize) {
        self.batch.observe(n as f64);
    }

    /// Records how long a batch's fsync took.
    pub fn fsync(&self, seconds: f64) {
        self.fsync.observe(seconds);
    }

    /// Counts a rate-limit hit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a bulk flag.
    pub fn bulk_flag(&self) {
        self.bulk.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a decision-log write failure.
    pub fn log_failure(&self) {
        self.log_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused at a cap (`reason`: see [`crate::admission::Refused`]).
    pub fn connection_refused(&self, reason: &'static str) {
        if let Ok(mut m) = self.connections_refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Reports the open connections of the server's admission control.
    pub fn set_connection_gauge(&self, admission: Arc<Admission>) {
        let _ = self.admission.set(admission);
    }

    /// Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE custodia_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "custodia_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# TYPE custodia_decisions_total counter\n");
        if let Ok(m) = self.decisions.lock() {
            for ((op, outcome, reason), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "custodia_decisions_total{{operation=\"{op}\",outcome=\"{outcome}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        self.latency.render("custodia_request_seconds", &mut out);
        self.batch.render("custodia_batch_size", &mut out);
        self.fsync.render("custodia_audit_fsync_seconds", &mut out);
        for (name, v) in [
            ("custodia_rate_limited_total", &self.rate_limited),
            ("custodia_bulk_flags_total", &self.bulk),
            ("custodia_decision_log_failures_total", &self.log_failures),
        ] {
            let _ = writeln!(
                out,
                "# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# TYPE custodia_connections_refused_total counter\n");
        if let Ok(m) = self.connections_refused.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "custodia_connections_refused_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        if let Some(a) = self.admission.get() {
            let _ = writeln!(
                out,
                "# TYPE custodia_connections_open gauge\ncustodia_connections_open {}",
                a.open()
            );
        }
        out
    }
}
