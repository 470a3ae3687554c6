//! libFuzzer entry point; the body lives in `otel_fuzz::targets::request_id` so the stable
//! `replay` runner executes exactly the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otel_fuzz::targets::request_id(data));
