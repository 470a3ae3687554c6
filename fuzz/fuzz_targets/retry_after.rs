//! libFuzzer entry point; the body lives in `otel_fuzz::targets::retry_after` so the stable
//! `replay` runner executes exactly the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otel_fuzz::targets::retry_after(data));
