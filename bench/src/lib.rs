//! Benchmark support for Custodia.
//!
//! The benchmarks live in `benches/envelope.rs` (criterion); `bench/run [--quick]` runs them
//! pinned to one core and then `bench/report.py`, which writes `bench/RESULTS.md` from
//! criterion's JSON estimates.
