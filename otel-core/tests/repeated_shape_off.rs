//! With the detector off (release default, or `OTEL_N_PLUS_ONE=off`), server layers must not
//! create per-request scopes: `is_enabled` reads the configuration before answering. Changes
//! the process environment, so it is one test in its own binary.

#[test]
fn an_off_detector_says_off_before_anything_else_read_its_configuration() {
    // SAFETY: this binary runs this one test; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var(otel_core::repeated_shape::ENV_MODE, "off") };
    assert!(!otel_core::repeated_shape::is_enabled());
}
