//! `OTEL_N_PLUS_ONE` overrides the build default; a mode set in code wins over it. Changes the
//! process environment, so it is one test in its own binary.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use otel_core::repeated_shape::{
    self, ConfigError, DetectorConfig, ENV_MODE, Mode, Observation, Scope, ShapeKind,
};

#[test]
fn otel_n_plus_one_overrides_the_build_default_and_code_wins() {
    // SAFETY: this binary runs this one test; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var(ENV_MODE, "panic") };
    assert!(matches!(
        DetectorConfig::default_for_build().mode(),
        Mode::Panic
    ));
    assert!(matches!(
        DetectorConfig::builder()
            .mode(Mode::Warn)
            .build()
            .unwrap()
            .mode(),
        Mode::Warn
    ));

    // The process-wide configuration starts from default_for_build: an N+1 panics.
    let cx = opentelemetry::Context::new().with_value(Scope::new(tracing::Span::none()));
    let t0 = Instant::now();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        for i in 0..5 {
            repeated_shape::observe(
                &cx,
                &Observation {
                    shape: "SELECT * FROM t WHERE id = ?",
                    fingerprint: 1,
                    kind: ShapeKind::Read,
                    values_hash: None,
                    started: t0 + Duration::from_millis(3 * i),
                    duration: Duration::from_millis(1),
                    call_site: None,
                    suggestion: None,
                },
            );
        }
    }));
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("`SELECT * FROM t WHERE id = ?` ran 5 times"),
        "{message}"
    );

    unsafe { std::env::set_var(ENV_MODE, "OFF") };
    assert!(matches!(
        DetectorConfig::default_for_build().mode(),
        Mode::Off
    ));

    unsafe { std::env::set_var(ENV_MODE, "loud") };
    assert_eq!(
        repeated_shape::mode_from_env().unwrap_err(),
        ConfigError::InvalidEnvMode("loud".into())
    );
    let fallback = DetectorConfig::default_for_build();
    assert_eq!(
        matches!(fallback.mode(), Mode::Warn),
        cfg!(debug_assertions)
    );

    unsafe { std::env::remove_var(ENV_MODE) };
    assert!(repeated_shape::mode_from_env().unwrap().is_none());
}
