//! Benchmark support for Custodia.
//!
//! The benchmarks live in `benches/`: `envelope.rs` (the envelope hot path vs raw ring),
//! `sdk.rs` (the `custodia` SDK's seal/open paths vs raw ring, with `age` as a peer and a real
//! custodian for opens) and `custodian.rs` (unwrap throughput of a real custodian process).
//! `bench/run [--quick]` runs them, the criterion ones pinned to one core, and then
//! `bench/report.py`, which writes `bench/RESULTS.md` from criterion's JSON estimates and the
//! benchmarks' own JSON.
