//! Benchmark support for Custodia.
