//! Benchmarks live in `benches/benches/`; run `cargo bench -p otel-benches`.
